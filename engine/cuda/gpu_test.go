package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
)

// The tests in this file compare the backend with the CPU's three ways: on
// the emulated GPU (kernels.cu run on the CPU, see emuGPU), through the
// real driver path against stand-in libraries (see driverSource), and on a
// real GPU when there is one; without one that part skips, saying so.

// onDevices runs check on each device, opening it in the subtest's own
// goroutine: CUDA's context is bound to the goroutine that opened it.
func onDevices(t *testing.T, check func(*testing.T, *Backend)) {
	t.Run("emulated", func(t *testing.T) {
		b := &Backend{dev: newEmuGPU(t), name: "emulated"}
		defer b.Close()
		check(t, b)
	})
	t.Run("driver", func(t *testing.T) {
		b := openStandIn(t)
		defer b.Close()
		check(t, b)
	})
	t.Run("gpu", func(t *testing.T) {
		b := openGPU(t)
		defer b.Close()
		check(t, b)
	})
}

// openGPU opens the real GPU, synchronising after every launch so that a
// fault names its kernel and does not poison the tests after it.
func openGPU(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(0, Options{Log: func(s string) { t.Log(s) }, SyncEach: true})
	if err != nil {
		if NoDevice(err) {
			t.Skipf("no GPU on this machine; the GPU parity suite did not run (%v)", err)
		}
		t.Fatalf("a GPU driver is here but the backend did not start: %v", err)
	}
	t.Logf("on %s", b.Name())
	return b
}

func TestElementwise(t *testing.T) { onDevices(t, checkElementwise) }

func checkElementwise(t *testing.T, b *Backend) {
	p := newPair(t, b)
	const n, h, w, c, ldIn, ldOut = 3, 6, 4, 5, 7, 6
	rows := n * h * w

	in, out := p.rand(rows*ldIn), p.rand(rows*ldOut)
	p.ref.ReLUForward(out.c.V(), in.c.V(), rows, c, ldIn, ldOut)
	p.dev.ReLUForward(out.d.V(), in.d.V(), rows, c, ldIn, ldOut)
	p.close("relu forward", out, 0, 0)
	dIn, dOut := p.rand(rows*ldIn), p.rand(rows*ldOut)
	p.ref.ReLUBackward(dIn.c.V(), dOut.c.V(), out.c.V(), rows, c, ldIn, ldOut)
	p.dev.ReLUBackward(dIn.d.V(), dOut.d.V(), out.d.V(), rows, c, ldIn, ldOut)
	p.close("relu backward", dIn, 0, 0)

	pooled := p.rand(n * h / 2 * w / 2 * ldOut)
	p.ref.AvgPool2Forward(pooled.c.V(), in.c.V(), n, h, w, c, ldIn, ldOut)
	p.dev.AvgPool2Forward(pooled.d.V(), in.d.V(), n, h, w, c, ldIn, ldOut)
	p.close("avgpool forward", pooled, exact, exact)
	p.ref.AvgPool2Backward(dIn.c.V(), pooled.c.V(), n, h, w, c, ldIn, ldOut)
	p.dev.AvgPool2Backward(dIn.d.V(), pooled.d.V(), n, h, w, c, ldIn, ldOut)
	p.close("avgpool backward", dIn, exact, exact)

	feat := p.rand(n * c)
	p.ref.GlobalAvgPoolForward(feat.c.V(), in.c.V(), n, h*w, c, ldIn)
	p.dev.GlobalAvgPoolForward(feat.d.V(), in.d.V(), n, h*w, c, ldIn)
	p.close("global pool forward", feat, exact, exact)
	p.ref.GlobalAvgPoolBackward(dIn.c.V(), feat.c.V(), n, h*w, c, ldIn)
	p.dev.GlobalAvgPoolBackward(dIn.d.V(), feat.d.V(), n, h*w, c, ldIn)
	p.close("global pool backward", dIn, exact, exact)

	m1, m2, mask := p.rand(rows*c), p.rand(rows*c), p.rand(rows*c)
	p.ref.MaskForward(m1.c.V(), m2.c.V(), mask.c.V(), rows*c)
	p.dev.MaskForward(m1.d.V(), m2.d.V(), mask.d.V(), rows*c)
	p.close("mask forward", m1, 0, 0)
	p.ref.MaskBackward(m2.c.V(), m1.c.V(), mask.c.V(), rows*c)
	p.dev.MaskBackward(m2.d.V(), m1.d.V(), mask.d.V(), rows*c)
	p.close("mask backward", m2, exact, exact)

	// Dropout with one mask on both (the generators differ by design).
	p.ref.DropoutForward(out.c.V(), in.c.V(), mask.c.V(), rows, c, ldIn, ldOut)
	p.dev.DropoutForward(out.d.V(), in.d.V(), mask.d.V(), rows, c, ldIn, ldOut)
	p.close("dropout forward", out, 0, 0)
	p.ref.DropoutBackward(dIn.c.V(), dOut.c.V(), mask.c.V(), rows, c, ldIn, ldOut)
	p.dev.DropoutBackward(dIn.d.V(), dOut.d.V(), mask.d.V(), rows, c, ldIn, ldOut)
	p.close("dropout backward", dIn, exact, exact)

	idx := []int32{4, 0, 0, 2, 3}
	sel := p.rand(rows * ldOut)
	p.ref.IndexSelectForward(sel.c.V(), in.c.V(), idx, rows, ldIn, ldOut)
	p.dev.IndexSelectForward(sel.d.V(), in.d.V(), idx, rows, ldIn, ldOut)
	p.close("index select forward", sel, 0, 0)
	p.ref.IndexSelectBackward(dIn.c.V(), sel.c.V(), idx, rows, ldIn, ldOut)
	p.dev.IndexSelectBackward(dIn.d.V(), sel.d.V(), idx, rows, ldIn, ldOut)
	p.close("index select backward (a repeated index)", dIn, exact, exact)

	const sc, sg = 6, 3
	sh := p.rand(rows * 8)
	p.ref.ShuffleForward(sh.c.V(), in.c.V(), rows, sc, sg, ldIn, 8)
	p.dev.ShuffleForward(sh.d.V(), in.d.V(), rows, sc, sg, ldIn, 8)
	p.close("shuffle forward", sh, 0, 0)
	p.ref.ShuffleBackward(dIn.c.V(), sh.c.V(), rows, sc, sg, ldIn, 8)
	p.dev.ShuffleBackward(dIn.d.V(), sh.d.V(), rows, sc, sg, ldIn, 8)
	p.close("shuffle backward", dIn, exact, exact)

	wt, g, vel := p.rand(1000), p.rand(1000), p.rand(1000)
	for range 3 {
		p.ref.SGDNesterov(wt.c.V(), g.c.V(), vel.c.V(), 1000, 0.1, 0.9, 1e-4)
		p.dev.SGDNesterov(wt.d.V(), g.d.V(), vel.d.V(), 1000, 0.1, 0.9, 1e-4)
	}
	p.close("sgd weights", wt, exact, exact)
	p.close("sgd momentum", vel, exact, exact)
}

func TestLinearAndLoss(t *testing.T) { onDevices(t, checkLinearAndLoss) }

func checkLinearAndLoss(t *testing.T, b *Backend) {
	p := newPair(t, b)
	const n, i, o = 9, 37, 10
	in, w, bias, out := p.rand(n*i), p.rand(o*i), p.rand(o), p.zeros(n*o)
	p.ref.LinearForward(out.c.V(), in.c.V(), w.c.V(), bias.c.V(), n, i, o)
	p.dev.LinearForward(out.d.V(), in.d.V(), w.d.V(), bias.d.V(), n, i, o)
	p.close("linear forward", out, sums, sums)

	labels := []int32{0, 9, 3, 3, 1, 7, 2, 8, 5}
	loss, probs := p.zeros(1), p.zeros(n*o)
	p.ref.SoftmaxCrossEntropyForward(loss.c.V(), probs.c.V(), out.c.V(), labels, n, o)
	p.dev.SoftmaxCrossEntropyForward(loss.d.V(), probs.d.V(), out.d.V(), labels, n, o)
	p.close("cross-entropy loss", loss, sums, sums)
	p.close("softmax", probs, sums, sums)
	dLogits := p.rand(n * o)
	p.ref.SoftmaxCrossEntropyBackward(dLogits.c.V(), probs.c.V(), labels, n, o)
	p.dev.SoftmaxCrossEntropyBackward(dLogits.d.V(), probs.d.V(), labels, n, o)
	p.close("cross-entropy backward", dLogits, sums, sums)

	dIn, dW, dBias := p.rand(n*i), p.rand(o*i), p.rand(o)
	p.ref.LinearBackward(dIn.c.V(), dW.c.V(), dBias.c.V(), dLogits.c.V(), in.c.V(), w.c.V(), n, i, o)
	p.dev.LinearBackward(dIn.d.V(), dW.d.V(), dBias.d.V(), dLogits.d.V(), in.d.V(), w.d.V(), n, i, o)
	p.close("linear dIn", dIn, sums, sums)
	p.close("linear dW", dW, sums, sums)
	p.close("linear dBias", dBias, sums, sums)
}

// The GPU's dropout masks come from another generator than the CPU's: check
// their law (the share of zeros, the kept value) and that seeds differ.
func TestDropoutMask(t *testing.T) { onDevices(t, checkDropoutMask) }

func checkDropoutMask(t *testing.T, b *Backend) {
	const n, p = 1 << 20, 0.2
	m := b.Alloc(n)
	get := func(seed uint64) []float32 {
		b.DropoutMask(m.V(), n, p, seed)
		v := make([]float32, n)
		b.Download(v, m.V())
		return v
	}
	a, c := get(1), get(2)
	zeros := 0
	for i, x := range a {
		switch x {
		case 0:
			zeros++
		case 1 / (1 - float32(p)):
		default:
			t.Fatalf("mask[%d] = %v, want 0 or %v", i, x, 1/(1-p))
		}
	}
	if share := float64(zeros) / n; math.Abs(share-p) > 0.003 {
		t.Errorf("share of zeros %.4f, want %.1f", share, p)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 give the same mask")
	}
}

func TestBatchNorm(t *testing.T) { onDevices(t, checkBatchNorm) }

func checkBatchNorm(t *testing.T, b *Backend) {
	p := newPair(t, b)
	for _, s := range []engine.NormShape{
		{P: 40, C: 5, LdIn: 5, LdOut: 5}, {P: 40, C: 5, LdIn: 9, LdOut: 6, ReLU: true},
		{P: 700, C: 70, LdIn: 80, LdOut: 70, ReLU: true}, {P: 4096, C: 33, LdIn: 33, LdOut: 40},
		{P: 9000, C: 9, LdIn: 9, LdOut: 9, ReLU: true}, // more blocks than a warp has lanes
	} {
		in := p.rand(s.P * s.LdIn)
		gamma, beta, rm := p.rand(s.C), p.rand(s.C), p.rand(s.C)
		rv := p.of(slices.Repeat([]float32{1.5}, s.C))
		out := p.rand(s.P * s.LdOut)
		cn, dn := p.ref.NewBatchNorm(s), p.dev.NewBatchNorm(s)
		cn.ForwardTrain(out.c.V(), in.c.V(), gamma.c.V(), beta.c.V(), rm.c.V(), rv.c.V())
		dn.ForwardTrain(out.d.V(), in.d.V(), gamma.d.V(), beta.d.V(), rm.d.V(), rv.d.V())
		p.close("batchnorm train forward", out, sums, sums)
		p.close("running mean", rm, sums, sums)
		p.close("running var", rv, sums, sums)
		dOut, dIn, dg, db := p.rand(out.c.Len), p.rand(in.c.Len), p.rand(s.C), p.rand(s.C)
		cn.Backward(dIn.c.V(), dg.c.V(), db.c.V(), dOut.c.V(), in.c.V(), out.c.V(), gamma.c.V())
		dn.Backward(dIn.d.V(), dg.d.V(), db.d.V(), dOut.d.V(), in.d.V(), out.d.V(), gamma.d.V())
		p.close("batchnorm dIn", dIn, sums, 1e-3)
		p.close("batchnorm dGamma", dg, sums, 1e-3)
		p.close("batchnorm dBeta", db, sums, 1e-3)
		cn.ForwardInfer(out.c.V(), in.c.V(), gamma.c.V(), beta.c.V(), rm.c.V(), rv.c.V())
		dn.ForwardInfer(out.d.V(), in.d.V(), gamma.d.V(), beta.d.V(), rm.d.V(), rv.d.V())
		p.close("batchnorm infer", out, sums, sums)
	}
	// A fused index-select (inference).
	s := engine.NormShape{P: 50, LdIn: 9, LdOut: 6, ReLU: true, Index: []int32{8, 0, 3, 3, 5}}
	in, gamma, beta, rm := p.rand(s.P*s.LdIn), p.rand(5), p.rand(5), p.rand(5)
	rv := p.of(slices.Repeat([]float32{0.7}, 5))
	out := p.rand(s.P * s.LdOut)
	p.ref.NewBatchNorm(s).ForwardInfer(out.c.V(), in.c.V(), gamma.c.V(), beta.c.V(), rm.c.V(), rv.c.V())
	p.dev.NewBatchNorm(s).ForwardInfer(out.d.V(), in.d.V(), gamma.d.V(), beta.d.V(), rm.d.V(), rv.d.V())
	p.close("indexed batchnorm", out, sums, sums)
}

func TestConv(t *testing.T) { onDevices(t, checkConv) }

func checkConv(t *testing.T, b *Backend) {
	checkConvs(newPair(t, b))
	// Again with the weight gradients' long GEMMs cut into pieces.
	b.pieceRows = 7
	checkConvs(newPair(t, b))
}

// TestMatmulPieces checks long GEMMs cut into pieces against the plain
// definition, over transposes, leading dimensions, batches, beta and a
// shorter last piece.
func TestMatmulPieces(t *testing.T) { onDevices(t, checkMatmulPieces) }

func checkMatmulPieces(t *testing.T, b *Backend) {
	rng := rand.New(rand.NewPCG(5, 5))
	b.pieceRows = 4
	for range 40 {
		g := randomGemm(rng, 6, 8, 47)
		A, B, C := b.Alloc(len(g.A)), b.Alloc(len(g.B)), b.Alloc(len(g.C))
		b.Upload(A.V(), g.A)
		b.Upload(B.V(), g.B)
		b.Upload(C.V(), g.C)
		mm := g.mm
		mm.a, mm.b, mm.c = ptr(A.V()), ptr(B.V()), ptr(C.V())
		if p := b.pieces(mm); p < 2 {
			t.Fatalf("%+v: %d pieces", mm, p)
		}
		b.matmul(mm)
		got := make([]float32, len(g.C))
		b.Download(got, C.V())
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
		g.check(t, got, 1e-4)
	}
}

// TestGPUTrainingStep trains the same small network on both backends for a
// few steps through a condensing stage (without dropout, whose masks
// differ) and compares losses and every parameter; then the condensed
// networks' logits; then moves the training state across devices.
func TestTrainingStep(t *testing.T) { onDevices(t, checkTrainingStep) }

func checkTrainingStep(t *testing.T, b *Backend) {
	cfg := testConfig()
	cfg.Dropout = 0
	const n = 8
	ref, err := model.NewNet(cfg, n, cpu.New(2), 1)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := model.NewNet(cfg, n, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	progress := []float64{0, 0.2, 0.4, 0.6} // through every condensing stage
	lr, ld := trainSteps(ref, progress), trainSteps(dev, progress)
	if math.Abs(lr-ld) > 1e-3*math.Abs(lr) {
		t.Errorf("loss after %d steps: GPU %v, CPU %v", len(progress), ld, lr)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	want, got := ref.Tensors(true), dev.Tensors(true)
	for i := range want {
		for j := range want[i].Data {
			x, y := float64(got[i].Data[j]), float64(want[i].Data[j])
			if math.Abs(x-y) > 1e-3+1e-2*math.Abs(y) {
				t.Errorf("%s[%d]: GPU %v, CPU %v", want[i].Name, j, x, y)
				break
			}
		}
	}

	images, _ := model.RandomBatch(n, 32, cfg.Classes, 1)
	lc, lg := make([]float32, n*cfg.Classes), make([]float32, n*cfg.Classes)
	condensed(t, ref, n, cpu.New(2)).Forward(lc, images)
	condensed(t, ref, n, b).Forward(lg, images) // the same weights on both
	for i := range lc {
		if math.Abs(float64(lc[i]-lg[i])) > 1e-4+1e-3*math.Abs(float64(lc[i])) {
			t.Fatalf("condensed logits[%d]: GPU %v, CPU %v", i, lg[i], lc[i])
		}
	}

	// A checkpoint is the tensors with momentum: GPU state loaded on the
	// CPU, and back, gives the same tensors.
	back, err := model.NewNet(cfg, n, b, 99)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]model.Named{}
	for _, x := range got {
		m[x.Name] = x
	}
	onCPU, _ := model.NewNet(cfg, n, cpu.New(2), 99)
	if err := onCPU.LoadTensors(m, true); err != nil {
		t.Fatal(err)
	}
	m2 := map[string]model.Named{}
	for _, x := range onCPU.Tensors(true) {
		m2[x.Name] = x
	}
	if err := back.LoadTensors(m2, true); err != nil {
		t.Fatal(err)
	}
	for i, x := range back.Tensors(true) {
		if !slices.Equal(x.Data, got[i].Data) {
			t.Fatalf("%s changed on its way GPU → CPU → GPU", x.Name)
		}
	}
}

// An index outside a row is refused on the host, before a kernel could
// read outside the input on the device.
func TestIndexOutsideRows(t *testing.T) {
	b := &Backend{dev: newEmuGPU(t), name: "emulated"}
	defer b.Close()
	in, out := b.Alloc(4*6), b.Alloc(4*2)
	for _, bad := range []int32{-5, 6} {
		for name, call := range map[string]func(){
			"forward":  func() { b.IndexSelectForward(out.V(), in.V(), []int32{1, bad}, 4, 6, 2) },
			"backward": func() { b.IndexSelectBackward(in.V(), out.V(), []int32{1, bad}, 4, 6, 2) },
		} {
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "outside rows of 6") {
						t.Errorf("index select %s with index %d: panic %v", name, bad, r)
					}
				}()
				call()
			}()
		}
	}
}
