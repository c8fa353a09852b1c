package cuda

import (
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/model"
)

// testConfig is a small CondenseNet with every kind of layer: two blocks
// (so a transition), dropout, group lasso and condensation.
func testConfig() model.Config {
	return model.Config{Stages: []int{2, 2}, Growth: []int{4, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 4,
		CondenseFactor: 4, Classes: 5, Dropout: 0.1, Lasso: 1e-5}
}

// trainSteps runs steps training steps, condensing as training would at
// the given points of progress, and returns the last loss.
func trainSteps(net *model.Net, progress []float64) float64 {
	cfg := net.Cfg
	images, labels := model.RandomBatch(net.N, 32, cfg.Classes, 1)
	net.SetInput(images, labels)
	var loss float64
	for _, p := range progress {
		net.Condense(p)
		net.Forward(true)
		net.ZeroGrad()
		net.Backward()
		lasso := net.Lasso()
		net.Update(0.1, 0.9, 1e-4)
		loss = net.Loss() + lasso
	}
	return loss
}

// condensed converts net into the inference network for batch n on be.
func condensed(t *testing.T, net *model.Net, n int, be engine.Backend) *model.Condensed {
	t.Helper()
	ts := map[string]model.Named{}
	for _, x := range net.Tensors(false) {
		ts[x.Name] = x
	}
	arch, tensors, err := model.Convert(net.Cfg, ts, model.ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.NewCondensed(arch, tensors, n, be)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEveryLaunchChecked drives the training network through condensation
// and the condensed network on the emulated GPU, which checks every kernel
// launch (argument kinds against kernels.cu, pointers inside allocations)
// and every GEMM (cuBLAS's argument rules, every element in bounds), and
// then that every kernel was launched at least once.
func TestEveryLaunchChecked(t *testing.T) {
	h := newEmuGPU(t)
	b := &Backend{dev: h, name: "host"}
	net, err := model.NewNet(testConfig(), 4, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	trainSteps(net, []float64{0, 0.2, 0.3, 0.45, 0.6})
	net.Forward(false)
	cn := condensed(t, net, 4, b)
	images, _ := model.RandomBatch(4, 32, net.Cfg.Classes, 1)
	cn.Forward(make([]float32, 4*net.Cfg.Classes), images)
	// Not used by the model's training network: the channel ops' gradients.
	x, y := b.Alloc(4*6), b.Alloc(4*6)
	b.IndexSelectBackward(x.V(), y.V(), []int32{5, 0, 2}, 4, 6, 6)
	b.ShuffleBackward(x.V(), y.V(), 4, 6, 2, 6, 6)
	b.ShuffleForward(x.V(), y.V(), 4, 6, 2, 6, 6)
	b.ReLUForward(x.V(), y.V(), 4, 6, 6, 6)
	b.ReLUBackward(x.V(), y.V(), y.V(), 4, 6, 6, 6)
	// Nor a strided convolution's backward (col2im); the ImageNet stem has one.
	s := engine.ConvShape{N: 1, H: 4, W: 4, C: 3, K: 2, R: 3, S: 3, Stride: 2, Pad: 1, G: 1, LdIn: 3, LdOut: 2}
	in, out, w := b.Alloc(16*3), b.Alloc(4*2), b.Alloc(2*3*9)
	b.NewConv(s).Backward(in.V(), w.V(), out.V(), in.V(), w.V())
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	for name := range signatures {
		if h.launches[name] == 0 {
			t.Errorf("kernel %s was never launched", name)
		}
	}
	if p := b.PeakMemory(); p <= 0 || p > int64(h.used) {
		t.Errorf("peak device memory %d bytes, %d allocated in all", p, h.used)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(h.sizes) != 0 {
		t.Errorf("Close left %d allocations", len(h.sizes))
	}
}

// A launch with the wrong arguments is an error, and the backend keeps the
// first error and skips what follows.
func TestLaunchErrorsStick(t *testing.T) {
	h := newEmuGPU(t)
	b := &Backend{dev: h}
	x := b.Alloc(8)
	b.run("relu_fwd", 8, va(x.V()), va(x.V()), ia(8)) // three arguments short
	b.MaskForward(x.V(), x.V(), x.V(), 8)
	err := b.Sync()
	if err == nil || h.launches["mask_fwd"] != 0 {
		t.Fatalf("Sync = %v, mask_fwd launched %d times; want the packing error and nothing after", err, h.launches["mask_fwd"])
	}
	bogus := &engine.Tensor{Len: 8, Device: uintptr(0x10)}
	b2 := &Backend{dev: newEmuGPU(t)}
	b2.MaskForward(bogus.V(), bogus.V(), bogus.V(), 8)
	if b2.Sync() == nil {
		t.Errorf("a pointer outside every allocation was not caught")
	}
}

// Running out of device memory while building a network is an error that
// the next Sync reports, not a crash.
func TestOutOfMemoryIsAnError(t *testing.T) {
	h := newEmuGPU(t)
	h.limit = 1 << 20
	b := &Backend{dev: h}
	net, err := model.NewNet(testConfig(), 16, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	net.Forward(true)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "OUT_OF_MEMORY") {
		t.Fatalf("Sync = %v, want the allocation failure", err)
	}
}

// With SyncEach, a GPU fault is reported with the kernel or GEMM that
// caused it, its grid and its arguments; without it, only the sync that
// saw it is named.
func TestSyncEachNamesTheFault(t *testing.T) {
	for _, tc := range []struct {
		fault string
		want  []string
	}{
		{"bn_apply", []string{"kernel bn_apply (grid [", "block [256 1 1]", "float 0 of ", "null"}},
		{"gemm", []string{"GEMM (transA ", "m 8, n 4096, k 27", "A float 0 of "}},
	} {
		for _, each := range []bool{true, false} {
			h := newEmuGPU(t)
			h.fault = tc.fault
			b := &Backend{dev: h, syncEach: each}
			net, err := model.NewNet(testConfig(), 4, b, 1)
			if err != nil {
				t.Fatal(err)
			}
			net.Forward(false)
			err = b.Sync()
			if err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_ILLEGAL_ADDRESS") {
				t.Fatalf("fault in %s, SyncEach %v: Sync = %v", tc.fault, each, err)
			}
			for _, w := range tc.want {
				if strings.Contains(err.Error(), w) != each {
					t.Errorf("fault in %s, SyncEach %v: %q says %q: %v", tc.fault, each, err, w, !each)
				}
			}
		}
	}
}

// A launch and a GEMM allocate nothing on the host once the backend's
// scratch buffers have grown: a training step makes about 1,200 of them.
func TestLaunchesDoNotAllocate(t *testing.T) {
	useStandIn(t)
	b, err := Open(0, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := engine.ConvShape{N: 2, H: 6, W: 6, C: 8, K: 4, G: 2, R: 3, S: 3, Stride: 1, Pad: 1, LdIn: 8, LdOut: 4}
	conv := b.NewConv(s)
	norm := b.NewBatchNorm(engine.NormShape{P: 72, C: 8, LdIn: 8, LdOut: 8, ReLU: true})
	x, y, w, z := b.Alloc(72*8), b.Alloc(72*8), b.Alloc(4*4*9), b.Alloc(72*4)
	gamma, beta, rm, rv := b.Alloc(8), b.Alloc(8), b.Alloc(8), b.Alloc(8)
	step := func() {
		norm.ForwardTrain(y.V(), x.V(), gamma.V(), beta.V(), rm.V(), rv.V())
		conv.Forward(z.V(), y.V(), w.V())
		b.ReLUForward(z.V(), z.V(), 72, 4, 4, 4)
	}
	step()
	if allocs := testing.AllocsPerRun(20, step); allocs != 0 {
		t.Errorf("%v host allocations per BatchNorm + convolution + ReLU", allocs)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}
