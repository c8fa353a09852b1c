package artifacts

import (
	"encoding/hex"
	"fmt"
)

// An ID is the SHA-256 of an artifact's content: its kind, schema version and
// the names, sizes and hashes of its files.
type ID [32]byte

// A Key is the hash of everything that went into producing an artifact: the
// stage, its code version, the configuration it read and the IDs of its
// inputs. Equal keys mean the stage need not run again.
type Key [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }
func (k Key) String() string { return hex.EncodeToString(k[:]) }
func (id ID) Short() string  { return hex.EncodeToString(id[:4]) }
func (k Key) Short() string  { return hex.EncodeToString(k[:4]) }
func (id ID) IsZero() bool   { return id == ID{} }
func (k Key) IsZero() bool   { return k == Key{} }

// ParseID parses the 64-digit hex form written by ID.String.
func ParseID(s string) (ID, error) {
	var id ID
	return id, parseHash(id[:], s, "artifact ID")
}

// ParseKey parses the 64-digit hex form written by Key.String.
func ParseKey(s string) (Key, error) {
	var k Key
	return k, parseHash(k[:], s, "stage key")
}

func parseHash(dst []byte, s, what string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("artifacts: invalid %s %q: want %d hex digits, got %d", what, s, 2*len(dst), len(s))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("artifacts: invalid %s %q: %v", what, s, err)
	}
	// One spelling per hash: what String writes (found by FuzzParseID).
	if hex.EncodeToString(dst) != s {
		return fmt.Errorf("artifacts: invalid %s %q: want lowercase hex", what, s)
	}
	return nil
}

func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (id *ID) UnmarshalText(b []byte) (err error) { *id, err = ParseID(string(b)); return err }
func (k *Key) UnmarshalText(b []byte) (err error) { *k, err = ParseKey(string(b)); return err }
