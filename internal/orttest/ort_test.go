//go:build cgo

// Package orttest checks exported models in ONNX Runtime through
// github.com/yalue/onnxruntime_go. It is test-only and the only place that
// uses cgo, so the pipeline binary still builds with CGO_ENABLED=0.
//
// The runtime comes from npm (ONNX Runtime has no other source here):
//
//	npm install --prefix .ort --ignore-scripts onnxruntime-node@1.30.0
//
// and is found at .ort/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/
// libonnxruntime.so.1 from the repository root, or at ONNXRUNTIME_LIB.
// Without it the test skips, saying so, except under CI=true, where it fails.
package orttest

import (
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/batch"
	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/internal/pipelinetest"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/stages"
)

func runtimeLibrary(t testing.TB) string {
	p := os.Getenv("ONNXRUNTIME_LIB")
	if p == "" {
		p = "../../.ort/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
	}
	if _, err := os.Stat(p); err != nil {
		msg := "ONNX Runtime not found at " + p + ": npm install --prefix .ort --ignore-scripts onnxruntime-node@1.30.0 (from the repository root), or set ONNXRUNTIME_LIB"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// exportTiny runs the pipeline to the export stage on synthetic data.
func exportTiny(t *testing.T) (onnxPath string, cfg stages.Config) {
	cfg = pipelinetest.Config()
	return pipelinetest.Run(t, t.TempDir(), cfg), cfg
}

func TestExportRunsInONNXRuntime(t *testing.T) {
	ort.SetSharedLibraryPath(runtimeLibrary(t))
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatal(err)
	}
	defer ort.DestroyEnvironment()
	path, cfg := exportTiny(t)
	for _, n := range []int{1, 7} {
		rng := rand.New(rand.NewPCG(3, uint64(n)))
		x := make([]float32, n*3*32*32)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		want := engineLogits(t, filepath.Dir(filepath.Dir(path)), x, n)
		in, err := ort.NewTensor(ort.NewShape(int64(n), 3, 32, 32), x)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(cfg.Model.Classes)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ort.NewDynamicAdvancedSession(path, []string{"input"}, []string{"logits"}, nil)
		if err != nil {
			t.Fatalf("ONNX Runtime refused the exported model: %v", err)
		}
		if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		got := out.GetData()
		var maxDiff float64
		k := cfg.Model.Classes
		for i := range want {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		for i := range n {
			if argmax(got[i*k:(i+1)*k]) != argmax(want[i*k:(i+1)*k]) {
				t.Errorf("batch %d image %d: ONNX Runtime and the engine disagree on the class", n, i)
			}
		}
		if maxDiff > 1e-4 {
			t.Errorf("batch %d: max |ONNX Runtime − engine| = %.3g, want < 1e-4", n, maxDiff)
		}
		t.Logf("batch %d: max |ONNX Runtime − engine| = %.3g", n, maxDiff)
		s.Destroy()
		in.Destroy()
		out.Destroy()
	}
}

// engineLogits runs the workdir's condensed network on the engine for
// images x, NCHW.
func engineLogits(t *testing.T, workdir string, x []float32, n int) []float32 {
	store, _ := artifacts.Open(workdir)
	a, err := store.Get("condense")
	if err != nil {
		t.Fatal(err)
	}
	arch, list, err := model.LoadCondensed(a)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.NewCondensed(arch, list, n, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	logits := make([]float32, n*arch.Config.Classes)
	net.Forward(logits, relayout(x, n, arch.Config.Input(), true))
	return logits
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// relayout converts n images of size × size between NCHW (ONNX's input)
// and NHWC (the engine's); fromNCHW says which x is.
func relayout(x []float32, n, size int, fromNCHW bool) []float32 {
	y := make([]float32, len(x))
	hw := size * size
	for i := range n {
		for c := range 3 {
			for p := range hw {
				chw, hwc := (i*3+c)*hw+p, (i*hw+p)*3+c
				if fromNCHW {
					y[hwc] = x[chw]
				} else {
					y[chw] = x[hwc]
				}
			}
		}
	}
	return y
}

// Package classify, which runs an exported file on the engine, agrees
// with ONNX Runtime running the same file on the same prepared images.
func TestClassifyAgreesWithONNXRuntime(t *testing.T) {
	path, _ := exportTiny(t)
	classifyAgrees(t, path)
}

// The ImageNet form (a stride-2 stem on 224×224, five blocks) exports to
// a file that ONNX Runtime runs as the engine does.
func TestImageNetFormInONNXRuntime(t *testing.T) {
	root := filepath.Join(t.TempDir(), "folder")
	rng := rand.New(rand.NewPCG(7, 7))
	for _, p := range []string{"train/a/1.png", "train/a/2.png", "train/b/1.png", "train/b/2.png", "val/a/1.png", "val/b/1.png"} {
		img := image.NewNRGBA(image.Rect(0, 0, 230, 240))
		for k := range img.Pix {
			img.Pix[k] = byte(rng.IntN(256))
		}
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		f, _ := os.Create(filepath.Join(root, p))
		png.Encode(f, img)
		f.Close()
	}
	cfg, _ := stages.Preset("condensenet-imagenet")
	cfg.Data.Dataset = "folder:" + root
	cfg.Model.Stages, cfg.Model.Classes = []int{1, 1, 1, 1, 1}, 2
	cfg.Train.Epochs, cfg.Train.Batch = 1, 2
	cfg.Verify.Tolerance, cfg.Verify.Batch = 100, 2
	classifyAgrees(t, pipelinetest.Run(t, t.TempDir(), cfg))
}

// classifyAgrees checks classify's probabilities against ONNX Runtime's
// softmax on the model at path, for images of several sizes.
func classifyAgrees(t *testing.T, path string) {
	ort.SetSharedLibraryPath(runtimeLibrary(t))
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatal(err)
	}
	defer ort.DestroyEnvironment()
	m, err := classify.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{"input"}, []string{"logits"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	rng := rand.New(rand.NewPCG(5, 6))
	size, k := int64(m.InputSize()), int64(len(m.Classes()))
	for i := range 5 {
		img := image.NewNRGBA(image.Rect(0, 0, 20+9*i, 32))
		for k := range img.Pix {
			img.Pix[k] = byte(rng.IntN(256))
		}
		res, err := m.Classify(img)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := ort.NewTensor(ort.NewShape(1, 3, size, size), m.Prepare(img))
		out, _ := ort.NewEmptyTensor[float32](ort.NewShape(1, k))
		if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
			t.Fatal(err)
		}
		logits := out.GetData()
		top := logits[0]
		for _, v := range logits {
			top = max(top, v)
		}
		var sum float64
		for _, v := range logits {
			sum += math.Exp(float64(v - top))
		}
		for c, v := range logits {
			want := math.Exp(float64(v-top)) / sum
			if math.Abs(res.Probabilities[c]-want) > 1e-5 {
				t.Errorf("image %d class %d: classify %v, ONNX Runtime %v", i, c, res.Probabilities[c], want)
			}
		}
		in.Destroy()
		out.Destroy()
	}
}

// The int8 QDQ export runs in ONNX Runtime (which fuses it into integer
// convolutions) and names the engine's int8 class for at least 99.5% of
// the test images.
func TestInt8ExportInONNXRuntime(t *testing.T) {
	ort.SetSharedLibraryPath(runtimeLibrary(t))
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatal(err)
	}
	defer ort.DestroyEnvironment()
	cfg := pipelinetest.Config()
	cfg.Data.SyntheticTest = 400
	dir := t.TempDir()
	path := filepath.Join(filepath.Dir(pipelinetest.Run(t, dir, cfg)), "model.int8.onnx")
	store, _ := artifacts.Open(dir)
	fetched, err := store.Get("fetch")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := artifacts.LoadDataset(fetched)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	condensed, err := store.Get("condense")
	if err != nil {
		t.Fatal(err)
	}
	arch, tensors, err := model.LoadCondensed(condensed)
	if err != nil {
		t.Fatal(err)
	}
	scales, err := model.LoadInt8Scales(condensed)
	if err != nil || scales == nil {
		t.Fatalf("no int8 scales: %v", err)
	}
	n, k, size := ds.Test.Len(), arch.Config.Classes, arch.Config.Input()
	net, err := model.NewCondensedInt8(arch, tensors, scales, n, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	b := &batch.Batcher{Images: ds.Test.Images, Labels: ds.Test.Labels, Size: size, Batch: n, Mean: ds.Mean, Std: ds.Std}
	nhwc, labels := make([]float32, b.Floats()), make([]int32, n)
	if _, err := b.Fill(nhwc, labels, 0, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n*k)
	net.Forward(want, nhwc)

	in, err := ort.NewTensor(ort.NewShape(int64(n), 3, int64(size), int64(size)), relayout(nhwc, n, size, false))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(k)))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	s, err := ort.NewDynamicAdvancedSession(path, []string{"input"}, []string{"logits"}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the int8 model: %v", err)
	}
	defer s.Destroy()
	if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		t.Fatal(err)
	}
	got := out.GetData()
	agree, maxDiff, top := 0, 0.0, 0.0
	for i := range n {
		if argmax(got[i*k:(i+1)*k]) == argmax(want[i*k:(i+1)*k]) {
			agree++
		}
	}
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		top = math.Max(top, math.Abs(float64(want[i])))
	}
	t.Logf("int8: ONNX Runtime and the engine agree on %d of %d images; max |difference| %.3g (largest |logit| %.3g)", agree, n, maxDiff, top)
	if float64(agree) < 0.995*float64(n) {
		t.Errorf("ONNX Runtime and the engine agree on %d of %d images, want 99.5%%", agree, n)
	}
}
