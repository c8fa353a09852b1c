package model

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/engine/cpu"
)

// condensingParity is what testdata/condensing_parity.py reports.
type condensingParity struct {
	Torch       string       `json:"torch"`
	Steps       []maskStep   `json:"steps"`
	Losses      [][2]float64 `json:"losses"` // ours, PyTorch's, per iteration
	FinalMedian float64      `json:"final_median_rel"`
	FinalWorst  float64      `json:"final_worst_rel"`
	WorstTensor string       `json:"final_worst_tensor"`
}

// maskStep compares one condensing step's masks, layer by layer.
type maskStep struct {
	Iteration int     `json:"iteration"`
	Progress  float64 `json:"progress"`
	Layers    int     `json:"layers"`
	Kept      int     `json:"kept"`      // weights each side keeps, all layers
	Same      int     `json:"differing"` // mask entries that differ, from the same weights
	Drifted   int     `json:"differing_drifted"`
}

// TestCondensingParity trains CondenseNet-86 through its three condensing
// steps here and in the official PyTorch code, from the same initial
// weights on the same batches and learning rates, and compares:
//
//   - at each condensing step, the masks both choose from the same weights
//     (ours just before the step, loaded into PyTorch), which must be
//     identical: float drift cannot decide them;
//   - the masks PyTorch's own run would choose, having drifted from ours
//     by float rounding: a measure of how close to ties the choices are;
//   - the loss at every iteration and every tensor at the end, PyTorch's
//     run taking our masks at each step (shown the same above), so that
//     only float rounding separates the two runs: a mask chosen otherwise
//     on a near-tie would make them different networks.
//
// The schedule is the paper's compressed to 120 iterations of 16 synthetic
// images, so the steps fall at iterations 20, 40 and 60. It needs
// /usr/bin/python3 with torch and the official code
// (CONDENSENET_OFFICIAL, default ../../shared/bench/condensenet_official,
// the read-only copy beside the checkout), and runs when
// CONDENSENET_PARITY=1: about two minutes on two cores.
func TestCondensingParity(t *testing.T) {
	if os.Getenv("CONDENSENET_PARITY") != "1" {
		t.Skip("set CONDENSENET_PARITY=1 to compare the condensing steps with the official PyTorch code")
	}
	official, err := filepath.Abs(cmp.Or(os.Getenv("CONDENSENET_OFFICIAL"), "../../shared/bench/condensenet_official"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(official, "layers.py")); err != nil {
		t.Fatalf("the official CondenseNet code is not at %s (set CONDENSENET_OFFICIAL): %v", official, err)
	}
	const n, iters, peakLR = 16, 120, 0.02
	cfg := CondenseNet(86)
	net, err := NewNet(cfg, n, cpu.New(runtime.GOMAXPROCS(0)), 1)
	if err != nil {
		t.Fatal(err)
	}
	// twin is the same run from weights one rounding away (each parameter
	// times 1 ± 2⁻²⁴), taking our masks at each step as PyTorch's replay
	// does: how far it strays is how far float rounding alone carries.
	twin, err := NewNet(cfg, n, cpu.New(runtime.GOMAXPROCS(0)), 1)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]bool{}
	for _, p := range net.ParamList() {
		params[p.Name] = true
	}
	load(t, twin, net.Tensors(true), func(x Named) Named {
		if params[x.Name] {
			x.Data = slices.Clone(x.Data)
			for i := range x.Data {
				x.Data[i] *= 1 + float32(1-2*(i%2))*0x1p-24
			}
		}
		return x
	})
	var twinLoss []float64
	data := cifar.Synthetic(1, n*iters, 0)
	var dump []Named
	add := func(prefix string, ts []Named, keep func(string) bool) {
		for _, x := range ts {
			if keep == nil || keep(x.Name) {
				x.Name = prefix + x.Name
				dump = append(dump, x)
			}
		}
	}
	scalar := func(name string, v float64) {
		dump = append(dump, Named{Name: name, Shape: []int{1}, Data: []float32{float32(v)}})
	}
	add("init.", net.Tensors(false), nil)
	step := 0
	for it := range iters {
		p := float64(it) / iters
		images, nchw, labels := syntheticBatch(data, it*n, n)
		if cfg.Stage(p) > net.StageReached() {
			add(fmt.Sprintf("pre%d.", step), net.Tensors(false), nil)
			net.Condense(p)
			add(fmt.Sprintf("post%d.", step), net.Tensors(false), func(name string) bool {
				return strings.HasSuffix(name, "._mask") || strings.HasSuffix(name, "._count") || strings.HasSuffix(name, "._stage")
			})
			scalar(fmt.Sprintf("step%d.iteration", step), float64(it))
			step++
			twin.Condense(p)
			condensed := map[string]Named{}
			for _, x := range net.Tensors(false) {
				condensed[x.Name] = x
			}
			load(t, twin, twin.Tensors(true), func(x Named) Named {
				if strings.HasSuffix(x.Name, "._mask") || strings.HasSuffix(x.Name, "._count") || strings.HasSuffix(x.Name, "._stage") {
					return condensed[x.Name]
				}
				return x
			})
		}
		lr := 0.5 * peakLR * (1 + math.Cos(math.Pi*p))
		for _, x := range []*Net{net, twin} {
			x.SetInput(images, labels)
			x.Forward(true)
			x.ZeroGrad()
			x.Backward()
			x.Update(float32(lr), 0.9, 1e-4)
		}
		twinLoss = append(twinLoss, twin.Loss())
		lab := make([]float32, n)
		for i, l := range labels {
			lab[i] = float32(l)
		}
		dump = append(dump, Named{Name: fmt.Sprintf("input.%03d", it), Shape: []int{n, 3, 32, 32}, Data: nchw},
			Named{Name: fmt.Sprintf("labels.%03d", it), Shape: []int{n}, Data: lab})
		scalar(fmt.Sprintf("loss.%03d", it), net.Loss())
		scalar(fmt.Sprintf("lr.%03d", it), lr)
	}
	if step != cfg.CondenseFactor-1 {
		t.Fatalf("%d condensing steps in %d iterations, want %d", step, iters, cfg.CondenseFactor-1)
	}
	add("final.", net.Tensors(false), nil)
	run := filepath.Join(t.TempDir(), "run.safetensors")
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, dump, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(run, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("/usr/bin/python3", "testdata/condensing_parity.py", official, run, fmt.Sprint(iters))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the PyTorch side failed (apt-get install python3-torch?): %v", err)
	}
	var r condensingParity
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	t.Logf("PyTorch %s", r.Torch)
	for _, s := range r.Steps {
		t.Logf("step at iteration %d (progress %.3f): %d layers keep %d weights; %d mask entries differ from the same weights, %d in PyTorch's own drifted run",
			s.Iteration, s.Progress, s.Layers, s.Kept, s.Same, s.Drifted)
		if s.Same != 0 {
			t.Errorf("condensing step at iteration %d: %d mask entries differ from the official code's, from the same weights", s.Iteration, s.Same)
		}
	}
	if len(r.Steps) != step {
		t.Errorf("PyTorch reported %d condensing steps, we made %d", len(r.Steps), step)
	}
	// Each run's loss against ours, relative, as the mean over windows of
	// 20 iterations: single batches scatter.
	window := func(other func(i int) float64) []float64 {
		var out []float64
		for lo := 0; lo < iters; lo += 20 {
			var sum float64
			for i := lo; i < lo+20; i++ {
				sum += math.Abs(other(i)-r.Losses[i][0]) / r.Losses[i][0]
			}
			out = append(out, sum/20)
		}
		return out
	}
	torch, drift := window(func(i int) float64 { return r.Losses[i][1] }), window(func(i int) float64 { return twinLoss[i] })
	for w := range torch {
		t.Logf("iterations %3d-%3d: losses %.2g from ours in PyTorch, %.2g in ours from weights one rounding away",
			20*w, 20*w+19, torch[w], drift[w])
	}
	t.Logf("final tensors in PyTorch: median relative difference %.2g, worst %.2g (%s)", r.FinalMedian, r.FinalWorst, r.WorstTensor)
	// Training from scratch amplifies any difference: one rounding in the
	// initial weights grows to percents within a hundred steps. A
	// difference in method (a mask, a stage, the learning rate, the
	// update) shows as PyTorch straying much further than the twin; the
	// factor 4 allows for the two runs' drifts being draws of one spread.
	for w := range torch {
		if torch[w] > 4*drift[w]+1e-4 {
			t.Errorf("iterations %d-%d: PyTorch's losses are %.2g from ours, beyond float drift (4 × %.2g + 1e-4)", 20*w, 20*w+19, torch[w], drift[w])
		}
	}
}

// load sets net's tensors to ts, each passed through f first.
func load(t *testing.T, net *Net, ts []Named, f func(Named) Named) {
	t.Helper()
	m := map[string]Named{}
	for _, x := range ts {
		m[x.Name] = f(x)
	}
	if err := net.LoadTensors(m, true); err != nil {
		t.Fatal(err)
	}
}

// syntheticBatch returns images first..first+n of d's training split,
// scaled to [-1, 1), channels-last for the engine and channels-first for
// PyTorch, with their labels.
func syntheticBatch(d *cifar.Dataset, first, n int) (nhwc, nchw []float32, labels []int32) {
	nhwc, nchw, labels = make([]float32, n*cifar.ImageSize), make([]float32, n*cifar.ImageSize), make([]int32, n)
	for b := range n {
		img := d.Train.Images[(first+b)*cifar.ImageSize:]
		labels[b] = int32(d.Train.Labels[first+b])
		for c := range 3 {
			for p := range 1024 {
				v := float32(img[c*1024+p])/127.5 - 1
				nchw[(b*3+c)*1024+p] = v
				nhwc[(b*1024+p)*3+c] = v
			}
		}
	}
	return nhwc, nchw, labels
}
