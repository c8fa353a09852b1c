package cpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine"
)

func TestArrangementsShared(t *testing.T) { forEachISA(t, testArrangementsShared) }

// Fixed convolutions on the lanes of a split backend that read the same
// weights arrange them once between them, and compute what a convolution
// of their own computes; other weights get an arrangement of their own.
func testArrangementsShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, s := range []engine.ConvShape{
		{N: 1, H: 4, W: 4, C: 16, K: 32, R: 1, S: 1, Stride: 1, G: 4},        // the four-group 1×1 kernel with AVX-512, groups else
		{N: 1, H: 4, W: 4, C: 6, K: 4, R: 1, S: 1, Stride: 1, G: 2},          // grouped 1×1, group by group
		{N: 1, H: 5, W: 5, C: 8, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4},  // direct with AVX-512, shifted else
		{N: 1, H: 6, W: 6, C: 3, K: 16, R: 3, S: 3, Stride: 2, Pad: 1, G: 1}, // the stride-2 stem: direct with AVX-512, patches else
		{N: 1, H: 5, W: 5, C: 8, K: 16, R: 3, S: 3, Stride: 1, Pad: 1, G: 1}, // direct, or patches
	} {
		s.LdIn, s.LdOut, s.Fixed = s.C, s.K, true
		in := randSlice(rng, s.N*s.H*s.W*s.C)
		w, other := randSlice(rng, s.Weights()), randSlice(rng, s.Weights())
		lanes := New(2).Split()
		a, b, c := lanes[0].NewConv(s).(conv).c, lanes[1].NewConv(s).(conv).c, lanes[1].NewConv(s).(conv).c
		own := NewConv(s, 1, nil)
		out := func(conv *Conv, w []float32) []float32 {
			o := make([]float32, s.N*s.OH()*s.OW()*s.K)
			conv.Forward(o, in, w)
			return o
		}
		want := out(own, w)
		if !slices.Equal(out(a, w), want) || !slices.Equal(out(b, w), want) {
			t.Errorf("%v: lanes sharing an arrangement compute other values", s)
		}
		if p := data(a.arranged); p == nil || p != data(b.arranged) {
			t.Errorf("%v: two lanes on the same weights hold arrangements at %p and %p, want one", s, p, data(b.arranged))
		}
		if !slices.Equal(out(c, other), out(NewConv(s, 1, nil), other)) || data(c.arranged) == data(a.arranged) {
			t.Errorf("%v: other weights share the first weights' arrangement", s)
		}
	}
}

// data returns where the arrangement in use keeps its floats.
func data(a arranged) *float32 {
	for _, s := range [][]float32{a.wPatch, a.wTaps, a.wTiles, a.wG4, a.wGroups, a.wStem} {
		if len(s) > 0 {
			return &s[0]
		}
	}
	return nil
}
