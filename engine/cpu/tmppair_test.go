package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/condensenet/condensenet/engine"
)

func benchPair(b *testing.B, p [2]engine.ConvShape) {
	rng := rand.New(rand.NewPCG(1, 1))
	first, second, in, w1, w2 := randInt8Pair(rng, p, true)
	out := make([]float32, second.K*second.LdOut)
	pair := NewInt8Pair(first, second, 1)
	for b.Loop() {
		pair.Forward(out, in, w1, w2)
	}
}

func tmpPair(n, side, c1, k1, k2 int) [2]engine.ConvShape {
	return [2]engine.ConvShape{
		{N: n, H: side, W: side, C: c1, K: k1, R: 1, S: 1, Stride: 1, G: 4, LdIn: c1 + 3, LdOut: k1},
		{N: n, H: side, W: side, C: k1, K: k2, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: k1, LdOut: k2 + 5},
	}
}

func BenchmarkTmpPairB1(b *testing.B) { benchPair(b, tmpPair(1, 32, 72, 32, 8)) }
func BenchmarkTmpPairB2(b *testing.B) { benchPair(b, tmpPair(1, 16, 184, 64, 16)) }
func BenchmarkTmpPairB3(b *testing.B) { benchPair(b, tmpPair(1, 8, 408, 128, 32)) }
