package cpu

import (
	"fmt"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine"
)

// mustPanic fails unless f panics with a message containing want.
func mustPanic(t *testing.T, name, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", name)
		} else if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Errorf("%s: panic %v, want one saying %q", name, r, want)
		}
	}()
	f()
}

// Every entry point that gathers by index refuses an index outside a row
// before anything reads: a negative one used to reach the assembly
// gathers, which read memory before the input.
func TestIndicesOutsideRows(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		const p, ld = 6, 20
		b := New(2)
		in, out := b.Alloc(p*ld), b.Alloc(p*16)
		for _, bad := range []int32{-5, -1, ld, ld + 3} {
			idx := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} // a whole sixteen: the assembly's path
			idx[9] = bad
			name := func(s string) string { return fmt.Sprintf("%s with index %d", s, bad) }
			mustPanic(t, name("IndexSelectForward"), "outside rows of 20", func() {
				b.IndexSelectForward(out.V(), in.V(), idx, p, ld, 16)
			})
			mustPanic(t, name("IndexSelectBackward"), "outside rows of 20", func() {
				b.IndexSelectBackward(in.V(), out.V(), idx, p, ld, 16)
			})
			mustPanic(t, name("indexed BatchNorm"), "outside rows of 20", func() {
				b.NewBatchNorm(engine.NormShape{P: p, Index: idx, LdIn: ld, LdOut: 16, ReLU: true})
			})
			mustPanic(t, name("conv input transform"), "outside rows of 20", func() {
				s := engine.ConvShape{N: 1, H: 2, W: 3, C: 16, K: 8, R: 1, S: 1, Stride: 1, G: 4, LdIn: ld, LdOut: 8, Fixed: true,
					Input: &engine.Affine{Index: idx, Scale: make([]float32, 16), Shift: make([]float32, 16), ReLU: true}}
				b.NewConv(s)
			})
		}
	})
}

// A count of zero or less is refused when a layer is made: the assembly
// loops test their counters at the bottom.
func TestEmptyShapesRefused(t *testing.T) {
	b := New(1)
	ok := engine.ConvShape{N: 1, H: 4, W: 4, C: 8, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 8, LdOut: 8}
	b.NewConv(ok) // the valid shape the others break
	for name, broken := range map[string]func(*engine.ConvShape){
		"C=0": func(s *engine.ConvShape) { s.C, s.LdIn = 0, 0 }, "K=0": func(s *engine.ConvShape) { s.K = 0 },
		"N=0": func(s *engine.ConvShape) { s.N = 0 }, "N=-1": func(s *engine.ConvShape) { s.N = -1 },
		"R=0": func(s *engine.ConvShape) { s.R = 0 }, "stride 0": func(s *engine.ConvShape) { s.Stride = 0 },
		"pad -1": func(s *engine.ConvShape) { s.Pad = -1 },
	} {
		s := ok
		broken(&s)
		mustPanic(t, "conv "+name, "invalid shape", func() { b.NewConv(s) })
	}
	mustPanic(t, "BatchNorm C=0", "batchnorm", func() { b.NewBatchNorm(engine.NormShape{P: 4, C: 0, LdIn: 0, LdOut: 0}) })
}
