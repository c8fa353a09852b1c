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

// The int8 convolution refuses broken shapes and short buffers, and its
// kernels' wrappers refuse work that reaches past their slices, at every
// ISA level.
func TestInt8Bounds(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		ok := engine.ConvShape{N: 1, H: 4, W: 4, C: 8, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 8, LdOut: 8, Fixed: true,
			Int8: &engine.Requant{Scale: make([]float32, 8), Shift: make([]float32, 8), Hi: 255, Step: 1}}
		for name, broken := range map[string]func(*engine.ConvShape){
			"C=0": func(s *engine.ConvShape) { s.C, s.LdIn = 0, 0 }, "N=0": func(s *engine.ConvShape) { s.N = 0 },
			"stride 2": func(s *engine.ConvShape) { s.Stride = 2 }, "not Fixed": func(s *engine.ConvShape) { s.Fixed = false },
			"short requant": func(s *engine.ConvShape) {
				s.Int8 = &engine.Requant{Scale: make([]float32, 7), Shift: make([]float32, 8)}
			},
			"planes too short": func(s *engine.ConvShape) { s.InPlanes = true },
		} {
			s := ok
			broken(&s)
			mustPanic(t, "int8 conv "+name, "invalid int8 shape", func() { NewInt8Conv(s, 1) })
		}
		c := NewInt8Conv(ok, 1)
		mustPanic(t, "int8 conv short input", "int8 buffers", func() { c.Forward(make([]float32, 128), make([]float32, 127), make([]float32, 8*2*9)) })
		mustPanic(t, "int8 conv short output", "int8 buffers", func() { c.Forward(make([]float32, 127), make([]float32, 128), make([]float32, 8*2*9)) })

		in := make([]uint8, 4*tileLen+64)
		w := make([]int8, 16)
		q := make([]requant, 2)
		var offs [tileLen]int32
		mustPanic(t, "tile step past the input", "int8 tile", func() {
			dotStore(make([]float32, 128), 64, 64, &tile{in: in, steps: []int{0, 68}, most: 68, width: 2, groups: 1, w: w, q: q})
		})
		mustPanic(t, "tile without weights", "int8 tile", func() {
			dotStore(make([]float32, 128), 64, 64, &tile{in: in, steps: []int{0, 4}, most: 4, width: 2, groups: 1, w: w[:15], q: q})
		})
		mustPanic(t, "tile of four channels' weights to a two-channel kernel", "the kernel takes 2", func() {
			dotStore(make([]float32, 128), 64, 64, &tile{in: in, steps: []int{0, 4}, most: 4, width: 4, groups: 1, w: make([]int8, 32), q: q})
		})
		good := &tile{in: in, steps: []int{0, 64}, most: 64, width: 2, groups: 1, w: w, q: q}
		mustPanic(t, "store past the output", "storing", func() { dotStore(make([]float32, 127), 64, 64, good) })
		mustPanic(t, "scatter past the output", "scattering", func() { dotScatter(make([]float32, 100), 1, &offs, 99, good) })
		rs := &tileRuns{runs: []tileRun{{first: 0, mask: 1, off: 0}}, start: []int{0, 1}, vectors: []int{1}, least: 0, most: 3}
		dest := []quadDest{{off: 0, lane: 0}, {off: 60, lane: 1}}
		block := &tile{in: in, steps: []int{0, 64}, most: 64, width: 4, groups: 1, w: make([]int8, 32), q: q} // four channels' weights for two steps
		mustPanic(t, "runs past the output", "storing runs", func() { dotRuns(make([]float32, 64), 64, rs, 0, block) })
		mustPanic(t, "quads past the output", "int8 quads to byte 60", func() { dotQuads(make([]uint8, 63), rs, 0, block, dest) })
		mustPanic(t, "quads in a fifth lane", "lane 4", func() { dotQuads(make([]uint8, 64), rs, 0, block, []quadDest{{0, 0}, {0, 4}}) })
		mustPanic(t, "quads without weights", "int8 tile", func() {
			dotQuads(make([]uint8, 64), rs, 0, &tile{in: in, steps: []int{0, 4}, most: 4, width: 4, groups: 1, w: w, q: q}, dest)
		})
		twoGroups := &tile{in: in, steps: []int{0, 4}, most: 4, width: 4, groups: 2, groupBytes: 61, w: make([]int8, 64), q: q}
		mustPanic(t, "a second group past the input", "int8 tile", func() { dotRuns(make([]float32, 128), 64, rs, 0, twoGroups) })
		twoGroups.groupBytes = 60
		dotRuns(make([]float32, 128), 64, rs, 0, twoGroups) // the second group's last step ends at the input's end
		mustPanic(t, "groups of unequal channels", "int8 tile", func() {
			dotRuns(make([]float32, 128), 64, rs, 0, &tile{in: in, steps: []int{0, 4}, most: 4, width: 4, groups: 2, w: make([]int8, 64), q: make([]requant, 3)})
		})
		mustPanic(t, "groups to a one-group kernel", "storing", func() {
			dotStore(make([]float32, 128), 64, 64, &tile{in: in, steps: []int{0, 4}, most: 4, width: 2, groups: 2, w: make([]int8, 32), q: q})
		})
		qd := &quads{idx: []int32{0, 1, 2, 3}, scale: make([]float32, 4), shift: make([]float32, 4), most: 3}
		mustPanic(t, "staged source past the input", "quantising", func() { quantiseStaged(make([]uint8, 64), 0, make([]float32, 63), 16, qd, 16) })
		mustPanic(t, "staged pixels past the output", "quantising", func() { quantiseStaged(make([]uint8, 63), 0, make([]float32, 64), 16, qd, 16) })
	})
}
