package artifacts

import (
	"bytes"
	"testing"
)

// FuzzManifest: any manifest is accepted or refused without a panic; an
// accepted one encodes and decodes to the same bytes.
func FuzzManifest(f *testing.F) {
	m := Manifest{Format: manifestFormat, Version: manifestVersion, Kind: "toy", Schema: 1,
		Files: []File{{Name: "a", Size: 3, SHA256: "0000000000000000000000000000000000000000000000000000000000000000"}}}
	m.ID = contentID(m.Kind, m.Schema, m.Files)
	f.Add(encodeManifest(&m))
	f.Add([]byte(`{"format":"condensenet-artifact","version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeManifest(b)
		if err != nil {
			return
		}
		enc := encodeManifest(got)
		again, err := decodeManifest(enc)
		if err != nil || !bytes.Equal(encodeManifest(again), enc) {
			t.Fatalf("accepted manifest does not round-trip: %v", err)
		}
	})
}

// FuzzParseID: parsing never panics and accepts exactly what String writes.
func FuzzParseID(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err == nil && id.String() != s {
			t.Fatalf("ParseID(%q) = %s", s, id)
		}
	})
}
