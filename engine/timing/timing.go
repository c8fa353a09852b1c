// Package timing is an engine.Backend that times another one by kind of
// work (each convolution shape class, BatchNorm, pooling, the update...),
// for `pipeline bench --layers`. It waits for the backend after every
// operation, so a GPU's times are each operation's own, at some cost to
// the whole.
package timing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/condensenet/condensenet/engine"
)

// A Kind is the time spent on one kind of operation.
type Kind struct {
	Name    string  `json:"kind"`
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
	FLOPs   float64 `json:"flops"` // convolutions and the classifier; 0 for the rest
}

// Backend times the operations of the backend it wraps.
type Backend struct {
	engine.Backend
	kinds  map[string]*Kind
	splits [][]*Backend // what each Split returned, each timing its own core
}

// New wraps b.
func New(b engine.Backend) *Backend { return &Backend{Backend: b, kinds: map[string]*Kind{}} }

// Split splits the backend it wraps, if that is an engine.Splitter, and
// times each core on its own.
// Planar reports whether the wrapped backend takes planes.
func (t *Backend) Planar() bool {
	p, ok := t.Backend.(engine.Planar)
	return ok && p.Planar()
}

// AvgPool2Planes and NormPoolPlanes need a Planar backend (see Planar).
func (t *Backend) AvgPool2Planes(out, in engine.View, c, n, h, w, ldIn, ldOut int) {
	t.time("pooling forward", 0, func() { t.Backend.(engine.Planar).AvgPool2Planes(out, in, c, n, h, w, ldIn, ldOut) })
}

func (t *Backend) NormPoolPlanes(out, in engine.View, a *engine.Affine, n, hw, ld int) {
	t.time("batchnorm+relu and pooling forward", 0, func() { t.Backend.(engine.Planar).NormPoolPlanes(out, in, a, n, hw, ld) })
}

func (t *Backend) Split() []engine.Backend {
	s, ok := t.Backend.(engine.Splitter)
	if !ok {
		return nil
	}
	split := s.Split()
	if split == nil {
		return nil
	}
	var cores []engine.Backend
	var timed []*Backend
	for _, b := range split {
		core := New(b)
		timed = append(timed, core)
		cores = append(cores, core)
	}
	t.splits = append(t.splits, timed)
	return cores
}

// Kinds returns the time per kind since the last Reset, largest first.
// Work that ran split between cores counts its seconds divided by the
// cores of its split: the time of the whole machine on it, as for the
// rest (a second network split the same way divides its own time only).
func (t *Backend) Kinds() []Kind {
	all := map[string]*Kind{}
	add := func(k *Kind, share float64) {
		a := all[k.Name]
		if a == nil {
			a = &Kind{Name: k.Name}
			all[k.Name] = a
		}
		a.Calls += k.Calls
		a.Seconds += k.Seconds * share
		a.FLOPs += k.FLOPs
	}
	for _, k := range t.kinds {
		add(k, 1)
	}
	for _, cores := range t.splits {
		for _, core := range cores {
			for _, k := range core.kinds {
				add(k, 1/float64(len(cores)))
			}
		}
	}
	var out []Kind
	for _, k := range all {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b Kind) int {
		return cmp.Or(cmp.Compare(b.Seconds, a.Seconds), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Reset forgets what was timed (a warm-up, say).
func (t *Backend) Reset() {
	clear(t.kinds)
	for _, cores := range t.splits {
		for _, core := range cores {
			core.Reset()
		}
	}
}

// time runs f, waits for the backend and books the time under kind.
func (t *Backend) time(kind string, flops float64, f func()) {
	start := time.Now()
	f()
	t.Backend.Sync()
	k := t.kinds[kind]
	if k == nil {
		k = &Kind{Name: kind}
		t.kinds[kind] = k
	}
	k.Calls++
	k.Seconds += time.Since(start).Seconds()
	k.FLOPs += flops
}

// Upload and Download are timed too: on a device, how long the step's
// input takes to reach it is the case for (or against) staging it
// through pinned memory.
func (t *Backend) Upload(dst engine.View, src []float32) {
	t.time("upload", 0, func() { t.Backend.Upload(dst, src) })
}

func (t *Backend) Download(dst []float32, src engine.View) {
	t.time("download", 0, func() { t.Backend.Download(dst, src) })
}

type conv struct {
	t    *Backend
	c    engine.Conv
	name string
	fl   float64
}

// NewConv names a convolution by its kernel, groups and stride.
func (t *Backend) NewConv(s engine.ConvShape) engine.Conv {
	return &conv{t: t, c: t.Backend.NewConv(s), name: convName(s), fl: float64(s.FLOPs())}
}

func convName(s engine.ConvShape) string {
	name := fmt.Sprintf("conv %d×%d", s.R, s.S)
	if s.G > 1 {
		name += fmt.Sprintf(" G=%d", s.G)
	}
	if s.Stride > 1 {
		name += fmt.Sprintf(" stride %d", s.Stride)
	}
	if s.Int8 != nil {
		name += " int8"
	}
	return name
}

func (c *conv) Forward(out, in, w engine.View) {
	c.t.time(c.name+" forward", c.fl, func() { c.c.Forward(out, in, w) })
}
func (c *conv) Backward(dIn, dW, dOut, in, w engine.View) {
	c.t.time(c.name+" backward", 2*c.fl, func() { c.c.Backward(dIn, dW, dOut, in, w) })
}

type int8Pair struct {
	t    *Backend
	p    engine.Int8Pair
	name string
	fl   float64
}

// NewInt8Pair needs an engine.Int8Pairer backend; the pair counts as one
// kind, named by both convolutions.
func (t *Backend) NewInt8Pair(first, second engine.ConvShape) engine.Int8Pair {
	return &int8Pair{t: t, p: t.Backend.(engine.Int8Pairer).NewInt8Pair(first, second),
		name: convName(first) + " and " + strings.TrimPrefix(convName(second), "conv "), fl: float64(first.FLOPs() + second.FLOPs())}
}

func (p *int8Pair) Forward(out, in, w1, w2 engine.View) {
	p.t.time(p.name+" forward", p.fl, func() { p.p.Forward(out, in, w1, w2) })
}

type batchNorm struct {
	t    *Backend
	n    engine.BatchNorm
	name string
}

func (t *Backend) NewBatchNorm(s engine.NormShape) engine.BatchNorm {
	name := "batchnorm"
	if s.Index != nil {
		name += " with index-select"
	}
	if s.ReLU {
		name += "+relu"
	}
	return &batchNorm{t: t, n: t.Backend.NewBatchNorm(inner(s)), name: name}
}

func (n *batchNorm) ForwardTrain(out, in, gamma, beta, runMean, runVar engine.View) {
	n.t.time(n.name+" forward", 0, func() { n.n.ForwardTrain(out, in, gamma, beta, runMean, runVar) })
}
func (n *batchNorm) ForwardInfer(out, in, gamma, beta, runMean, runVar engine.View) {
	n.t.time(n.name+" forward", 0, func() { n.n.ForwardInfer(out, in, gamma, beta, runMean, runVar) })
}
func (n *batchNorm) Backward(dIn, dGamma, dBeta, dOut, in, out, gamma engine.View) {
	n.t.time(n.name+" backward", 0, func() { n.n.Backward(dIn, dGamma, dBeta, dOut, in, out, gamma) })
}

// moments time the sums they take as "batchnorm statistics", and the
// gradient they settle.
type moments struct {
	t *Backend
	m engine.Moments
}

// NewMoments returns the wrapped backend's, or nil if it takes none.
func (t *Backend) NewMoments(p, c, ld int) engine.Moments {
	k, ok := t.Backend.(engine.MomentKeeper)
	if !ok {
		return nil
	}
	m := k.NewMoments(p, c, ld)
	if m == nil {
		return nil
	}
	return &moments{t: t, m: m}
}

func (m *moments) Add(in engine.View, c0, c1 int) {
	m.t.time("batchnorm statistics", 0, func() { m.m.Add(in, c0, c1) })
}

func (m *moments) Settle(dIn, in engine.View, c0, c1 int) {
	m.t.time("batchnorm backward, settling", 0, func() { m.m.Settle(dIn, in, c0, c1) })
}

// inner returns s with the wrapped backend's Moments.
func inner(s engine.NormShape) engine.NormShape {
	if m, ok := s.Moments.(*moments); ok {
		s.Moments = m.m
	}
	return s
}

type normConv struct {
	t    *Backend
	f    engine.NormConv
	name string
	fl   float64
}

// NewNormConv times the pair as one kind, named for both; its FLOPs are
// the convolution's.
func (t *Backend) NewNormConv(n engine.NormShape, c engine.ConvShape) engine.NormConv {
	return &normConv{t: t, f: t.Backend.NewNormConv(inner(n), c), name: "batchnorm+relu+" + convName(c), fl: float64(c.FLOPs())}
}

func (f *normConv) Forward(out, in, gamma, beta, runMean, runVar, w engine.View, train bool) {
	f.t.time(f.name+" forward", f.fl, func() { f.f.Forward(out, in, gamma, beta, runMean, runVar, w, train) })
}
func (f *normConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w engine.View) {
	f.t.time(f.name+" backward", 2*f.fl, func() { f.f.Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w) })
}

func (t *Backend) ReLUForward(out, in engine.View, p, c, ldIn, ldOut int) {
	t.time("relu forward", 0, func() { t.Backend.ReLUForward(out, in, p, c, ldIn, ldOut) })
}
func (t *Backend) ReLUBackward(dIn, dOut, out engine.View, p, c, ldIn, ldOut int) {
	t.time("relu backward", 0, func() { t.Backend.ReLUBackward(dIn, dOut, out, p, c, ldIn, ldOut) })
}
func (t *Backend) AvgPool2Forward(out, in engine.View, n, h, w, c, ldIn, ldOut int) {
	t.time("pooling forward", 0, func() { t.Backend.AvgPool2Forward(out, in, n, h, w, c, ldIn, ldOut) })
}
func (t *Backend) AvgPool2Backward(dIn, dOut engine.View, n, h, w, c, ldIn, ldOut int) {
	t.time("pooling backward", 0, func() { t.Backend.AvgPool2Backward(dIn, dOut, n, h, w, c, ldIn, ldOut) })
}
func (t *Backend) GlobalAvgPoolForward(out, in engine.View, n, hw, c, ldIn int) {
	t.time("pooling forward", 0, func() { t.Backend.GlobalAvgPoolForward(out, in, n, hw, c, ldIn) })
}
func (t *Backend) GlobalAvgPoolBackward(dIn, dOut engine.View, n, hw, c, ldIn int) {
	t.time("pooling backward", 0, func() { t.Backend.GlobalAvgPoolBackward(dIn, dOut, n, hw, c, ldIn) })
}
func (t *Backend) LinearForward(out, in, w, bias engine.View, n, i, o int) {
	t.time("classifier forward", float64(2*n*i*o), func() { t.Backend.LinearForward(out, in, w, bias, n, i, o) })
}
func (t *Backend) LinearBackward(dIn, dW, dBias, dOut, in, w engine.View, n, i, o int) {
	t.time("classifier backward", float64(4*n*i*o), func() { t.Backend.LinearBackward(dIn, dW, dBias, dOut, in, w, n, i, o) })
}
func (t *Backend) SoftmaxCrossEntropyForward(loss, probs, logits engine.View, labels []int32, n, k int) {
	t.time("loss", 0, func() { t.Backend.SoftmaxCrossEntropyForward(loss, probs, logits, labels, n, k) })
}
func (t *Backend) SoftmaxCrossEntropyBackward(dLogits, probs engine.View, labels []int32, n, k int) {
	t.time("loss", 0, func() { t.Backend.SoftmaxCrossEntropyBackward(dLogits, probs, labels, n, k) })
}
func (t *Backend) DropoutMask(mask engine.View, n int, p float32, seed uint64) {
	t.time("dropout", 0, func() { t.Backend.DropoutMask(mask, n, p, seed) })
}
func (t *Backend) DropoutForward(out, in, mask engine.View, p, c, ldIn, ldOut int) {
	t.time("dropout", 0, func() { t.Backend.DropoutForward(out, in, mask, p, c, ldIn, ldOut) })
}
func (t *Backend) DropoutBackward(dIn, dOut, mask engine.View, p, c, ldIn, ldOut int) {
	t.time("dropout", 0, func() { t.Backend.DropoutBackward(dIn, dOut, mask, p, c, ldIn, ldOut) })
}
func (t *Backend) MaskForward(wm, w, mask engine.View, n int) {
	t.time("weight masks", 0, func() { t.Backend.MaskForward(wm, w, mask, n) })
}
func (t *Backend) MaskBackward(dW, dWm, mask engine.View, n int) {
	t.time("weight masks", 0, func() { t.Backend.MaskBackward(dW, dWm, mask, n) })
}
func (t *Backend) IndexSelectForward(out, in engine.View, idx []int32, p, ldIn, ldOut int) {
	t.time("index-select forward", 0, func() { t.Backend.IndexSelectForward(out, in, idx, p, ldIn, ldOut) })
}
func (t *Backend) IndexSelectBackward(dIn, dOut engine.View, idx []int32, p, ldIn, ldOut int) {
	t.time("index-select backward", 0, func() { t.Backend.IndexSelectBackward(dIn, dOut, idx, p, ldIn, ldOut) })
}
func (t *Backend) ShuffleForward(out, in engine.View, p, c, g, ldIn, ldOut int) {
	t.time("shuffle forward", 0, func() { t.Backend.ShuffleForward(out, in, p, c, g, ldIn, ldOut) })
}
func (t *Backend) ShuffleBackward(dIn, dOut engine.View, p, c, g, ldIn, ldOut int) {
	t.time("shuffle backward", 0, func() { t.Backend.ShuffleBackward(dIn, dOut, p, c, g, ldIn, ldOut) })
}
func (t *Backend) SGDNesterov(w, g, v engine.View, n int, lr, momentum, wd float32) {
	t.time("SGD update", 0, func() { t.Backend.SGDNesterov(w, g, v, n, lr, momentum, wd) })
}
func (t *Backend) Zero(v engine.View, n int) {
	t.time("zeroing", 0, func() { t.Backend.Zero(v, n) })
}
