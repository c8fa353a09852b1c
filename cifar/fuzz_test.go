package cifar

import (
	"bytes"
	"testing"
)

// FuzzReadArchive: no archive, however malformed, panics or allocates
// beyond the largest real member; an accepted one writes back and reads
// back the same.
func FuzzReadArchive(f *testing.F) {
	var buf bytes.Buffer
	d := Synthetic(1, 10, 5)
	d.Name = "cifar10"
	WriteArchive(&buf, CIFAR10Format, d)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:100])
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadArchive(bytes.NewReader(b), "fuzz", CIFAR10Format)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteArchive(&out, CIFAR10Format, got); err != nil {
			t.Fatal(err)
		}
		again, err := ReadArchive(&out, "again", CIFAR10Format)
		if err != nil || !bytes.Equal(again.Train.Images, got.Train.Images) || !bytes.Equal(again.Test.Labels, got.Test.Labels) {
			t.Fatalf("accepted archive does not round-trip: %v", err)
		}
	})
}
