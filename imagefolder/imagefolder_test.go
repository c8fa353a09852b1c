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
