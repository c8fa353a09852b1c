package classify

import (
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/imageprep"
	"github.com/condensenet/condensenet/internal/pipelinetest"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/onnxio"
	"github.com/condensenet/condensenet/stages"
)

// The model rebuilt from an ONNX file computes what the file computes:
// the probabilities equal softmax of the reference evaluator's logits on
// the same prepared input, with and without the normalisation in the
// graph; and the workdir's condensed folder gives the same bits.
func TestMatchesReferenceEvaluator(t *testing.T) {
	dir := t.TempDir()
	cfg := pipelinetest.Config()
	// Each export replaces the last: keep copies.
	plain, withPre := filepath.Join(t.TempDir(), "plain.onnx"), filepath.Join(t.TempDir(), "pre.onnx")
	b, _ := os.ReadFile(pipelinetest.Run(t, dir, cfg))
	os.WriteFile(plain, b, 0o644)
	cfg.Export.IncludePreprocessing = true
	b, _ = os.ReadFile(pipelinetest.Run(t, dir, cfg))
	os.WriteFile(withPre, b, 0o644)
	rng := rand.New(rand.NewPCG(1, 2))
	imgs := []image.Image{pipelinetest.RandomImage(rng, 32, 32), pipelinetest.RandomImage(rng, 50, 41), pipelinetest.RandomImage(rng, 7, 9)}
	folder, err := Open(filepath.Join(dir, "condense"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{plain, withPre} {
		m, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = os.ReadFile(path)
		graph, err := onnxio.Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		raw := path == withPre
		for i, img := range imgs {
			res, err := m.Classify(img)
			if err != nil {
				t.Fatal(err)
			}
			x := m.Prepare(img)
			if raw {
				x = imageprep.Squash.Input(img, m.InputSize())
			}
			out, err := onnxio.Eval(graph, map[string]onnxio.Tensor{"input": {Dims: []int{1, 3, 32, 32}, Data: x}})
			if err != nil {
				t.Fatal(err)
			}
			want := softmax(out["logits"].Data)
			for k := range want {
				if math.Abs(res.Probabilities[k]-want[k]) > 1e-5 {
					t.Fatalf("%s image %d: P(%s) = %v, the file gives %v", filepath.Base(path), i, m.Classes()[k], res.Probabilities[k], want[k])
				}
			}
			other, err := folder.Classify(img)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(other.Probabilities, res.Probabilities) {
				t.Errorf("image %d: the condensed folder gives %v, %s %v", i, other.Probabilities, filepath.Base(path), res.Probabilities)
			}
		}
	}
	if got, want := folder.Classes(), []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; len(got) != cfg.Model.Classes {
		t.Errorf("classes %v, want %d like %v", got, cfg.Model.Classes, want)
	}
}

// Many calls at once, and ClassifyAll, give each image the result it gets
// alone.
func TestConcurrentCalls(t *testing.T) {
	m, err := Open(pipelinetest.Run(t, t.TempDir(), pipelinetest.Config()))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var imgs []image.Image
	var want []Result
	for range 12 {
		img := pipelinetest.RandomImage(rng, 32+rng.IntN(20), 32)
		r, err := m.Classify(img)
		if err != nil {
			t.Fatal(err)
		}
		imgs, want = append(imgs, img), append(want, r)
	}
	all, err := m.ClassifyAll(imgs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]Result, len(imgs))
	for i, img := range imgs {
		wg.Go(func() { got[i], _ = m.Classify(img) })
	}
	wg.Wait()
	for i := range imgs {
		if !slices.Equal(all[i].Probabilities, want[i].Probabilities) || !slices.Equal(got[i].Probabilities, want[i].Probabilities) {
			t.Errorf("image %d: alone %v, in ClassifyAll %v, concurrently %v", i, want[i].Probabilities, all[i].Probabilities, got[i].Probabilities)
		}
	}
	if n := len(m.idle); n > runtime.GOMAXPROCS(0) {
		t.Errorf("%d networks after 12 calls at once; at most GOMAXPROCS (%d) may exist", n, runtime.GOMAXPROCS(0))
	}
	for _, n := range m.idle {
		if n.net.W != m.first.W {
			t.Errorf("a pooled network holds a copy of the weights, want the first network's")
		}
	}
	top := want[0].Top(3)
	if len(top) != 3 || top[0].Probability < top[1].Probability || top[0].Class != m.Classes()[top[0].Index] {
		t.Errorf("Top(3) = %+v", top)
	}
}

// Files that are not this program's exports are refused with a reason.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	path := pipelinetest.Run(t, dir, pipelinetest.Config())
	store, _ := artifacts.Open(dir)
	a, _ := store.Get("condense")
	arch, tensors, err := model.LoadCondensed(a)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := stages.ONNX(arch, tensors, 13) // no metadata
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"no metadata", bare, "exported by this program"},
		{"truncated", b[:len(b)/2], "invalid"},
		{"not ONNX", []byte("hello"), "invalid"},
	} {
		p := filepath.Join(t.TempDir(), "model.onnx")
		os.WriteFile(p, tc.data, 0o644)
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "nothing")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

// A folder path with a trailing slash, as shell completion writes it, is
// the folder.
func TestOpenTrailingSlash(t *testing.T) {
	dir := t.TempDir()
	pipelinetest.Run(t, dir, pipelinetest.Config())
	if _, err := Open(filepath.Join(dir, "condense") + string(filepath.Separator)); err != nil {
		t.Fatalf("Open(work/condense/): %v", err)
	}
}

// An image without pixels is an error naming it, alone or among others,
// not a panic (in ClassifyAll's workers it would end the caller's process).
func TestEmptyImages(t *testing.T) {
	m, err := Open(pipelinetest.Run(t, t.TempDir(), pipelinetest.Config()))
	if err != nil {
		t.Fatal(err)
	}
	good := pipelinetest.RandomImage(rand.New(rand.NewPCG(5, 6)), 32, 32)
	for _, empty := range []image.Image{image.NewRGBA(image.Rect(0, 0, 0, 0)), image.NewGray(image.Rect(3, 3, 9, 3)), nil} {
		if _, err := m.Classify(empty); err == nil || !strings.Contains(err.Error(), "image") {
			t.Errorf("Classify(%v) = %v, want an error", empty, err)
		}
		if _, err := m.ClassifyAll([]image.Image{good, empty}); err == nil || !strings.Contains(err.Error(), "image 1") {
			t.Errorf("ClassifyAll with an empty second image = %v, want an error naming image 1", err)
		}
	}
}

// TestWriteTestdata rewrites testdata/tiny.onnx, which the example reads,
// when UPDATE_TESTDATA=1.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("UPDATE_TESTDATA") != "1" {
		t.Skip("UPDATE_TESTDATA=1 rewrites testdata/tiny.onnx")
	}
	b, err := os.ReadFile(pipelinetest.Run(t, t.TempDir(), pipelinetest.Config()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/tiny.onnx", b, 0o644); err != nil {
		t.Fatal(err)
	}
}
