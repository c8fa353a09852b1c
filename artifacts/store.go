package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// A Store is a folder of artifacts, each in a subfolder named after it.
// Reading is safe from any number of processes; writing and Recover must be
// done by one process at a time (the pipeline's workdir lock ensures that).
type Store struct {
	dir string
	// NoVerify skips re-hashing files on Get. Manifests are still checked.
	NoVerify bool
	now      func() time.Time
	// beforeWrite, if set, is called before each write to an artifact file
	// and may fail it: the seam tests use to fill the disk.
	beforeWrite func(path string, n int) error
}

// Prefixes of the store's own scratch folders; never valid artifact names.
const (
	tmpPrefix = ".tmp-" // an artifact being written
	oldPrefix = ".old-" // an artifact being replaced
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Open opens the store in dir, creating the folder if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("artifacts: open store: %w", err)
	}
	return &Store{dir: dir, now: time.Now}, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// Path returns the folder an artifact named name lives in.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name) }

// Recover finishes or rolls back what an interrupted writer left: a
// replacement that crashed between its two renames gets its previous artifact
// back, and half-written temporary folders are removed. It reports what it
// did, one line per action.
func (s *Store) Recover() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: recover: %w", err)
	}
	var did []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
				return did, fmt.Errorf("artifacts: recover: %w", err)
			}
			did = append(did, "removed unfinished "+name)
		case strings.HasPrefix(name, oldPrefix):
			art := strings.TrimPrefix(name, oldPrefix)
			if _, err := os.Stat(s.Path(art)); errors.Is(err, fs.ErrNotExist) {
				if err := os.Rename(filepath.Join(s.dir, name), s.Path(art)); err != nil {
					return did, fmt.Errorf("artifacts: recover: %w", err)
				}
				did = append(did, "restored "+art+" from an interrupted replacement")
				continue
			}
			if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
				return did, fmt.Errorf("artifacts: recover: %w", err)
			}
			did = append(did, "removed replaced "+art)
		}
	}
	return did, syncDir(s.dir)
}

// An Artifact is a verified artifact on disk.
type Artifact struct {
	Dir string
	Manifest
}

// Path returns the path of one of the artifact's files.
func (a *Artifact) Path(file string) string { return filepath.Join(a.Dir, filepath.FromSlash(file)) }

// ReadFile reads one of the artifact's files. The file was hashed when the
// artifact was opened; a file the manifest does not list is an error.
func (a *Artifact) ReadFile(file string) ([]byte, error) {
	if !a.Has(file) {
		return nil, &CorruptError{Dir: a.Dir, File: file, Reason: "missing from manifest"}
	}
	return os.ReadFile(a.Path(file))
}

// expect returns a *CorruptError unless the artifact is of kind at schema
// version schema.
func (a *Artifact) expect(kind string, schema int) error {
	if a.Kind != kind || a.Schema != schema {
		return &CorruptError{Dir: a.Dir, Reason: fmt.Sprintf("is a %s v%d, want %s v%d", a.Kind, a.Schema, kind, schema)}
	}
	return nil
}

// Has reports whether the manifest lists file.
func (a *Artifact) Has(file string) bool {
	for _, f := range a.Files {
		if f.Name == file {
			return true
		}
	}
	return false
}

// Get opens the artifact called name. It returns an error wrapping
// ErrNotFound if there is none, and a *CorruptError if its manifest is invalid
// or, unless NoVerify is set, any file differs from the manifest.
func (s *Store) Get(name string) (*Artifact, error) {
	dir := s.Path(name)
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, &CorruptError{Dir: dir, File: ManifestName, Reason: err.Error()}
	}
	a := &Artifact{Dir: dir, Manifest: *m}
	for _, f := range m.Files {
		if err := s.check(a, f); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (s *Store) check(a *Artifact, f File) error {
	fh, err := os.Open(a.Path(f.Name))
	if err != nil {
		return &CorruptError{Dir: a.Dir, File: f.Name, Reason: "listed in manifest but unreadable: " + err.Error()}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if st.Size() != f.Size {
		return &CorruptError{Dir: a.Dir, File: f.Name, Reason: fmt.Sprintf("size %d, manifest says %d", st.Size(), f.Size)}
	}
	if s.NoVerify {
		return nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return &CorruptError{Dir: a.Dir, File: f.Name, Reason: "read: " + err.Error()}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return &CorruptError{Dir: a.Dir, File: f.Name, Reason: fmt.Sprintf("sha256 %.12s…, manifest says %.12s…", got, f.SHA256)}
	}
	return nil
}

// Info is what a writer records about an artifact besides its files.
type Info struct {
	Kind     string
	Schema   int
	Stage    string
	Key      Key
	KeyLines []string
}

// A Writer builds one artifact in a temporary folder. Nothing is visible
// under the artifact's name until Commit succeeds. The first error is sticky:
// later calls return it and Commit refuses to publish.
type Writer struct {
	s       *Store
	name    string
	tmp     string
	info    Info
	files   []File
	open    map[string]bool
	err     error
	done    bool
	written int64 // bytes so far, for a disk-full message
}

// Create starts writing the artifact called name, which replaces any existing
// one when committed.
func (s *Store) Create(name string, info Info) (*Writer, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("artifacts: invalid artifact name %q", name)
	}
	if info.Kind == "" {
		panic("artifacts: Create without a kind")
	}
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix+name+"-")
	if err == nil {
		err = os.Chmod(tmp, 0o755) // MkdirTemp makes it private
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: create %s: %w", name, err)
	}
	return &Writer{s: s, name: name, tmp: tmp, info: info, open: map[string]bool{}}, nil
}

// A FileWriter writes one file of an artifact, hashing it on the way.
type FileWriter struct {
	w        *Writer
	name     string
	f        *os.File
	h        hash.Hash
	n        int64
	volatile bool
}

// Create adds a file to the artifact. The caller must Close it before Commit.
func (w *Writer) Create(file string) (*FileWriter, error) {
	if w.err != nil {
		return nil, w.err
	}
	if !validFileName(file) || w.open[file] {
		return nil, w.fail(fmt.Errorf("artifacts: %s: invalid or repeated file name %q", w.name, file))
	}
	p := filepath.Join(w.tmp, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, w.fail(fmt.Errorf("artifacts: %s: %w", w.name, err))
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, w.fail(fmt.Errorf("artifacts: %s: %w", w.name, err))
	}
	w.open[file] = true
	return &FileWriter{w: w, name: file, f: f, h: sha256.New()}, nil
}

func (fw *FileWriter) Write(p []byte) (int, error) {
	if fw.w.err != nil {
		return 0, fw.w.err
	}
	var n int
	var err error
	if hook := fw.w.s.beforeWrite; hook != nil {
		err = hook(fw.f.Name(), len(p))
	}
	if err == nil {
		n, err = fw.f.Write(p)
	}
	fw.h.Write(p[:n])
	fw.n += int64(n)
	fw.w.written += int64(n)
	if errors.Is(err, syscall.ENOSPC) {
		need := fw.w.written + int64(len(p)-n)
		return n, fw.w.fail(fmt.Errorf("artifacts: write %s: %w: %s needs at least %d MB free; make room and run again (finished artifacts are untouched)",
			fw.f.Name(), err, fw.w.name, (need+1<<20-1)>>20))
	}
	if err != nil {
		return n, fw.w.fail(fmt.Errorf("artifacts: write %s: %w", fw.f.Name(), err))
	}
	return n, nil
}

// Close syncs the file to disk and records it in the manifest.
func (fw *FileWriter) Close() error {
	if fw.f == nil {
		return fw.w.err
	}
	f := fw.f
	fw.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fw.w.fail(fmt.Errorf("artifacts: write %s: %w", f.Name(), err))
	}
	if fw.w.err != nil {
		return fw.w.err
	}
	delete(fw.w.open, fw.name)
	fw.w.files = append(fw.w.files, File{Name: fw.name, Size: fw.n, SHA256: hex.EncodeToString(fw.h.Sum(nil)), Volatile: fw.volatile})
	return nil
}

// WriteFile adds a file with the given contents.
func (w *Writer) WriteFile(file string, data []byte) error { return w.writeFile(file, data, false) }

// WriteVolatile adds a file that records how the work went (timings, speed)
// and is left out of the artifact's ID (see File.Volatile).
func (w *Writer) WriteVolatile(file string, data []byte) error { return w.writeFile(file, data, true) }

func (w *Writer) writeFile(file string, data []byte, volatile bool) error {
	fw, err := w.Create(file)
	if err != nil {
		return err
	}
	fw.volatile = volatile
	if _, err := fw.Write(data); err != nil {
		fw.Close()
		return err
	}
	return fw.Close()
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Commit writes the manifest and publishes the artifact under its name,
// replacing any previous one. A crash at any point leaves either the previous
// artifact or the new one (after Recover), never a mixture.
func (w *Writer) Commit() (*Artifact, error) {
	if w.done {
		panic("artifacts: Commit after Commit or Abort")
	}
	if w.err == nil && len(w.open) > 0 {
		w.fail(fmt.Errorf("artifacts: %s: Commit with %d files still open", w.name, len(w.open)))
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	sortFiles(w.files)
	m := Manifest{
		Format: manifestFormat, Version: manifestVersion,
		ID:   contentID(w.info.Kind, w.info.Schema, w.files),
		Kind: w.info.Kind, Schema: w.info.Schema, Stage: w.info.Stage,
		Key: w.info.Key, KeyLines: w.info.KeyLines,
		Created: w.s.now().UTC().Round(time.Second), Files: w.files,
	}
	if err := w.writeManifest(encodeManifest(&m)); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.publish(); err != nil {
		w.Abort()
		return nil, err
	}
	w.done = true
	return &Artifact{Dir: w.s.Path(w.name), Manifest: m}, nil
}

// writeManifest is the last write into the temporary folder.
func (w *Writer) writeManifest(b []byte) error {
	p := filepath.Join(w.tmp, ManifestName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		_, err = f.Write(b)
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = syncDir(w.tmp)
	}
	if err != nil {
		return w.fail(fmt.Errorf("artifacts: write %s: %w", p, err))
	}
	return nil
}

// publish moves the finished folder into place. Linux cannot rename a folder
// over a non-empty one, so a previous artifact steps aside to .old-NAME first;
// Recover puts it back if we crash before the second rename.
func (w *Writer) publish() error {
	dst := w.s.Path(w.name)
	old := filepath.Join(w.s.dir, oldPrefix+w.name)
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("artifacts: publish %s: %w", w.name, err)
	}
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifacts: publish %s: %w", w.name, err)
	}
	if err := os.Rename(w.tmp, dst); err != nil {
		// Put the previous artifact back; if that fails too, Recover will.
		os.Rename(old, dst)
		return fmt.Errorf("artifacts: publish %s: %w", w.name, err)
	}
	if err := syncDir(w.s.dir); err != nil {
		return fmt.Errorf("artifacts: publish %s: %w", w.name, err)
	}
	// The new artifact is durable; the old one is garbage whatever happens.
	os.RemoveAll(old)
	return nil
}

// Abort discards everything written. It is safe to call after Commit, when
// it does nothing.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.fail(errors.New("artifacts: writer aborted"))
	os.RemoveAll(w.tmp)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
