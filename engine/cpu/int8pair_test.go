package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/internal/enginetest"
)

func TestInt8Pair(t *testing.T) { forEachISA(t, testInt8Pair) }

// int8PairShapes are a dense layer's two convolutions: CondenseNet-86's
// first and last blocks, the ImageNet network's rows of 14 and 7 (a
// vector of sixteen spans up to four rows), and odd counts of channels
// per group and of quads, over two images.
func int8PairShapes() [][2]engine.ConvShape {
	pair := func(n, side, width, c1, k1, g1, k2, g2 int) [2]engine.ConvShape {
		return [2]engine.ConvShape{
			{N: n, H: side, W: width, C: c1, K: k1, R: 1, S: 1, Stride: 1, G: g1, LdIn: c1 + 3, LdOut: k1},
			{N: n, H: side, W: width, C: k1, K: k2, R: 3, S: 3, Stride: 1, Pad: 1, G: g2, LdIn: k1, LdOut: k2 + 5},
		}
	}
	return [][2]engine.ConvShape{
		pair(1, 32, 32, 28, 32, 4, 8, 4),
		pair(1, 8, 8, 136, 128, 4, 32, 4),
		pair(1, 14, 14, 16, 16, 4, 4, 4),
		pair(1, 7, 7, 32, 32, 4, 8, 4),
		pair(2, 5, 7, 12, 15, 3, 9, 3),
	}
}

// randInt8Pair gives a pair random requantisations (the first's within
// [0, 255], as the pair needs) and transforms (the second's a shuffle),
// with inputs, or outputs, of planes.
func randInt8Pair(rng *rand.Rand, p [2]engine.ConvShape, planes bool) (first, second engine.ConvShape, in, w1, w2 []float32) {
	first, in, w1 = randInt8Planes(rng, p[0], true, planes, planes)
	second, _, w2 = randInt8Planes(rng, p[1], false, planes, planes)
	q := first.Int8
	q.Lo, q.Hi, q.Step = 0, 255, 1
	for k := range q.Scale {
		q.Scale[k] *= 10 // outputs across the whole range, some clamped
		q.Shift[k] += 100
	}
	if planes {
		second.LdIn = first.LdOut
	}
	second.Input = &engine.Affine{Index: shuffle(second.C, first.G), Scale: slices.Repeat([]float32{1}, second.C), Shift: make([]float32, second.C), ReLU: true}
	return first, second, in, w1, w2
}

// shuffle is the channel shuffle of c channels in g groups as an index:
// output j reads input j%g·(c/g) + j/g (view (g, c/g), transpose).
func shuffle(c, g int) []int32 {
	idx := make([]int32, c)
	for j := range c {
		idx[j] = int32(j%g*(c/g) + j/g)
	}
	return idx
}

// The pair gives the bits of its two convolutions run one after the other.
func testInt8Pair(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	for _, p := range int8PairShapes() {
		for _, planes := range []bool{false, true} {
			first, second, in, w1, w2 := randInt8Pair(rng, p, planes)
			mid := make([]float32, max(first.N*first.H*first.W*first.LdOut, first.K*first.LdOut))
			want := make([]float32, second.N*second.H*second.W*second.LdOut)
			NewInt8Conv(first, 1).Forward(mid, in, w1)
			NewInt8Conv(second, 1).Forward(want, mid, w2)
			for _, workers := range []int{1, 2} {
				got := make([]float32, len(want))
				pair := NewInt8Pair(first, second, workers)
				pair.Forward(got, in, w1, w2)
				pair.Forward(got, in, w1, w2) // a second call overwrites every input byte it wrote
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s then %s, planes %v, workers %d: out[%d] = %v, want %v", enginetest.ConvName(first), enginetest.ConvName(second), planes, workers, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// A pair whose first convolution does not hand the second its input
// unchanged is refused, saying why.
func TestInt8PairRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	for _, bad := range []struct {
		name, want string
		spoil      func(first, second *engine.ConvShape)
	}{
		{"a 3×3 first", "unpadded 1×1", func(f, s *engine.ConvShape) { f.R, f.S, f.Pad = 3, 3, 1 }},
		{"dequantised outputs", "integers in [0, 255]", func(f, s *engine.ConvShape) { f.Int8.Step = 0.5 }},
		{"signed outputs", "integers in [0, 255]", func(f, s *engine.ConvShape) { f.Int8.Lo = -128 }},
		{"a scaled input", "transformed", func(f, s *engine.ConvShape) { s.Input.Scale[3] = 2 }},
		{"a selection", "not a permutation", func(f, s *engine.ConvShape) { s.Input.Index[1] = s.Input.Index[0] }},
	} {
		first, second, _, _, _ := randInt8Pair(rng, int8PairShapes()[4], false)
		bad.spoil(&first, &second)
		mustPanic(t, bad.name, bad.want, func() { NewInt8Pair(first, second, 1) })
	}
}
