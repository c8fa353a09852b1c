package cuda

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/internal/enginetest"
)

// A pair runs the same operations on the CPU backend, which is the
// reference, and on a second backend, and compares what they leave.
type pair struct {
	t   *testing.T
	ref *cpu.Backend
	dev engine.Backend
	rng *rand.Rand
}

// twin is one tensor on both backends.
type twin struct{ c, d *engine.Tensor }

func newPair(t *testing.T, dev engine.Backend) *pair {
	return &pair{t: t, ref: cpu.New(2), dev: dev, rng: rand.New(rand.NewPCG(7, 7))}
}

// rand returns a twin holding the same uniform values in [-1, 1).
func (p *pair) rand(n int) twin {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*p.rng.Float32() - 1
	}
	return p.of(v)
}

func (p *pair) of(v []float32) twin {
	tw := twin{p.ref.Alloc(len(v)), p.dev.Alloc(len(v))}
	p.ref.Upload(tw.c.V(), v)
	p.dev.Upload(tw.d.V(), v)
	return tw
}

func (p *pair) zeros(n int) twin { return twin{p.ref.Alloc(n), p.dev.Alloc(n)} }

// close fails unless every element agrees within atol + rtol·|cpu|.
func (p *pair) close(name string, x twin, atol, rtol float64) {
	p.t.Helper()
	if err := p.dev.Sync(); err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	got := make([]float32, x.d.Len)
	p.dev.Download(got, x.d.V())
	want := x.c.Host
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			d = math.Inf(1)
		}
		if excess := d - (atol + rtol*math.Abs(float64(want[i]))); excess > 0 && (at < 0 || d > worst) {
			worst, at = d, i
		}
	}
	if at >= 0 {
		p.t.Errorf("%s: [%d] = %v, CPU %v (|diff| %.3g beyond %g + %g·|cpu|)", name, at, got[at], want[at], worst, atol, rtol)
	}
}

// Tolerances: element-wise kernels compute the same float operations as
// the CPU (up to fused multiply-adds); reductions and GEMMs add in
// another order.
const (
	exact = 1e-6
	sums  = 1e-4
)

// checkConvs compares forward and both gradients of every shape.
func checkConvs(p *pair) {
	for _, s := range enginetest.ConvShapes {
		name := "conv " + enginetest.ConvName(s)
		in := p.rand(s.N * s.H * s.W * s.LdIn)
		w := p.rand(s.Weights())
		out := p.rand(s.N * s.OH() * s.OW() * s.LdOut) // columns past K must survive
		cc, dc := p.ref.NewConv(s), p.dev.NewConv(s)
		cc.Forward(out.c.V(), in.c.V(), w.c.V())
		dc.Forward(out.d.V(), in.d.V(), w.d.V())
		p.close(name+" forward", out, sums, sums)
		dOut := p.rand(out.c.Len)
		dIn, dW := p.rand(in.c.Len), p.rand(w.c.Len) // Backward accumulates
		cc.Backward(dIn.c.V(), dW.c.V(), dOut.c.V(), in.c.V(), w.c.V())
		dc.Backward(dIn.d.V(), dW.d.V(), dOut.d.V(), in.d.V(), w.d.V())
		p.close(name+" dIn", dIn, sums, sums)
		p.close(name+" dW", dW, sums, sums)
		if s.LdIn == s.C { // overwriting the input gradient instead
			over := s
			over.OverwriteDIn = true
			dIn := p.rand(in.c.Len)
			p.ref.NewConv(over).Backward(dIn.c.V(), dW.c.V(), dOut.c.V(), in.c.V(), w.c.V())
			p.dev.NewConv(over).Backward(dIn.d.V(), dW.d.V(), dOut.d.V(), in.d.V(), w.d.V())
			p.close(name+" dIn overwritten", dIn, sums, sums)
		}

		// With an input transform (an indexed BatchNorm + ReLU folded in),
		// reading rows wider than the convolution's channels.
		fused := s
		fused.LdIn, fused.Fixed = s.C+3, true
		a := &engine.Affine{Index: make([]int32, s.C), Scale: randFloats(p.rng, s.C), Shift: randFloats(p.rng, s.C), ReLU: true}
		for j := range a.Index {
			a.Index[j] = int32((j*7 + 2) % fused.LdIn)
		}
		fused.Input = a
		raw := p.rand(s.N * s.H * s.W * fused.LdIn)
		p.ref.NewConv(fused).Forward(out.c.V(), raw.c.V(), w.c.V())
		p.dev.NewConv(fused).Forward(out.d.V(), raw.d.V(), w.d.V())
		p.close(name+" forward with an input transform", out, sums, sums)
	}
}

// TestMatmulRowMajor checks the row-major to column-major mapping of
// GEMMs against the CPU's naive GEMM, over transposes, leading dimensions,
// batches and beta.
func TestMatmulRowMajor(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	h := newEmuGPU(t)
	for range 60 {
		g := randomGemm(rng, 7, 1, 7)
		mm := g.mm
		mm.a, mm.b, mm.c = hostCopy(h, g.A), hostCopy(h, g.B), hostCopy(h, g.C)
		if err := h.gemm(mm.call()); err != nil {
			t.Fatalf("%+v: %v", mm, err)
		}
		got := make([]float32, len(g.C))
		h.download(unsafe.Pointer(&got[0]), mm.c, 4*len(got))
		g.check(t, got, 1e-5)
	}
}

// A gemmCase is a random batched row-major GEMM (transposes, leading
// dimensions and strides with slack, beta 0 or 1, the CPU GEMM's) with its
// operands and the CPU's naive result; mm has no addresses yet.
type gemmCase struct {
	mm            matmul
	A, B, C, want []float32
}

// randomGemm draws m and n up to maxMN, k from minK to maxK.
func randomGemm(rng *rand.Rand, maxMN, minK, maxK int) gemmCase {
	ta, tb := rng.IntN(2) == 1, rng.IntN(2) == 1
	m, n, k, batch := 1+rng.IntN(maxMN), 1+rng.IntN(maxMN), minK+rng.IntN(maxK-minK+1), 1+rng.IntN(3)
	beta := float32(rng.IntN(2))
	ar, ac := m, k
	if ta {
		ar, ac = k, m
	}
	br, bc := k, n
	if tb {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+rng.IntN(3), bc+rng.IntN(3), n+rng.IntN(3)
	sa, sb, sc := ar*lda+rng.IntN(4), br*ldb+rng.IntN(4), m*ldc+rng.IntN(4)
	g := gemmCase{mm: matmul{transA: ta, transB: tb, m: m, n: n, k: k, lda: lda, strideA: sa, ldb: ldb, strideB: sb,
		ldc: ldc, strideC: sc, batch: batch, beta: beta},
		A: randFloats(rng, batch*sa), B: randFloats(rng, batch*sb), C: randFloats(rng, batch*sc)}
	g.want = append([]float32(nil), g.C...)
	for i := range batch {
		cpu.GemmNaive(ta, tb, m, n, k, g.A[i*sa:], lda, g.B[i*sb:], ldb, beta, g.want[i*sc:], ldc)
	}
	return g
}

// check fails unless got, the device's C, is the naive result within tol.
func (g gemmCase) check(t *testing.T, got []float32, tol float64) {
	t.Helper()
	for i := range g.want {
		if math.Abs(float64(got[i]-g.want[i])) > tol {
			t.Fatalf("%+v: C[%d] = %v, want %v", g.mm, i, got[i], g.want[i])
		}
	}
}

func randFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return v
}

func hostCopy(h *emuGPU, v []float32) uintptr {
	p, _ := h.alloc(4 * len(v))
	h.upload(p, unsafe.Pointer(&v[0]), 4*len(v))
	return p
}
