package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/internal/enginetest"
)

func TestInt8Conv(t *testing.T) { forEachISA(t, testInt8Conv) }

// int8Shapes are the engine's test shapes of stride 1 (int8 convolutions
// are never strided) and CondenseNet-86's own, with an odd count of
// outputs per group and a tile's worth of images.
func int8Shapes() []engine.ConvShape {
	var out []engine.ConvShape
	for _, s := range enginetest.ConvShapes {
		if s.Stride == 1 {
			out = append(out, s)
		}
	}
	return append(out,
		engine.ConvShape{N: 1, H: 32, W: 32, C: 120, K: 32, R: 1, S: 1, Stride: 1, G: 4, LdIn: 128, LdOut: 32},
		engine.ConvShape{N: 1, H: 32, W: 32, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 32, LdOut: 128},
		engine.ConvShape{N: 2, H: 8, W: 8, C: 128, K: 32, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 128, LdOut: 480},
		engine.ConvShape{N: 1, H: 8, W: 8, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 32, LdOut: 8},   // an image's second tile holds outputs in its first sixteen positions alone
		engine.ConvShape{N: 1, H: 8, W: 8, C: 16, K: 20, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 16, LdOut: 20}, // and groups of five outputs: a tile of four and of one
		engine.ConvShape{N: 3, H: 5, W: 5, C: 12, K: 9, R: 3, S: 3, Stride: 1, Pad: 1, G: 3, LdIn: 12, LdOut: 9},
	)
}

// Strided int8 convolutions are refused.
func TestInt8ConvStrideOne(t *testing.T) {
	s, _, _ := randInt8Shape(rand.New(rand.NewPCG(2, 2)), enginetest.ConvShapes[3], false)
	defer func() {
		if recover() == nil {
			t.Error("a stride-2 int8 convolution was made")
		}
	}()
	NewInt8Conv(s, 1)
}

// int8Naive is Requant's definition, read straight from the unpadded
// input: out-of-image taps contribute 0.
func int8Naive(out, in, w []float32, s engine.ConvShape) {
	cg, kg, q, a := s.C/s.G, s.K/s.G, s.Int8, s.Input
	quant := func(n, y, x, j int) int64 {
		if y < 0 || y >= s.H || x < 0 || x >= s.W {
			return 0
		}
		at := func(c int) float32 { // channel c of the pixel
			if s.InPlanes {
				return in[c*s.LdIn+(n*s.H+y)*s.W+x]
			}
			return in[((n*s.H+y)*s.W+x)*s.LdIn+c]
		}
		v := at(j)
		if a != nil {
			v = float32(at(a.Source(j))*a.Scale[j]) + a.Shift[j]
		}
		return int64(math.RoundToEven(math.Min(math.Max(float64(v), 0), 255)))
	}
	for n := range s.N {
		for oy := range s.OH() {
			for ox := range s.OW() {
				for k := range s.K {
					var sum int64
					for ci := range cg {
						for r := range s.R {
							for c := range s.S {
								sum += int64(w[((k*cg+ci)*s.R+r)*s.S+c]) * quant(n, oy*s.Stride-s.Pad+r, ox*s.Stride-s.Pad+c, k/kg*cg+ci)
							}
						}
					}
					v := float64(float32(float32(sum)*q.Scale[k]) + q.Shift[k])
					at := ((n*s.OH()+oy)*s.OW()+ox)*s.LdOut + k
					if s.OutPlanes {
						at = k*s.LdOut + (n*s.OH()+oy)*s.OW() + ox
					}
					out[at] = float32(math.RoundToEven(math.Min(math.Max(v, float64(q.Lo)), float64(q.Hi)))) * q.Step
				}
			}
		}
	}
}

// randInt8Shape gives s random requantisation and input transforms, and
// returns integer weights and an input that spans the rounding's range.
func randInt8Shape(rng *rand.Rand, s engine.ConvShape, transform bool) (engine.ConvShape, []float32, []float32) {
	return randInt8Planes(rng, s, transform, false, false)
}

// randInt8Planes is randInt8Shape with an input or output of planes,
// Ld a little past the pixels.
func randInt8Planes(rng *rand.Rand, s engine.ConvShape, transform, inPlanes, outPlanes bool) (engine.ConvShape, []float32, []float32) {
	s.Fixed = true
	q := &engine.Requant{Lo: -128, Hi: 127, Step: 0.03}
	s.InPlanes, s.OutPlanes = inPlanes, outPlanes
	if inPlanes {
		s.LdIn = s.N*s.H*s.W + 3
	}
	if outPlanes {
		s.LdOut = s.N*s.OH()*s.OW() + 5
	}
	for range s.K {
		q.Scale = append(q.Scale, float32(rng.Float64()*0.004))
		q.Shift = append(q.Shift, float32(rng.NormFloat64()*5))
	}
	s.Int8 = q
	if transform {
		a := &engine.Affine{ReLU: true}
		sources := s.LdIn
		if inPlanes {
			sources = s.C
		}
		for range s.C {
			a.Index = append(a.Index, int32(rng.IntN(sources)))
			a.Scale = append(a.Scale, float32(rng.NormFloat64()*60))
			a.Shift = append(a.Shift, float32(rng.NormFloat64()*40+60))
		}
		s.Input = a
	}
	w := make([]float32, s.Weights())
	for i := range w {
		w[i] = float32(rng.IntN(255) - 127)
	}
	var in []float32
	if inPlanes {
		in = make([]float32, s.C*s.LdIn)
	} else {
		in = make([]float32, s.N*s.H*s.W*s.LdIn)
	}
	for i := range in {
		in[i] = float32(rng.NormFloat64() * 120)
	}
	return s, in, w
}

func testInt8Conv(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, s := range int8Shapes() {
		for _, v := range []struct{ transform, inPlanes, outPlanes bool }{{false, false, false}, {true, false, false}, {true, true, false}, {true, false, true}, {false, true, true}} {
			s, in, w := randInt8Planes(rng, s, v.transform, v.inPlanes, v.outPlanes)
			want := make([]float32, max(s.N*s.OH()*s.OW()*s.LdOut, s.K*s.LdOut))
			int8Naive(want, in, w, s)
			for _, workers := range []int{1, 2} {
				got := make([]float32, len(want))
				c := NewInt8Conv(s, workers)
				c.Forward(got, in, w)
				c.Forward(got, in, w) // a second call reuses the prepared weights and padding
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %+v workers %d: out[%d] = %v, want %v", enginetest.ConvName(s), v, workers, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// On integer inputs in [0, 255] with a requantisation that keeps sums as
// they are, the int8 convolution is the float one exactly.
func TestInt8ConvIsFloatConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, s := range int8Shapes() {
		s, _, w := randInt8Shape(rng, s, false)
		q := s.Int8
		for k := range q.Scale {
			q.Scale[k], q.Shift[k] = 1, 0
		}
		q.Lo, q.Hi, q.Step = -1<<24, 1<<24, 1
		in := make([]float32, s.N*s.H*s.W*s.LdIn)
		for i := range in {
			in[i] = float32(rng.IntN(256))
		}
		want := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
		got := make([]float32, len(want))
		convNaive(want, in, w, s)
		NewInt8Conv(s, 1).Forward(got, in, w)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: out[%d] = %v, the float convolution's %v", enginetest.ConvName(s), i, got[i], want[i])
			}
		}
	}
}

// Weights that are not int8 integers are refused, naming one.
func TestInt8ConvRefusesFloatWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	s, in, w := randInt8Shape(rng, enginetest.ConvShapes[0], false)
	out := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
	for _, bad := range []float32{0.5, 128, -128} {
		w[3] = bad
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("weight %v accepted", bad)
				}
			}()
			NewInt8Conv(s, 1).Forward(out, in, w)
		}()
	}
}

// The measured int8 peak, where there is one, is at least what the int8
// convolution reaches on one core; timed in turns, as TestPeakGFLOPs.
func TestPeakInt8GOPs(t *testing.T) {
	if level < isaAVX512 {
		if p := PeakInt8GOPs(); p != 0 {
			t.Errorf("an int8 peak of %.1f without AVX-512", p)
		}
		t.Skip("no AVX-512 here: no int8 peak")
	}
	s, in, w := randInt8Shape(rand.New(rand.NewPCG(3, 3)), engine.ConvShape{N: 1, H: 32, W: 32, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 32, LdOut: 8}, false)
	c := NewInt8Conv(s, 1)
	out := make([]float32, 32*32*8)
	var p, conv float64
	for range 3 {
		p = max(p, measurePeak(dotRounds))
		start := time.Now()
		for range 20 {
			c.Forward(out, in, w)
		}
		conv = max(conv, 20*float64(s.FLOPs())/time.Since(start).Seconds()/1e9)
	}
	if p < 1 || conv > 1.2*p {
		t.Errorf("an int8 convolution ran at %.1f GOP/s against a %.1f peak", conv, p)
	}
	t.Logf("int8 peak %.1f GOP/s per core; CondenseNet's first 3×3 on one worker %.1f", p, conv)
}

// A batch in planes whose row offsets would pass int32 (N·H·W·LdOut, what
// rows would need) runs: planes' offsets are pixels. A whole batch of 64
// in planes, as a one-core machine runs CondenseNet-86, was refused.
func TestInt8ConvLargeBatchInPlanes(t *testing.T) {
	s, in, w := randInt8Planes(rand.New(rand.NewPCG(4, 4)), engine.ConvShape{N: 64, H: 32, W: 32, C: 16, K: 32, R: 1, S: 1, Stride: 1, G: 4}, true, true, true)
	if int64(s.N*s.H*s.W)*int64(s.LdOut) <= math.MaxInt32 {
		t.Fatalf("the shape's rows fit int32: not the case tested")
	}
	want, got := make([]float32, s.K*s.LdOut), make([]float32, s.K*s.LdOut)
	int8Naive(want, in, w, s)
	NewInt8Conv(s, 2).Forward(got, in, w)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("out[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// The staged quantising gives the bytes of its definition, at the edges
// too: below 0, past 255, infinite and NaN inputs, and ties, at every
// level (AVX-512 and AVX2 have kernels of their own).
func TestQuantiseStaged(t *testing.T) { forEachISA(t, testQuantiseStaged) }

func testQuantiseStaged(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 16))
	edges := []float32{-1e30, -300, -0.5, -0.4, 0, 0.5, 1.5, 2.5, 254.5, 255.4, 255.5, 256, 3e9, 1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	const stride, nq = 200, 3
	staged := make([]float32, 8*stride)
	for i := range staged {
		staged[i] = edges[rng.IntN(len(edges))]
		if rng.IntN(3) == 0 {
			staged[i] = 300 * (rng.Float32() - 0.3)
		}
	}
	q := &quads{idx: make([]int32, 4*nq), scale: make([]float32, 4*nq), shift: make([]float32, 4*nq)}
	for k := range q.idx {
		q.idx[k] = int32(rng.IntN(8))
		q.scale[k], q.shift[k] = 1, 0
		if k%2 == 1 {
			q.scale[k], q.shift[k] = 0.7, 3
		}
	}
	q.most = slices.Max(q.idx)
	for pixels := 1; pixels <= stride; pixels++ {
		const planeBytes = 810
		got, want := make([]uint8, nq*planeBytes), make([]uint8, nq*planeBytes)
		quantiseStaged(got, planeBytes, staged, stride, q, pixels)
		quantiseStagedGo(want, planeBytes, staged, stride, q, pixels)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%d pixels: byte %d = %d, want %d", pixels, i, got[i], want[i])
			}
		}
	}
}

// A channel's sums are dotChannelGo's at every level (AVX2 computes them
// in assembly), for every channel of tiles of one and several groups,
// paired or not, with the products at their extremes too.
func TestDotChannel(t *testing.T) { forEachISA(t, testDotChannel) }

func testDotChannel(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 30))
	for _, tc := range []struct {
		groups, kg, width int
		paired            bool
	}{{1, 2, 2, false}, {4, 8, 4, false}, {3, 5, 4, false}, {4, 2, 4, true}} {
		steps, groupBytes := []int{0, 4, 136, 300, 1028}, 1400
		tl := tile{steps: steps, most: slices.Max(steps), width: tc.width, groups: tc.groups, groupBytes: groupBytes, paired: tc.paired, q: make([]requant, tc.groups*tc.kg)}
		tl.in = make([]uint8, (tc.groups-1)*groupBytes+tl.most+4*tileLen)
		for i := range tl.in {
			tl.in[i] = uint8(rng.IntN(256))
			if i%7 < 3 {
				tl.in[i] = 255
			}
		}
		tl.w = make([]int8, tl.blockCount()*4*tc.width*len(steps))
		for i := range tl.w {
			tl.w[i] = []int8{-127, 127, int8(rng.IntN(255) - 127)}[rng.IntN(3)]
		}
		checkTile(&tl, tc.width)
		for k := range tl.q {
			var got, want [tileLen]int32
			dotChannel(&got, &tl, k)
			dotChannelGo(&want, &tl, k)
			if got != want {
				t.Fatalf("%+v: channel %d's sums %v, want %v", tc, k, got, want)
			}
		}
	}
}
