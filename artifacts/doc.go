// Package artifacts stores the typed results that pipeline stages pass to one
// another: one folder per artifact, holding its files and a manifest.json that
// lists every file with its size and SHA-256.
//
// Invariants:
//   - An artifact folder is written under a temporary name and renamed into
//     place only after every file and the manifest are synced, so a folder
//     under an artifact's name with a manifest is always complete.
//   - Reading an artifact hashes its files again; any mismatch is a
//     *CorruptError, which callers treat as a cache miss, never as data.
//   - An artifact's ID depends only on its kind, schema and file contents, not
//     on when or where it was made, so identical work yields identical IDs.
//
// The package imports nothing else from this project.
package artifacts

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound means no complete artifact exists under a name.
	ErrNotFound = errors.New("artifacts: not found")
	// ErrCorrupt means an artifact exists but failed verification.
	ErrCorrupt = errors.New("artifacts: corrupt")
)

// A CorruptError says which artifact file was rejected and why.
type CorruptError struct {
	Dir    string // the artifact's folder
	File   string // the offending file, relative to Dir ("" for the artifact as a whole)
	Reason string
}

func (e *CorruptError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("artifacts: %s: %s", e.Dir, e.Reason)
	}
	return fmt.Sprintf("artifacts: %s/%s: %s", e.Dir, e.File, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }
