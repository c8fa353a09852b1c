package cpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/internal/enginetest"
)

// A NormConv gives the bits of its BatchNorm and convolution run apart
// (engine.ComposeNormConv), in training and inference, forward and
// backward, for the shapes a dense layer has: a 1×1 reading a prefix of
// a wider block buffer (several of the weight gradient's chunks and a
// ragged last one; whole and part vectors of channels) and grouped 3×3s on rows of 32, 16 and 8 pixels; with
// Moments too, where the 1×1's output gradient is never stored and part
// of the input's is settled after; and writing the input's gradient
// instead of adding to it (OverwriteDIn).
func TestNormConvSameBits(t *testing.T) { forEachISA(t, testNormConvSameBits) }

func testNormConvSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	type pair struct {
		ldIn int
		c    engine.ConvShape
	}
	for _, mode := range []struct{ withMoments, overwrite bool }{{false, false}, {false, true}, {true, false}} {
		withMoments := mode.withMoments
		for _, tc := range []pair{
			{40, engine.ConvShape{N: 3, H: 27, W: 31, C: 24, K: 32, R: 1, S: 1, Stride: 1, G: 1}},
			{24, engine.ConvShape{N: 2, H: 5, W: 3, C: 24, K: 16, R: 1, S: 1, Stride: 1, G: 1}},
			{80, engine.ConvShape{N: 2, H: 9, W: 15, C: 72, K: 32, R: 1, S: 1, Stride: 1, G: 1}},
			{32, engine.ConvShape{N: 2, H: 32, W: 32, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4}},
			{64, engine.ConvShape{N: 3, H: 16, W: 16, C: 64, K: 16, R: 3, S: 3, Stride: 1, Pad: 1, G: 4}},
			{128, engine.ConvShape{N: 2, H: 8, W: 8, C: 128, K: 32, R: 3, S: 3, Stride: 1, Pad: 1, G: 4}},
		} {
			s := tc.c
			s.LdIn, s.LdOut, s.OverwriteDIn = s.C, s.K, true
			p := s.N * s.H * s.W
			n := engine.NormShape{P: p, C: s.C, LdIn: tc.ldIn, LdOut: s.C, ReLU: true, OverwriteDIn: mode.overwrite}
			if mode.overwrite && tc.ldIn != s.C {
				continue // OverwriteDIn is for rows of C
			}
			be := New(2)
			var moments [2]engine.Moments // the fused pair's and the composed pair's
			in, w := randSlice(rng, p*tc.ldIn), randSlice(rng, s.Weights())
			gamma, beta := randSlice(rng, s.C), randSlice(rng, s.C)
			dOut := randSlice(rng, p*s.K)
			type run struct{ out, dIn, dG, dB, dW, rm, rv, inferred []float32 }
			do := func(f engine.NormConv, m engine.Moments) run {
				r := run{make([]float32, p*s.K), slices.Clone(in), make([]float32, s.C), make([]float32, s.C),
					make([]float32, len(w)), make([]float32, s.C), make([]float32, s.C), make([]float32, p*s.K)}
				for i := range r.rv {
					r.rv[i] = 1
				}
				v := func(x []float32) engine.View { return (&engine.Tensor{Len: len(x), Host: x}).V() }
				dNormed := make([]float32, p*s.C)
				if m != nil {
					m.Add(v(in), 0, s.C)
				}
				f.Forward(v(r.out), v(in), v(gamma), v(beta), v(r.rm), v(r.rv), v(w), true)
				f.Backward(v(r.dIn), v(r.dG), v(r.dB), v(r.dW), v(dNormed), v(dOut), v(in), v(gamma), v(w))
				if m != nil {
					m.Settle(v(r.dIn), v(in), 0, s.C)
				}
				f.Forward(v(r.inferred), v(in), v(gamma), v(beta), v(r.rm), v(r.rv), v(w), false)
				return r
			}
			nf, nc := n, n
			if withMoments {
				moments[0], moments[1] = be.NewMoments(p, tc.ldIn, tc.ldIn), be.NewMoments(p, tc.ldIn, tc.ldIn)
				nf.Moments, nc.Moments = moments[0], moments[1]
			}
			fused, composed := be.NewNormConv(nf, s), engine.ComposeNormConv(be, nc, s)
			do(fused, moments[0]) // a second call finds scratch that holds the first's
			got, want := do(fused, moments[0]), do(composed, moments[1])
			for i, pr := range [][2][]float32{{got.out, want.out}, {got.dIn, want.dIn}, {got.dG, want.dG}, {got.dB, want.dB},
				{got.dW, want.dW}, {got.rm, want.rm}, {got.rv, want.rv}, {got.inferred, want.inferred}} {
				if !slices.Equal(pr[0], pr[1]) {
					k := 0
					for k < len(pr[0]) && pr[0][k] == pr[1][k] {
						k++
					}
					t.Fatalf("%s (LdIn %d, %+v): result %d (out, dIn, dGamma, dBeta, dW, runMean, runVar, inference) differs at %d: %v, composed %v",
						enginetest.ConvName(s), tc.ldIn, mode, i, k, pr[0][k], pr[1][k])
				}
			}
		}
	}
}
