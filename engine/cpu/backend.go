// Package cpu is the CPU backend: kernels on host memory, a packed GEMM
// with an AVX2/FMA micro-kernel, and goroutines over disjoint outputs so that
// results do not depend on scheduling.
package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"

	"github.com/condensenet/condensenet/engine"
)

// Backend runs kernels on the CPU with a fixed number of workers.
type Backend struct {
	workers int
	scratch Scratch // shared by every Conv: kernels run one at a time
	// arranged is shared with the lanes Split returns, so that networks
	// on them that read one copy of the weights arrange them once.
	arranged *Arrangements
}

var _ engine.Backend = (*Backend)(nil)

// New returns a CPU backend using workers goroutines per kernel (0 means
// GOMAXPROCS). Results are bit-identical for a given worker count.
func New(workers int) *Backend {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Backend{workers: workers, arranged: new(Arrangements)}
}

func (b *Backend) Name() string { return "cpu" }

// Split returns a one-worker backend per worker (see engine.Splitter).
// Networks on them that read the same weights share their Fixed
// convolutions' arrangements.
func (b *Backend) Split() []engine.Backend {
	if b.workers == 1 {
		return nil
	}
	lanes := make([]engine.Backend, b.workers)
	for i := range lanes {
		lanes[i] = &Backend{workers: 1, arranged: b.arranged}
	}
	return lanes
}

// Planar reports whether the CPU's convolutions take planes
// (engine.ConvShape.InPlanes and OutPlanes) at their speed: where the
// AVX-512 kernels run. They take them everywhere, but without AVX-512 the
// pointwise convolution into planes runs its Go definition: the condensed
// CondenseNet-86 ran at 15 images/s on AVX2 in planes, 337 through rows
// (and in pure Go at 3.4 against 25).
func (b *Backend) Planar() bool { return use.planes }

func (b *Backend) AvgPool2Planes(out, in engine.View, c, n, height, width, ldIn, ldOut int) {
	AvgPool2Planes(h(out), h(in), c, n, height, width, ldIn, ldOut, b.workers)
}

func (b *Backend) NormPoolPlanes(out, in engine.View, a *engine.Affine, n, hw, ld int) {
	NormPoolPlanes(h(out), h(in), a, n, hw, ld, b.workers)
}

// Workers returns the number of goroutines per kernel.
func (b *Backend) Workers() int { return b.workers }

// h returns a view's host memory.
func h(v engine.View) []float32 { return v.T.Host[v.Off:] }

func (b *Backend) Alloc(n int) *engine.Tensor {
	return &engine.Tensor{Len: n, Host: make([]float32, n)}
}

func (b *Backend) Upload(dst engine.View, src []float32)   { copy(h(dst)[:len(src)], src) }
func (b *Backend) Download(dst []float32, src engine.View) { copy(dst, h(src)[:len(dst)]) }
func (b *Backend) Zero(v engine.View, n int) {
	clearParallel(h(v)[:n], b.workers)
}
func (b *Backend) Sync() error { return nil }

type conv struct{ c *Conv }

func (b *Backend) NewConv(s engine.ConvShape) engine.Conv {
	if s.Int8 != nil {
		return int8Conv{NewInt8Conv(s, b.workers)}
	}
	c := NewConv(s, b.workers, &b.scratch)
	c.shared = b.arranged
	return conv{c}
}
func (c conv) Forward(out, in, w engine.View) { c.c.Forward(h(out), h(in), h(w)) }
func (c conv) Backward(dIn, dW, dOut, in, w engine.View) {
	c.c.Backward(h(dIn), h(dW), h(dOut), h(in), h(w))
}

type int8Conv struct{ c *Int8Conv }

func (c int8Conv) Forward(out, in, w engine.View) { c.c.Forward(h(out), h(in), h(w)) }
func (int8Conv) Backward(dIn, dW, dOut, in, w engine.View) {
	panic("conv: an int8 convolution is for inference only")
}

type int8Pair struct{ p *Int8Pair }

// NewInt8Pair runs two int8 convolutions as one (see engine.Int8Pairer).
func (b *Backend) NewInt8Pair(first, second engine.ConvShape) engine.Int8Pair {
	return int8Pair{NewInt8Pair(first, second, b.workers)}
}

func (p int8Pair) Forward(out, in, w1, w2 engine.View) { p.p.Forward(h(out), h(in), h(w1), h(w2)) }

type batchNorm struct{ n *BatchNorm }

type normConv struct{ f *NormConv }

func (b *Backend) NewNormConv(n engine.NormShape, s engine.ConvShape) engine.NormConv {
	return normConv{NewNormConv(n, s, b.workers, &b.scratch)}
}

type moments struct{ m *Moments }

func (b *Backend) NewMoments(p, c, ld int) engine.Moments {
	return moments{NewMoments(p, c, ld, b.workers)}
}
func (m moments) Add(in engine.View, c0, c1 int) { m.m.Add(h(in), c0, c1) }
func (m moments) Settle(dIn, in engine.View, c0, c1 int) {
	m.m.Settle(h(dIn), h(in), c0, c1)
}

// momentsOf returns the CPU's Moments that s takes, nil if none.
func momentsOf(s engine.NormShape) *Moments {
	if s.Moments == nil {
		return nil
	}
	m := s.Moments.(moments).m
	if m.P != s.P || m.C < s.C || m.Ld != s.LdIn || s.Index != nil {
		panic(fmt.Sprintf("batchnorm: moments of P=%d C=%d ld=%d for %+v", m.P, m.C, m.Ld, s))
	}
	return m
}
func (f normConv) Forward(out, in, gamma, beta, rm, rv, w engine.View, train bool) {
	f.f.Forward(h(out), h(in), h(gamma), h(beta), h(rm), h(rv), h(w), train)
}
func (f normConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w engine.View) {
	f.f.Backward(h(dIn), h(dGamma), h(dBeta), h(dW), h(dNormed), h(dOut), h(in), h(gamma), h(w))
}

func (b *Backend) NewBatchNorm(s engine.NormShape) engine.BatchNorm {
	if s.OverwriteDIn {
		panic("batchnorm: OverwriteDIn is a NormConv's")
	}
	if s.Index != nil {
		return batchNorm{NewIndexedBatchNorm(s.P, s.Index, s.LdIn, s.LdOut, s.ReLU, b.workers)}
	}
	n := NewBatchNorm(s.P, s.C, s.LdIn, s.LdOut, s.ReLU, b.workers)
	n.Moments = momentsOf(s)
	return batchNorm{n}
}
func (n batchNorm) ForwardTrain(out, in, gamma, beta, rm, rv engine.View) {
	n.n.ForwardTrain(h(out), h(in), h(gamma), h(beta), h(rm), h(rv))
}
func (n batchNorm) ForwardInfer(out, in, gamma, beta, rm, rv engine.View) {
	n.n.ForwardInfer(h(out), h(in), h(gamma), h(beta), h(rm), h(rv))
}

// Backward does not read out: the CPU computes the ReLU's mask again.
func (n batchNorm) Backward(dIn, dGamma, dBeta, dOut, in, out, gamma engine.View) {
	n.n.Backward(h(dIn), h(dGamma), h(dBeta), h(dOut), h(in), h(gamma))
}

func (b *Backend) ReLUForward(out, in engine.View, p, c, ldIn, ldOut int) {
	parallel(b.workers, p, 2*p*c, func(lo, hi int) {
		ReLUForward(h(out)[lo*ldOut:], h(in)[lo*ldIn:], hi-lo, c, ldIn, ldOut)
	})
}
func (b *Backend) ReLUBackward(dIn, dOut, out engine.View, p, c, ldIn, ldOut int) {
	parallel(b.workers, p, 3*p*c, func(lo, hi int) {
		ReLUBackward(h(dIn)[lo*ldIn:], h(dOut)[lo*ldOut:], h(out)[lo*ldOut:], hi-lo, c, ldIn, ldOut)
	})
}
func (b *Backend) AvgPool2Forward(out, in engine.View, n, hh, w, c, ldIn, ldOut int) {
	AvgPool2Forward(h(out), h(in), n, hh, w, c, ldIn, ldOut, b.workers)
}
func (b *Backend) AvgPool2Backward(dIn, dOut engine.View, n, hh, w, c, ldIn, ldOut int) {
	AvgPool2Backward(h(dIn), h(dOut), n, hh, w, c, ldIn, ldOut, b.workers)
}
func (b *Backend) GlobalAvgPoolForward(out, in engine.View, n, hw, c, ldIn int) {
	GlobalAvgPoolForward(h(out), h(in), n, hw, c, ldIn)
}
func (b *Backend) GlobalAvgPoolBackward(dIn, dOut engine.View, n, hw, c, ldIn int) {
	GlobalAvgPoolBackward(h(dIn), h(dOut), n, hw, c, ldIn)
}
func (b *Backend) LinearForward(out, in, w, bias engine.View, n, i, o int) {
	LinearForward(h(out), h(in), h(w), h(bias), n, i, o, b.workers)
}
func (b *Backend) LinearBackward(dIn, dW, dBias, dOut, in, w engine.View, n, i, o int) {
	LinearBackward(h(dIn), h(dW), h(dBias), h(dOut), h(in), h(w), n, i, o, b.workers)
}
func (b *Backend) SoftmaxCrossEntropyForward(loss, probs, logits engine.View, labels []int32, n, k int) {
	h(loss)[0] = float32(SoftmaxCrossEntropyForward(h(probs), h(logits), labels, n, k))
}
func (b *Backend) SoftmaxCrossEntropyBackward(dLogits, probs engine.View, labels []int32, n, k int) {
	SoftmaxCrossEntropyBackward(h(dLogits), h(probs), labels, n, k)
}
func (b *Backend) DropoutMask(mask engine.View, n int, p float32, seed uint64) {
	DropoutMask(h(mask)[:n], p, rand.New(rand.NewPCG(seed, 0x64726f70)).Float32)
}
func (b *Backend) DropoutForward(out, in, mask engine.View, p, c, ldIn, ldOut int) {
	DropoutForward(h(out), h(in), h(mask), p, c, ldIn, ldOut)
}
func (b *Backend) DropoutBackward(dIn, dOut, mask engine.View, p, c, ldIn, ldOut int) {
	DropoutBackward(h(dIn), h(dOut), h(mask), p, c, ldIn, ldOut)
}
func (b *Backend) MaskForward(wm, w, mask engine.View, n int) {
	MaskForward(h(wm)[:n], h(w)[:n], h(mask)[:n])
}
func (b *Backend) MaskBackward(dW, dWm, mask engine.View, n int) {
	MaskBackward(h(dW)[:n], h(dWm)[:n], h(mask)[:n])
}
func (b *Backend) IndexSelectForward(out, in engine.View, idx []int32, p, ldIn, ldOut int) {
	engine.CheckIndices("index select", idx, ldIn) // here, not in a worker, whose panic would end the process
	parallel(b.workers, p, 2*p*len(idx), func(lo, hi int) {
		gatherRows(h(out)[lo*ldOut:], h(in)[lo*ldIn:], idx, hi-lo, ldIn, ldOut)
	})
}
func (b *Backend) IndexSelectBackward(dIn, dOut engine.View, idx []int32, p, ldIn, ldOut int) {
	IndexSelectBackward(h(dIn), h(dOut), idx, p, ldIn, ldOut)
}
func (b *Backend) ShuffleForward(out, in engine.View, p, c, g, ldIn, ldOut int) {
	parallel(b.workers, p, 2*p*c, func(lo, hi int) {
		ShuffleForward(h(out)[lo*ldOut:], h(in)[lo*ldIn:], hi-lo, c, g, ldIn, ldOut)
	})
}
func (b *Backend) ShuffleBackward(dIn, dOut engine.View, p, c, g, ldIn, ldOut int) {
	ShuffleBackward(h(dIn), h(dOut), p, c, g, ldIn, ldOut)
}
func (b *Backend) SGDNesterov(w, g, v engine.View, n int, lr, momentum, wd float32) {
	parallel(b.workers, n, 4*n, func(lo, hi int) {
		SGDNesterov(h(w)[lo:hi], h(g)[lo:hi], h(v)[lo:hi], lr, momentum, wd)
	})
}

// Kernels names the micro-kernels this CPU runs: the AVX2/FMA assembly or
// the pure-Go definitions.
func Kernels() string {
	switch level {
	case isaVNNI:
		return "AVX-512 (with VNNI) and AVX2/FMA assembly kernels"
	case isaAVX512:
		return "AVX-512 and AVX2/FMA assembly kernels"
	case isaAVX2:
		return "AVX2/FMA assembly kernels"
	}
	return "pure-Go kernels"
}
