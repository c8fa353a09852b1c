package onnxio

import "testing"

// FuzzUnmarshal: no file makes the reader panic; an accepted model
// re-encodes and reads back.
func FuzzUnmarshal(f *testing.F) {
	f.Add(shuffleModel(4, 2))
	f.Add([]byte{0x08, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(out); err != nil {
			t.Fatalf("accepted model does not read back: %v", err)
		}
		Summarize(m)
	})
}
