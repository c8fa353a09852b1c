package stages

import (
	"crypto/sha256"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
)

// TestCIFARAsImageFolder is the check on real data: CIFAR-10 written out
// as PNG folders gives the same images and labels, as a set, as the binary
// archive. It runs with CONDENSENET_CIFAR_ARCHIVE set to a CIFAR-10 binary
// archive and CONDENSENET_CIFAR_SHA256 to its checksum; with
// CONDENSENET_CIFAR_FOLDER set it leaves the folder there, for training
// on it with the CLI.
func TestCIFARAsImageFolder(t *testing.T) {
	archive, sum := os.Getenv("CONDENSENET_CIFAR_ARCHIVE"), os.Getenv("CONDENSENET_CIFAR_SHA256")
	if archive == "" || sum == "" {
		t.Skip("set CONDENSENET_CIFAR_ARCHIVE and CONDENSENET_CIFAR_SHA256 to a CIFAR-10 binary archive")
	}
	w := t.TempDir()
	if _, err := runFetch(t, w, DataConfig{Dataset: "cifar10", URL: archive, SHA256: sum, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	bin, _ := loadFetched(t, w)
	root := os.Getenv("CONDENSENET_CIFAR_FOLDER")
	if root == "" {
		root = t.TempDir()
	}
	for _, s := range []struct {
		dir   string
		split *artifacts.Split
	}{{"train", &bin.Train}, {"test", &bin.Test}} {
		all := pixels(t, s.split.Images)
		for i, l := range s.split.Labels {
			img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
			src := all[i*3072:]
			for p := range 1024 {
				img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = src[p], src[1024+p], src[2048+p], 255
			}
			path := filepath.Join(root, s.dir, bin.Classes[l], strconv.Itoa(i)+".png")
			os.MkdirAll(filepath.Dir(path), 0o755)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	w2 := t.TempDir()
	if _, err := runFetch(t, w2, DataConfig{Dataset: "folder:" + root}); err != nil {
		t.Fatal(err)
	}
	dir, _ := loadFetched(t, w2)
	// The same (class name, image) pairs, each as often.
	count := func(images []byte, labels []uint16, classes []string) map[[32]byte]int {
		m := map[[32]byte]int{}
		for i, l := range labels {
			h := sha256.New()
			h.Write([]byte(classes[l]))
			h.Write(images[i*3072 : (i+1)*3072])
			m[[32]byte(h.Sum(nil))]++
		}
		return m
	}
	for _, s := range []struct {
		name string
		a, b map[[32]byte]int
	}{
		{"train", count(pixels(t, bin.Train.Images), bin.Train.Labels, bin.Classes), count(pixels(t, dir.Train.Images), dir.Train.Labels, dir.Classes)},
		{"test", count(pixels(t, bin.Test.Images), bin.Test.Labels, bin.Classes), count(pixels(t, dir.Test.Images), dir.Test.Labels, dir.Classes)},
	} {
		if len(s.a) != len(s.b) {
			t.Errorf("%s: %d distinct images from the archive, %d from the folder", s.name, len(s.a), len(s.b))
		}
		for k, n := range s.a {
			if s.b[k] != n {
				t.Fatalf("%s: an image is %d times in the archive, %d times in the folder", s.name, n, s.b[k])
			}
		}
	}
	t.Logf("%s; %s; the folder's normalisation %v / %v", bin.Summary(), dir.Summary(), dir.Mean, dir.Std)
}
