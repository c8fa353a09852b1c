package stages

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzReadConfig: any config file is accepted or refused without a panic,
// and a valid one writes back and reads back the same.
func FuzzReadConfig(f *testing.F) {
	f.Add([]byte(`{"seed": 3, "data": {"dataset": "synthetic"}, "train": {"epochs": 2}}`))
	f.Add([]byte(`{"model": {"stages": [1, 2], "growth": [4, 8]}}`))
	f.Add([]byte(`{"data": {"datset": 1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _ := Preset("quick")
		if err := c.ReadConfig(bytes.NewReader(b), "fuzz.json"); err != nil {
			return
		}
		if c.Check() != nil {
			return
		}
		again, _ := json.Marshal(c)
		d, _ := Preset("quick")
		if err := d.ReadConfig(bytes.NewReader(again), "again.json"); err != nil {
			t.Fatalf("a valid config does not read back: %v\n%s", err, again)
		}
		if b2, _ := json.Marshal(d); !bytes.Equal(again, b2) {
			t.Fatalf("config changed on a round trip:\n%s\n%s", again, b2)
		}
	})
}
