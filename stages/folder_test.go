package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/imagefolder"
	"github.com/condensenet/condensenet/imageprep"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
)

// writeImage writes a w×h image of noise as PNG, or JPEG by the name.
func writeImage(t *testing.T, path string, w, h int, rng *rand.Rand) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(&buf, img, nil)
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageFolder writes a dataset of three classes in PNG and JPEG, of
// several sizes, with a stray text file, and returns its root.
func imageFolder(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "pets")
	rng := rand.New(rand.NewPCG(8, 8))
	for _, f := range []struct {
		path string
		w, h int
	}{
		{"train/cat/1.png", 32, 32}, {"train/cat/2.png", 40, 20}, {"train/cat/sub/3.jpg", 7, 7},
		{"train/dog/a.jpg", 64, 48}, {"train/dog/b.png", 33, 31},
		{"train/bird/x.PNG", 32, 32}, {"train/bird/y.jpeg", 100, 80},
		{"val/cat/v.png", 32, 32}, {"val/dog/v.jpg", 50, 50}, {"val/bird/v.png", 16, 16},
	} {
		writeImage(t, filepath.Join(root, f.path), f.w, f.h, rng)
	}
	os.WriteFile(filepath.Join(root, "train", "cat", "notes.txt"), []byte("not an image"), 0o644)
	return root
}

func loadFetched(t *testing.T, workdir string) (*artifacts.Dataset, *artifacts.Artifact) {
	t.Helper()
	store, _ := artifacts.Open(workdir)
	a, err := store.Get("fetch")
	if err != nil {
		t.Fatal(err)
	}
	d, err := artifacts.LoadDataset(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, a
}

// pixels reads a split's images into memory.
func pixels(t *testing.T, im artifacts.Images) []byte {
	t.Helper()
	b, err := artifacts.ReadAll(im)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An image folder becomes a dataset: classes sorted, every image resized
// as imageprep resizes it, ordered by class and content, normalised by
// its training split. Renaming a file changes nothing; adding one makes
// the dataset stale.
func TestFetchImageFolder(t *testing.T) {
	root := imageFolder(t)
	w := t.TempDir()
	cache := t.TempDir()
	data := DataConfig{Dataset: "folder:" + root, CacheDir: cache}
	if _, err := runFetch(t, w, data); err != nil {
		t.Fatal(err)
	}
	d, a := loadFetched(t, w)
	// The files' sums are remembered in the cache, for the next key.
	if kept, _ := filepath.Glob(filepath.Join(cache, "folders", "*.json")); len(kept) != 1 {
		t.Errorf("sums kept in %v, want one file", kept)
	}
	if !slices.Equal(d.Classes, []string{"bird", "cat", "dog"}) || d.Train.Len() != 7 || d.Test.Len() != 3 || d.H != 32 || d.Name != "folder:pets" {
		t.Fatalf("dataset %s, classes %v", d.Summary(), d.Classes)
	}
	// Each stored image is its file, prepared; in label order.
	l, err := imagefolder.List(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range l.Train {
		img, err := imageprep.Open(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		want := imageprep.Squash.Stored(img, 32)
		if !bytes.Equal(pixels(t, d.Train.Images)[i*3072:(i+1)*3072], want) || int(d.Train.Labels[i]) != f.Label {
			t.Errorf("training image %d is not %s, label %d", i, f.Path, f.Label)
		}
	}
	if !slices.IsSorted(d.Train.Labels) {
		t.Errorf("labels %v not in class order", d.Train.Labels)
	}
	stats := imagefolder.NewStats(1024)
	stats.Write(pixels(t, d.Train.Images))
	mean, std := stats.Normalization()
	if !slices.Equal(d.Mean, mean) || !slices.Equal(d.Std, std) || mean[0] < 0.3 || mean[0] > 0.7 {
		t.Errorf("normalisation %v / %v, the training split's is %v / %v", d.Mean, d.Std, mean, std)
	}
	// Renaming is nothing new.
	os.Rename(filepath.Join(root, "train/dog/a.jpg"), filepath.Join(root, "train/dog/renamed.jpg"))
	if _, err := runFetch(t, w, data); err != nil {
		t.Fatal(err)
	}
	if _, b := loadFetched(t, w); b.ID != a.ID {
		t.Errorf("renaming a file made a new dataset (%s, was %s)", b.ID, a.ID)
	}
	// The same images in a folder of another name, fetched in another
	// workdir, are the same dataset, shown under its own name.
	other := filepath.Join(filepath.Dir(root), "animals")
	if err := os.Rename(root, other); err != nil {
		t.Fatal(err)
	}
	w2 := t.TempDir()
	if _, err := runFetch(t, w2, DataConfig{Dataset: "folder:" + other, CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	if d2, b := loadFetched(t, w2); b.ID != a.ID || d2.Name != "folder:animals" {
		t.Errorf("the same images in another folder: dataset %s %s, was %s", d2.Name, b.ID, a.ID)
	}
	os.Rename(other, root)
	// A new image is, and so is a changed one.
	writeImage(t, filepath.Join(root, "train/dog/c.png"), 32, 32, rand.New(rand.NewPCG(9, 9)))
	if _, err := runFetch(t, w, data); err != nil {
		t.Fatal(err)
	}
	d2, b := loadFetched(t, w)
	if d2.Train.Len() != 8 || b.ID == a.ID {
		t.Errorf("after adding an image: %s", d2.Summary())
	}
	writeImage(t, filepath.Join(root, "train/dog/c.png"), 32, 32, rand.New(rand.NewPCG(10, 10)))
	if _, err := runFetch(t, w, data); err != nil {
		t.Fatal(err)
	}
	if _, c := loadFetched(t, w); c.ID == b.ID {
		t.Error("changing an image's content kept the dataset")
	}
	// Normalisation given in the configuration is used as it is.
	data.Mean, data.Std = []float32{0.4914, 0.4824, 0.4467}, []float32{0.2471, 0.2435, 0.2616}
	if _, err := runFetch(t, w, data); err != nil {
		t.Fatal(err)
	}
	if d3, _ := loadFetched(t, w); !slices.Equal(d3.Mean, data.Mean) || !slices.Equal(d3.Std, data.Std) {
		t.Errorf("configured normalisation %v / %v stored as %v / %v", data.Mean, data.Std, d3.Mean, d3.Std)
	}
}

// hugePNG is a valid PNG whose header claims 100,000 × 100,000 pixels.
func hugePNG(t *testing.T) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2)))
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[16:], 100_000)
	binary.BigEndian.PutUint32(b[20:], 100_000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// Images that cannot be read are left out and named, or with data.strict
// refuse the dataset; links out of the folder are not followed.
func TestFetchImageFolderBadImages(t *testing.T) {
	root := imageFolder(t)
	good, _ := os.ReadFile(filepath.Join(root, "train/cat/1.png"))
	os.WriteFile(filepath.Join(root, "train/cat/broken.png"), good[:len(good)/2], 0o644)
	os.WriteFile(filepath.Join(root, "train/dog/huge.png"), hugePNG(t), 0o644)
	outside := filepath.Join(t.TempDir(), "outside.png")
	writeImage(t, outside, 32, 32, rand.New(rand.NewPCG(1, 1)))
	if err := os.Symlink(outside, filepath.Join(root, "train/bird/link.png")); err != nil {
		t.Fatal(err)
	}
	w := t.TempDir()
	store, _ := artifacts.Open(w)
	rep := &notes{Reporter: pipeline.Discard}
	r := &pipeline.Runner{Store: store, Stages: []pipeline.Stage{&Fetch{Data: DataConfig{Dataset: "folder:" + root, CacheDir: t.TempDir()}}}, Report: rep}
	if err := r.Run(context.Background(), pipeline.Options{Target: "all"}); err != nil {
		t.Fatal(err)
	}
	d, _ := loadFetched(t, w)
	// The readable images are kept in order, each its own bytes.
	l, err := imagefolder.List(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, f := range l.Train {
		img, err := imageprep.Open(f.Path)
		if err != nil {
			continue
		}
		if i >= d.Train.Len() || !bytes.Equal(pixels(t, d.Train.Images)[i*3072:(i+1)*3072], imageprep.Squash.Stored(img, 32)) {
			t.Fatalf("training image %d is not %s", i, f.Path)
		}
		i++
	}
	msgs := rep.all()
	if d.Train.Len() != 7 || !strings.Contains(msgs, "2 images cannot be read and are left out") || !strings.Contains(msgs, "broken.png") ||
		!strings.Contains(msgs, "huge.png: image too large") || !strings.Contains(msgs, "link.png: a link that leads out") {
		t.Errorf("%s; reported:\n%s", d.Summary(), msgs)
	}
	_, err = runFetch(t, t.TempDir(), DataConfig{Dataset: "folder:" + root, Strict: true, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "2 of 12 images") || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("strict: %v", err)
	}
}

// A folder without the layout gets an error that says what is missing.
func TestFetchImageFolderLayout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(root string)
		want   string
	}{
		{"no val", func(r string) { os.RemoveAll(filepath.Join(r, "val")) }, "no " + "val or "},
		{"empty class", func(r string) { os.MkdirAll(filepath.Join(r, "train", "fish"), 0o755) }, "train/fish has no PNG or JPEG images"},
		{"unknown val class", func(r string) { writeImage(t, filepath.Join(r, "val/cow/1.png"), 8, 8, rand.New(rand.NewPCG(2, 2))) }, "val/cow is not a class"},
		{"no train", func(r string) { os.RemoveAll(filepath.Join(r, "train")) }, "train/<class>/"},
	} {
		root := imageFolder(t)
		tc.change(root)
		_, err := runFetch(t, t.TempDir(), DataConfig{Dataset: "folder:" + root, CacheDir: t.TempDir()})
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), root+"/", ""), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

// verify's inputs are predict's: in both forms, each test image as the
// evaluation batcher takes it from the stored dataset equals, to the bit,
// what package classify (so predict) makes of its file: the form's Input,
// normalised.
func TestEvaluationInputIsPredicts(t *testing.T) {
	root := imageFolder(t)
	l, err := imagefolder.List(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []model.Config{{InputSize: 32}, {InputSize: 32, StemStride: 2}} {
		form, size := cfg.Form(), cfg.Input()
		w := t.TempDir()
		f := &Fetch{Data: DataConfig{Dataset: "folder:" + root, ImageSize: size, CacheDir: t.TempDir()}, Form: form}
		if _, err := runFetchStage(t, w, f); err != nil {
			t.Fatal(err)
		}
		d, _ := loadFetched(t, w)
		if d.H != form.Side(size) {
			t.Fatalf("%s form: stored %d×%d, want %d", form, d.H, d.W, form.Side(size))
		}
		b := batcher(d, &d.Test, d.Test.Len(), &cfg)
		x, labels := make([]float32, b.Floats()), make([]int32, b.Batch)
		b.Fill(x, labels, 0, 0)
		hw := size * size
		for i, file := range l.Test {
			img, err := imageprep.Open(file.Path)
			if err != nil {
				t.Fatal(err)
			}
			want := form.Input(img, size)
			imageprep.Normalize(want, d.Mean, d.Std)
			for p := range hw {
				for c := range 3 {
					if got := x[(i*hw+p)*3+c]; got != want[c*hw+p] {
						t.Fatalf("%s form, %s: pixel %d channel %d: verify takes %v, predict %v", form, file.Path, p, c, got, want[c*hw+p])
					}
				}
			}
		}
	}
}

// The ImageNet presets name no dataset; fetching without one asks for an
// image folder, as a configuration error.
func TestFetchWithoutDataset(t *testing.T) {
	c, _ := Preset("condensenet-imagenet")
	_, err := runFetch(t, t.TempDir(), c.Data)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--dataset folder:PATH") {
		t.Errorf("fetch without a dataset: %v", err)
	}
}

// This machine's available memory is read (Linux), and a cgroup's limit
// where one is tighter; it bounds the memory decoding takes.
func TestAvailableMemory(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if m := availableMemory(); m < 1<<20 || m > 1<<50 {
		t.Errorf("available memory %d bytes", m)
	}
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(text), 0o644)
	}
	// v2: the parent's limit is the tighter one.
	write("proc-v2", "0::/jobs/train\n")
	write("fs/jobs/memory.max", "1000000\n")
	write("fs/jobs/memory.current", "400000\n")
	write("fs/jobs/train/memory.max", "max\n")
	write("fs/jobs/train/memory.current", "300000\n")
	write("fs/memory.max", "max\n")
	if got, ok := cgroupAvailable(filepath.Join(root, "proc-v2"), filepath.Join(root, "fs")); !ok || got != 600000 {
		t.Errorf("cgroup v2 available = %d, %v; want 600000", got, ok)
	}
	// v1, and a v1 "limit" that means none.
	write("proc-v1", "12:cpu,cpuacct:/x\n4:memory:/x\n")
	write("fs/memory/x/memory.limit_in_bytes", "5000\n")
	write("fs/memory/x/memory.usage_in_bytes", "1000\n")
	if got, ok := cgroupAvailable(filepath.Join(root, "proc-v1"), filepath.Join(root, "fs")); !ok || got != 4000 {
		t.Errorf("cgroup v1 available = %d, %v; want 4000", got, ok)
	}
	write("fs/memory/x/memory.limit_in_bytes", "9223372036854771712\n")
	if _, ok := cgroupAvailable(filepath.Join(root, "proc-v1"), filepath.Join(root, "fs")); ok {
		t.Error("cgroup v1 without a limit is read as one")
	}
	if _, ok := cgroupAvailable(filepath.Join(root, "none"), filepath.Join(root, "fs")); ok {
		t.Error("no cgroup file is read as a limit")
	}
}

// An image folder whose prepared images would not fit on the workdir's
// disk (twice: prepared, then stored) is refused before anything is
// decoded.
func TestFetchImageFolderDiskFull(t *testing.T) {
	defer func(f func(string) int64) { freeDisk = f }(freeDisk)
	freeDisk = func(string) int64 { return 60_000 } // 10 images of 3×32×32 take 30,720 bytes, twice
	_, err := runFetch(t, t.TempDir(), DataConfig{Dataset: "folder:" + imageFolder(t), CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "10 images of 32×32 take 0.0 GB, written twice") || !strings.Contains(err.Error(), "larger disk") {
		t.Errorf("fetch beyond the disk: %v", err)
	}
	if got := diskFree(t.TempDir()); got <= 0 && runtime.GOOS == "linux" {
		t.Errorf("free disk %d bytes", got)
	}
}

// A confusion matrix of ImageNet's 1000 classes is drawn at a fixed size,
// unnamed, instead of an image tens of thousands of pixels wide.
func TestPlotManyClasses(t *testing.T) {
	for _, k := range []int{10, 1000} {
		classes := make([]string, k)
		conf := make([][]int, k)
		for i := range classes {
			classes[i] = fmt.Sprintf("n%04d", i)
			conf[i] = make([]int, k)
			conf[i][i], conf[i][(i+1)%k] = 3, 1
		}
		b, err := plotConfusion(conf, classes)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width > 2000 || cfg.Width < 200 {
			t.Errorf("%d classes: a %d×%d image (%v)", k, cfg.Width, cfg.Height, err)
		}
	}
}

// A class with one training image, or none to test on, is named.
func TestThinClasses(t *testing.T) {
	l := &imagefolder.Listing{Root: "photos", TestDir: "val", Classes: []string{"cat", "dog", "owl"},
		Train: []imagefolder.File{{Label: 0}, {Label: 0}, {Label: 1}, {Label: 2}, {Label: 2}},
		Test:  []imagefolder.File{{Label: 0}, {Label: 1}}}
	got := strings.Join(thinClasses(l), "\n")
	for _, want := range []string{"class dog has a single training image", "class owl has no images in " + filepath.Join("photos", "val", "owl")} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "cat") {
		t.Errorf("warnings name cat, which has enough: %q", got)
	}
}
