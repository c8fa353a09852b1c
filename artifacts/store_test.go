package artifacts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *Store, name string, files map[string]string) *Artifact {
	t.Helper()
	w, err := s.Create(name, Info{Kind: "toy", Schema: 1, Stage: name})
	if err != nil {
		t.Fatal(err)
	}
	for f, data := range files {
		if err := w.WriteFile(f, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRoundTrip(t *testing.T) {
	s := testStore(t)
	a := put(t, s, "toy", map[string]string{"b.txt": "bee", "sub/a.txt": "ay"})
	got, err := s.Get("toy")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || len(got.Files) != 2 || got.Files[0].Name != "b.txt" || got.Files[1].Name != "sub/a.txt" {
		t.Fatalf("Get = %+v, want the committed %+v", got.Manifest, a.Manifest)
	}
	b, err := got.ReadFile("sub/a.txt")
	if err != nil || string(b) != "ay" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := got.ReadFile("nope"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadFile of an unlisted file = %v, want ErrCorrupt", err)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 1 {
		t.Errorf("store holds %d entries after one commit, want 1 (no temporary leftovers)", len(entries))
	}
}

func TestIDIgnoresTimeAndStage(t *testing.T) {
	s1, s2 := testStore(t), testStore(t)
	s2.now = func() time.Time { return time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) }
	a := put(t, s1, "x", map[string]string{"f": "same"})
	b := put(t, s2, "y", map[string]string{"f": "same"})
	if a.ID != b.ID {
		t.Errorf("identical content gave IDs %s and %s", a.ID.Short(), b.ID.Short())
	}
	c := put(t, s2, "z", map[string]string{"f": "diff"})
	if c.ID == a.ID {
		t.Error("different content gave the same ID")
	}
}

func TestCorruptionDetected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		file   string
	}{
		{"flipped byte", func(dir string) { flip(t, filepath.Join(dir, "data"), 3) }, "data"},
		{"truncated file", func(dir string) { os.Truncate(filepath.Join(dir, "data"), 2) }, "data"},
		{"missing file", func(dir string) { os.Remove(filepath.Join(dir, "data")) }, "data"},
		{"edited manifest", func(dir string) { flip(t, filepath.Join(dir, ManifestName), 40) }, ManifestName},
		{"truncated manifest", func(dir string) { os.Truncate(filepath.Join(dir, ManifestName), 30) }, ManifestName},
		{"empty manifest", func(dir string) { os.Truncate(filepath.Join(dir, ManifestName), 0) }, ManifestName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t)
			a := put(t, s, "toy", map[string]string{"data": "0123456789"})
			tc.damage(a.Dir)
			_, err := s.Get("toy")
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != tc.file {
				t.Fatalf("Get after %s = %v, want CorruptError naming %s", tc.name, err, tc.file)
			}
		})
	}
}

func TestNoVerifyStillChecksSize(t *testing.T) {
	s := testStore(t)
	a := put(t, s, "toy", map[string]string{"data": "0123456789"})
	flip(t, filepath.Join(a.Dir, "data"), 3)
	s.NoVerify = true
	if _, err := s.Get("toy"); err != nil {
		t.Errorf("Get with NoVerify after a same-size edit = %v, want success", err)
	}
	os.Truncate(filepath.Join(a.Dir, "data"), 2)
	if _, err := s.Get("toy"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get with NoVerify after truncation = %v, want ErrCorrupt", err)
	}
}

func flip(t *testing.T, path string, off int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUnfinishedIsNotAnArtifact(t *testing.T) {
	s := testStore(t)
	w, err := s.Create("toy", Info{Kind: "toy"})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFile("data", []byte("half"))
	// A crash now leaves only the temporary folder.
	if _, err := s.Get("toy"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Commit = %v, want ErrNotFound", err)
	}
	did, err := s.Recover()
	if err != nil || len(did) != 1 || !strings.Contains(did[0], "removed unfinished") {
		t.Fatalf("Recover = %q, %v", did, err)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 0 {
		t.Errorf("Recover left %d entries", len(entries))
	}
	// A folder with files but no manifest (copied by hand, say) is not one either.
	os.MkdirAll(s.Path("hand"), 0o755)
	os.WriteFile(filepath.Join(s.Path("hand"), "data"), []byte("x"), 0o644)
	if _, err := s.Get("hand"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a folder without manifest = %v, want ErrNotFound", err)
	}
}

func TestAbortAndStickyError(t *testing.T) {
	s := testStore(t)
	put(t, s, "toy", map[string]string{"data": "old"})
	w, _ := s.Create("toy", Info{Kind: "toy"})
	if err := w.WriteFile("../escape", []byte("x")); err == nil {
		t.Fatal("WriteFile with a path outside the artifact succeeded")
	}
	if err := w.WriteFile("data", []byte("new")); err == nil {
		t.Error("WriteFile after an error succeeded; the error should be sticky")
	}
	if _, err := w.Commit(); err == nil {
		t.Fatal("Commit after an error succeeded")
	}
	a, err := s.Get("toy")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := a.ReadFile("data"); string(b) != "old" {
		t.Errorf("previous artifact holds %q after a failed replacement, want old", b)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 1 {
		t.Errorf("store holds %d entries, want 1", len(entries))
	}
}

func TestRecoverInterruptedReplace(t *testing.T) {
	s := testStore(t)
	old := put(t, s, "toy", map[string]string{"data": "old"})
	// Simulate a crash in publish between moving the old artifact aside and
	// renaming the new one into place.
	w, _ := s.Create("toy", Info{Kind: "toy"})
	w.WriteFile("data", []byte("new"))
	os.Rename(s.Path("toy"), filepath.Join(s.Dir(), oldPrefix+"toy"))
	if _, err := s.Get("toy"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get mid-replacement = %v, want ErrNotFound", err)
	}
	if _, err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	a, err := s.Get("toy")
	if err != nil || a.ID != old.ID {
		t.Fatalf("after Recover Get = %v, %v; want the previous artifact back", a, err)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 1 {
		t.Errorf("store holds %d entries after Recover, want 1", len(entries))
	}
	// A replacement committed again after recovery works as usual.
	if n := put(t, s, "toy", map[string]string{"data": "new"}); n.ID == old.ID {
		t.Error("replacement kept the old ID")
	}
}

func TestParseID(t *testing.T) {
	a := put(t, testStore(t), "toy", map[string]string{"f": "x"})
	id, err := ParseID(a.ID.String())
	if err != nil || id != a.ID {
		t.Errorf("ParseID(String()) = %v, %v", id, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), a.ID.String() + "00"} {
		if _, err := ParseID(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseID(%q) = %v, want an error quoting the input", bad, err)
		}
	}
}

func TestVolatileFiles(t *testing.T) {
	s := testStore(t)
	commit := func(name, timing string) *Artifact {
		w, _ := s.Create(name, Info{Kind: "toy", Schema: 1})
		w.WriteFile("weights", []byte("same"))
		w.WriteVolatile("timing", []byte(timing))
		a, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := commit("a", "3.2 s"), commit("b", "3.9 s")
	if a.ID != b.ID {
		t.Error("artifacts differing only in a volatile file have different IDs")
	}
	// A volatile file is still verified.
	os.WriteFile(filepath.Join(b.Dir, "timing"), []byte("9.9 s"), 0o644)
	if _, err := s.Get("b"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get after editing a volatile file = %v, want ErrCorrupt", err)
	}
}

// A full disk fails the write with the path and the space needed, and
// leaves the previous artifact and no temporary files behind.
func TestDiskFull(t *testing.T) {
	s := testStore(t)
	old := put(t, s, "toy", map[string]string{"data": "old"})
	written := 0
	s.beforeWrite = func(path string, n int) error {
		if written += n; written > 4<<20 {
			return syscall.ENOSPC
		}
		return nil
	}
	w, _ := s.Create("toy", Info{Kind: "toy"})
	err := w.WriteFile("data", make([]byte, 5<<20))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "data") || !strings.Contains(err.Error(), "needs at least 5 MB free") {
		t.Fatalf("WriteFile on a full disk = %v", err)
	}
	if _, err := w.Commit(); err == nil {
		t.Fatal("Commit after a full disk succeeded")
	}
	s.beforeWrite = nil
	a, err := s.Get("toy")
	if err != nil || a.ID != old.ID {
		t.Errorf("previous artifact after a full disk: %v, %v", a, err)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 1 {
		t.Errorf("%d entries left in the store, want 1", len(entries))
	}
}
