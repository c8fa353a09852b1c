package imagefolder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/condensenet/condensenet/imageprep"
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

// Write streams the readable images in the order of the files, whatever
// the number of cores, the window or the budget (one smaller than an
// image decodes them one at a time), and names the others.
func TestPreparerWrite(t *testing.T) {
	root := t.TempDir()
	var files []File
	var want []byte
	var wantLabels []uint16
	form := imageprep.Squash
	for i := range 70 {
		p := filepath.Join(root, fmt.Sprintf("%d.png", i))
		if i%9 == 4 {
			os.WriteFile(p, []byte("not an image"), 0o644)
		} else {
			writePNG(t, p, byte(3*i))
			img, err := imageprep.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, form.Stored(img, 8)...)
			wantLabels = append(wantLabels, uint16(i%3))
		}
		files = append(files, File{Path: p, Label: i % 3})
	}
	for _, c := range []struct {
		procs  int
		budget int64
	}{{1, 0}, {3, 0}, {4, 1}, {8, 1 << 20}} {
		prev := runtime.GOMAXPROCS(c.procs)
		var buf bytes.Buffer
		done := 0
		p := &Preparer{Form: form, Size: 8, Budget: c.budget, Done: func() { done++ }}
		labels, bad, err := p.Write(context.Background(), files, &buf)
		runtime.GOMAXPROCS(prev)
		if err != nil || !bytes.Equal(buf.Bytes(), want) || !slices.Equal(labels, wantLabels) || done != len(files) {
			t.Errorf("%d cores, budget %d: %d bytes (want %d), labels equal %v, %d calls of Done, %v",
				c.procs, c.budget, buf.Len(), len(want), slices.Equal(labels, wantLabels), done, err)
		}
		if len(bad) != 8 || !strings.Contains(bad[0].String(), "4.png") || !strings.Contains(bad[0].String(), "not a PNG or JPEG") {
			t.Errorf("%d cores: problems %v", c.procs, bad)
		}
	}
	// Cancelled, it stops and says so; a failing writer stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := (&Preparer{Form: form, Size: 8}).Write(ctx, files, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, _, err := (&Preparer{Form: form, Size: 8}).Write(context.Background(), files, failingWriter{}); err == nil || err.Error() != "disk full" {
		t.Errorf("failing writer: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// Stats streams the same mean and deviation as the plain definition.
func TestStats(t *testing.T) {
	images := make([]byte, 5*3*4)
	for i := range images {
		images[i] = byte(i * 37)
	}
	s := NewStats(4)
	s.Write(images[:7]) // in pieces that split images and channels
	s.Write(images[7:])
	mean, std := s.Normalization()
	for c := range 3 {
		var sum, sq float64
		for i := range 5 {
			for _, v := range images[(i*3+c)*4 : (i*3+c+1)*4] {
				sum += float64(v) / 255
				sq += float64(v) / 255 * float64(v) / 255
			}
		}
		m := sum / 20
		if math.Abs(float64(mean[c])-m) > 1e-6 || math.Abs(float64(std[c])-math.Sqrt(sq/20-m*m)) > 1e-6 {
			t.Errorf("channel %d: %v / %v, want %v / %v", c, mean[c], std[c], m, math.Sqrt(sq/20-m*m))
		}
	}
}
