package imagefolder

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePNG(t *testing.T, path string, v byte) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, img)
	f.Close()
}

// Sums spares reading unchanged files: a file rewritten with the same
// size and time stamp keeps its remembered sum (the cache's one blind
// spot), and without the cache the change shows.
func TestSumsRemember(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"train/a/1.png", "train/b/1.png", "val/a/1.png"} {
		writePNG(t, filepath.Join(root, p), 10)
	}
	cache := filepath.Join(t.TempDir(), "sums.json")
	sums := OpenSums(cache)
	l1, err := List(root, sums)
	if err != nil {
		t.Fatal(err)
	}
	if err := sums.Save(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "train/a/1.png")
	st, _ := os.Stat(p)
	writePNG(t, p, 200) // same size: a constant image compresses alike
	if st2, _ := os.Stat(p); st2.Size() != st.Size() {
		t.Skip("the rewritten PNG has another size")
	}
	os.Chtimes(p, time.Now(), st.ModTime())
	l2, err := List(root, OpenSums(cache))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fingerprint() != l1.Fingerprint() {
		t.Error("the cache was not used for an unchanged-looking file")
	}
	l3, err := List(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l3.Fingerprint() == l1.Fingerprint() {
		t.Error("without the cache, a changed file did not change the fingerprint")
	}
}

// A dataset given by a relative path lists the same images as by its
// absolute one; a class folder that is a link inside the dataset is read
// where it leads; a link to a folder, inside or out, is reported as
// skipped, as a file link out of the dataset is.
func TestListPathsAndLinks(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "photos")
	writePNG(t, filepath.Join(root, "train", "cat", "a.png"), 1)
	writePNG(t, filepath.Join(root, "pool", "dog", "b.png"), 2) // train/dog links here
	writePNG(t, filepath.Join(root, "val", "cat", "c.png"), 3)
	writePNG(t, filepath.Join(root, "val", "dog", "d.png"), 4)
	writePNG(t, filepath.Join(parent, "elsewhere", "e.png"), 5)
	for link, to := range map[string]string{
		"train/dog":          "../pool/dog",
		"train/cat/more":     "../../../elsewhere",
		"train/cat/again":    "../../pool/dog",
		"train/cat/away.png": "../../../elsewhere/e.png",
	} {
		if err := os.Symlink(to, filepath.Join(root, link)); err != nil {
			t.Skipf("no symbolic links here: %v", err)
		}
	}
	abs, err := List(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(parent)
	rel, err := List("photos", nil)
	if err != nil {
		t.Fatalf("List of a relative path: %v", err)
	}
	for _, l := range []*Listing{abs, rel} {
		if len(l.Train) != 2 || len(l.Test) != 2 {
			t.Errorf("root %s: %d training and %d test images, want 2 and 2: %+v", l.Root, len(l.Train), len(l.Test), l.Train)
		}
		skipped := map[string]string{}
		for _, p := range l.Skipped {
			rel, _ := filepath.Rel(l.Root, p.Path)
			skipped[filepath.ToSlash(rel)] = p.Reason
		}
		for _, p := range []string{"train/cat/more", "train/cat/again", "train/cat/away.png"} {
			if skipped[p] == "" {
				t.Errorf("root %s: %s not reported as skipped (skipped: %v)", l.Root, p, skipped)
			}
		}
	}
}
