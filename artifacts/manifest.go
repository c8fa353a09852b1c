package artifacts

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

const (
	// ManifestName is the manifest's file name in an artifact's folder.
	ManifestName   = "manifest.json"
	manifestFormat = "condensenet-artifact" // the magic string
	// manifestVersion is the version of the manifest's own layout; each kind
	// versions its files separately through Manifest.Schema.
	manifestVersion = 1
)

// A Manifest describes a stored artifact.
type Manifest struct {
	Format  string `json:"format"`  // always "condensenet-artifact"
	Version int    `json:"version"` // layout of this file
	ID      ID     `json:"id"`      // recomputed and checked on every read
	Kind    string `json:"kind"`    // "dataset", "trained-model", ...
	Schema  int    `json:"schema"`  // version of the kind's file layout
	Stage   string `json:"stage"`   // the stage that produced it
	Key     Key    `json:"key"`     // the producing stage's cache key
	// KeyLines are the labelled lines that were hashed into Key, kept so that
	// a user can be told which input or setting changed.
	KeyLines []string  `json:"key_lines"`
	Created  time.Time `json:"created"`
	Files    []File    `json:"files"` // sorted by Name
}

// A File is one file of an artifact.
type File struct {
	Name   string `json:"name"` // slash-separated, relative to the artifact folder
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	// Volatile marks a file that records how the work went (timings) rather
	// than what it produced; it is verified like the others but left out of
	// the artifact's ID, so that identical work yields identical IDs.
	Volatile bool `json:"volatile,omitempty"`
}

// contentID hashes what the artifact is, leaving out when and why it was
// made and its volatile files, so that identical work gives identical IDs.
func contentID(kind string, schema int, files []File) ID {
	h := sha256.New()
	fmt.Fprintf(h, "kind %s schema %d\n", kind, schema)
	for _, f := range files {
		if f.Volatile {
			continue
		}
		fmt.Fprintf(h, "file %s %d %s\n", f.Name, f.Size, f.SHA256)
	}
	var id ID
	h.Sum(id[:0])
	return id
}

// decodeManifest parses and checks a manifest's own consistency; the files it
// lists are checked by the caller.
func decodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("invalid manifest: %v", err)
	}
	switch {
	case m.Format != manifestFormat:
		return nil, fmt.Errorf("not an artifact manifest (format %q)", m.Format)
	case m.Version != manifestVersion:
		return nil, fmt.Errorf("manifest version %d, this program reads %d", m.Version, manifestVersion)
	case m.Kind == "":
		return nil, fmt.Errorf("manifest has no kind")
	}
	for i, f := range m.Files {
		if !validFileName(f.Name) {
			return nil, fmt.Errorf("manifest lists invalid file name %q", f.Name)
		}
		if i > 0 && m.Files[i-1].Name >= f.Name {
			return nil, fmt.Errorf("manifest files not sorted or repeated at %q", f.Name)
		}
		if f.Size < 0 || len(f.SHA256) != 64 {
			return nil, fmt.Errorf("manifest entry %q has size %d, sha256 %q", f.Name, f.Size, f.SHA256)
		}
	}
	if got := contentID(m.Kind, m.Schema, m.Files); got != m.ID {
		return nil, fmt.Errorf("manifest id %s does not match its contents (%s)", m.ID.Short(), got.Short())
	}
	return &m, nil
}

func encodeManifest(m *Manifest) []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // every field is a plain value
	}
	return append(b, '\n')
}

// validFileName accepts clean relative slash paths that stay inside the
// artifact folder and do not collide with the manifest.
func validFileName(name string) bool {
	return name != "" && name != ManifestName && path.Clean(name) == name &&
		!path.IsAbs(name) && name != ".." && !strings.HasPrefix(name, "../") &&
		!strings.ContainsAny(name, "\\\x00")
}

func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
}
