package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/internal/enginetest"
)

// convNaive is the definition: out[n,oy,ox,k] = Σ_{ci,r,s} w[k,ci,r,s]·in[n,iy,ix,g·C/G+ci]
// with iy = oy·stride−pad+r, ix = ox·stride−pad+s, g = k/(K/G), in float64.
func convNaive(out, in, w []float32, s engine.ConvShape) {
	cg, kg := s.C/s.G, s.K/s.G
	for n := range s.N {
		for oy := range s.OH() {
			for ox := range s.OW() {
				for k := range s.K {
					g := k / kg
					var sum float64
					for ci := range cg {
						for r := range s.R {
							for q := range s.S {
								iy, ix := oy*s.Stride-s.Pad+r, ox*s.Stride-s.Pad+q
								if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
									continue
								}
								sum += float64(w[((k*cg+ci)*s.R+r)*s.S+q]) * float64(in[((n*s.H+iy)*s.W+ix)*s.LdIn+g*cg+ci])
							}
						}
					}
					out[((n*s.OH()+oy)*s.OW()+ox)*s.LdOut+k] = float32(sum)
				}
			}
		}
	}
}

func TestConvForward(t *testing.T) { forEachISA(t, testConvForward) }

// forEachISA runs test at every level of kernels this CPU has (AVX-512,
// AVX2, pure Go), in one process: layers choose their lowering by the
// level, so each is product code for some users.
func forEachISA(t *testing.T, test func(*testing.T)) {
	for l := cpuISA; l >= isaGo; l-- {
		t.Run(l.String(), func(t *testing.T) {
			defer withISA(l)()
			test(t)
		})
	}
}

// withISA sets the kernels' level to l, at most the CPU's, and returns
// what restores the level before.
func withISA(l isa) (restore func()) {
	was := level
	level = min(l, cpuISA)
	use = kernelsFor(level)
	return func() { level, use = was, kernelsFor(was) }
}

func testConvForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, s := range enginetest.ConvShapes {
		in := randSlice(rng, s.N*s.H*s.W*s.LdIn)
		w := randSlice(rng, s.K*s.C/s.G*s.R*s.S)
		want := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
		got := make([]float32, len(want))
		convNaive(want, in, w, s)
		for _, workers := range []int{1, 2} {
			NewConv(s, workers, nil).Forward(got, in, w)
			for p := range s.N * s.OH() * s.OW() {
				row := p * s.LdOut
				if k, ok := closeTo(got[row:row+s.K], want[row:row+s.K], 1e-5, 1e-5); !ok {
					t.Fatalf("%s workers=%d: pixel %d channel %d = %v, want %v", enginetest.ConvName(s), workers, p, k, got[row+k], want[row+k])
				}
			}
		}
	}
}

// A Fixed convolution rearranges its weights once and gives the same bits
// as one that does so every call; other weights (another slice) are
// rearranged afresh.
func TestConvFixedWeights(t *testing.T) { forEachISA(t, testConvFixedWeights) }

func testConvFixedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, s := range enginetest.ConvShapes {
		in := randSlice(rng, s.N*s.H*s.W*s.LdIn)
		w1, w2 := randSlice(rng, s.Weights()), randSlice(rng, s.Weights())
		n := s.N * s.OH() * s.OW() * s.LdOut
		fixedShape := s
		fixedShape.Fixed = true
		fixed, plain := NewConv(fixedShape, 2, nil), NewConv(s, 2, nil)
		for i, w := range [][]float32{w1, w1, w2, w1} {
			got, want := make([]float32, n), make([]float32, n)
			fixed.Forward(got, in, w)
			plain.Forward(want, in, w)
			if !slices.Equal(got, want) {
				t.Fatalf("%s call %d: a Fixed convolution differs from a plain one", enginetest.ConvName(s), i)
			}
		}
	}
}

func TestConvGradient(t *testing.T) { forEachISA(t, testConvGradient) }

func testConvGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	var shapes []engine.ConvShape
	for _, s := range enginetest.ConvShapes {
		shapes = append(shapes, s)
		if s.LdIn == s.C {
			s.OverwriteDIn = true
			shapes = append(shapes, s)
		}
	}
	for _, s := range shapes {
		in := randSlice(rng, s.N*s.H*s.W*s.LdIn)
		w := randSlice(rng, s.K*s.C/s.G*s.R*s.S)
		c := NewConv(s, 2, nil)
		out := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
		name := enginetest.ConvName(s)
		if s.OverwriteDIn {
			name += " overwriting dIn"
		}
		gradCheck(t, name, map[string][]float32{"in": in, "w": w},
			func() []float32 { c.Forward(out, in, w); return out },
			func(r []float32) map[string][]float32 {
				// Backward adds to what the gradients hold, or with
				// OverwriteDIn replaces dIn.
				dIn, dW := randSlice(rng, len(in)), randSlice(rng, len(w))
				in0, w0 := slices.Clone(dIn), slices.Clone(dW)
				if s.OverwriteDIn {
					clear(in0)
				}
				c.Backward(dIn, dW, r, in, w)
				for i := range dIn {
					dIn[i] -= in0[i]
				}
				for i := range dW {
					dW[i] -= w0[i]
				}
				return map[string][]float32{"in": dIn, "w": dW}
			}, 30)
	}
}

func BenchmarkConv(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, bc := range []struct {
		name string
		s    engine.ConvShape
	}{
		{"1x1/block1/c=64", engine.ConvShape{N: 64, H: 32, W: 32, C: 64, K: 32, R: 1, S: 1, Stride: 1, G: 1, LdIn: 128, LdOut: 32}},
		{"3x3g4/block1", engine.ConvShape{N: 64, H: 32, W: 32, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 32, LdOut: 128}},
		{"3x3g4/block3", engine.ConvShape{N: 64, H: 8, W: 8, C: 128, K: 32, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 128, LdOut: 800}},
	} {
		s := bc.s
		in := randSlice(rng, s.N*s.H*s.W*s.LdIn)
		w := randSlice(rng, s.K*s.C/s.G*s.R*s.S)
		out := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
		dIn, dW := make([]float32, len(in)), make([]float32, len(w))
		c := NewConv(s, 2, nil)
		b.Run(bc.name+"/forward", func(b *testing.B) {
			for b.Loop() {
				c.Forward(out, in, w)
			}
			b.ReportMetric(float64(s.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(bc.name+"/backward", func(b *testing.B) {
			for b.Loop() {
				c.Backward(dIn, dW, out, in, w)
			}
			b.ReportMetric(2*float64(s.FLOPs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// stridedCopy's gather gives what its definition gives, tails included,
// and writes nothing past n.
func TestStridedCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, stride := range []int{1, 3, 17, 544} {
		for n := range 40 {
			src := randSlice(rng, max(1, n*stride))
			got, want := make([]float32, n+3), make([]float32, n+3)
			stridedCopy(got[:n], src, stride)
			stridedCopyGo(want[:n], src, stride)
			if !slices.Equal(got, want) {
				t.Fatalf("stride %d, n %d: %v, want %v", stride, n, got, want)
			}
		}
	}
}

// A convolution with an input transform equals the transform (an indexed
// inference BatchNorm with ReLU) followed by the plain convolution.
func TestConvInputTransform(t *testing.T) { forEachISA(t, testConvInputTransform) }

func testConvInputTransform(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	// 1×1 convolutions of several chunks with a short last one, for the
	// four-group kernel and for the GEMMs (see pointwiseInputForward).
	chunked := []engine.ConvShape{
		{N: 3, H: 10, W: 11, C: 160, K: 64, R: 1, S: 1, Stride: 1, G: 4, LdIn: 160, LdOut: 70},
		{N: 2, H: 16, W: 15, C: 96, K: 128, R: 1, S: 1, Stride: 1, G: 4, LdIn: 96, LdOut: 128},
	}
	shapes := append(chunked, enginetest.ConvShapes...)
	for i, s := range append(shapes, shapes...) {
		const extra = 3 // the raw input is wider than the convolution's
		raw := s.C + extra
		p := s.N * s.H * s.W
		x := randSlice(rng, p*raw)
		// Any channels, repeats allowed; then a permutation of the first
		// C, as a channel shuffle is (see sourceRows).
		idx := make([]int32, s.C)
		for j := range idx {
			idx[j] = int32(rng.IntN(raw))
		}
		if i >= len(shapes) {
			for j, v := range rng.Perm(s.C) {
				idx[j] = int32(v)
			}
		}
		gamma, beta, mean := randSlice(rng, s.C), randSlice(rng, s.C), randSlice(rng, s.C)
		vari := make([]float32, s.C)
		for j := range vari {
			vari[j] = 0.5 + rng.Float32()
		}
		a := &engine.Affine{Index: idx, Scale: make([]float32, s.C), Shift: make([]float32, s.C), ReLU: true}
		for j := range s.C {
			a.Scale[j] = gamma[j] * float32(1/math.Sqrt(float64(vari[j])+1e-5))
			a.Shift[j] = beta[j] - mean[j]*a.Scale[j]
		}
		w := randSlice(rng, s.Weights())
		normed := make([]float32, p*s.C)
		NewIndexedBatchNorm(p, idx, raw, s.C, true, 2).ForwardInfer(normed, x, gamma, beta, mean, vari)
		plain := s
		plain.LdIn = s.C
		want := make([]float32, s.N*s.OH()*s.OW()*s.LdOut)
		NewConv(plain, 2, nil).Forward(want, normed, w)
		fused := s
		fused.LdIn, fused.Input, fused.Fixed = raw, a, true
		got := make([]float32, len(want))
		c := NewConv(fused, 2, nil)
		for range 2 {
			c.Forward(got, x, w)
			if i, ok := closeTo(got, want, 1e-5, 1e-5); !ok {
				t.Fatalf("%s: [%d] = %v with the transform fused, %v after BatchNorm", enginetest.ConvName(s), i, got[i], want[i])
			}
		}
		checkPlanes(t, fused, x, raw, w, want)
	}
}

// checkPlanes runs s (rows of raw channels in x, rows out) again with
// planes out, planes in, and both: the same outputs as want, s's.
func checkPlanes(t *testing.T, s engine.ConvShape, x []float32, raw int, w, want []float32) {
	t.Helper()
	p, q := s.N*s.H*s.W, s.N*s.OH()*s.OW()
	planesIn := make([]float32, raw*(p+5))
	for i := range p {
		for ch := range raw {
			planesIn[ch*(p+5)+i] = x[i*raw+ch]
		}
	}
	for _, v := range []struct{ in, out bool }{{false, true}, {true, false}, {true, true}} {
		ps := s
		ps.InPlanes, ps.OutPlanes = v.in, v.out
		src := x
		if v.in {
			ps.LdIn, src = p+5, planesIn
		}
		got := make([]float32, len(want))
		if v.out {
			ps.LdOut = q + 3
			got = make([]float32, s.K*ps.LdOut)
		}
		c := NewConv(ps, 2, nil)
		for range 2 {
			c.Forward(got, src, w)
		}
		for i := range q {
			for k := range s.K {
				at := i*s.LdOut + k
				if v.out {
					at = k*ps.LdOut + i
				}
				g := got[at]
				if e := want[i*s.LdOut+k]; math.Abs(float64(g-e)) > 1e-5+1e-5*math.Abs(float64(e)) {
					t.Fatalf("%s planes %+v: pixel %d channel %d = %v, want %v", enginetest.ConvName(s), v, i, k, g, e)
				}
			}
		}
	}
}

// stridedAffine's gather, multiply-add and floor give its definition's
// results (to within a rounding: the assembly fuses the multiply-add),
// tails included, and write nothing past n.
func TestStridedAffine(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, floor := range []float32{0, float32(math.Inf(-1))} {
		for _, stride := range []int{1, 5, 544} {
			for n := range 40 {
				src := randSlice(rng, max(1, n*stride))
				got, want := make([]float32, n+3), make([]float32, n+3)
				stridedAffine(got[:n], src, stride, 0.7, -0.2, floor)
				stridedAffineGo(want[:n], src, stride, 0.7, -0.2, floor)
				if i, ok := closeTo(got, want, 1e-7, 1e-7); !ok {
					t.Fatalf("floor %v stride %d n %d: [%d] = %v, want %v", floor, stride, n, i, got[i], want[i])
				}
			}
		}
	}
}

// The four-group 1×1 kernels give the bits of the per-group GEMMs.
func TestConvG4SameBits(t *testing.T) {
	if !use.conv1x1G4 {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(12, 12))
	for _, k := range []int{32, 64} {
		s := engine.ConvShape{N: 3, H: 5, W: 7, C: 64, K: k, R: 1, S: 1, Stride: 1, G: 4, LdIn: 70, LdOut: k + 8}
		checkG4SameBits(t, s, rng)
	}
}

func checkG4SameBits(t *testing.T, s engine.ConvShape, rng *rand.Rand) {
	in, w := randSlice(rng, s.N*s.H*s.W*s.LdIn), randSlice(rng, s.Weights())
	kernel, gemm := make([]float32, s.N*s.H*s.W*s.LdOut), make([]float32, s.N*s.H*s.W*s.LdOut)
	NewConv(s, 2, nil).Forward(kernel, in, w)
	restore := withISA(isaAVX2)
	NewConv(s, 2, nil).Forward(gemm, in, w)
	restore()
	if !slices.Equal(kernel, gemm) {
		i, _ := closeTo(kernel, gemm, 0, 0)
		t.Errorf("K=%d: [%d] = %v, the GEMMs give %v", s.K, i, kernel[i], gemm[i])
	}
}

// Two convolutions of different image sizes whose planes have the same
// length share a scratch without one's image landing on the other's
// border.
func TestDirectPlanesKeptApart(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	scratch := new(Scratch)
	for range 2 {
		for _, h := range []int{4, 3} { // 14 wide: both planes are 98 floats
			s := engine.ConvShape{N: 1, H: h, W: 14, C: 4, K: 4, R: 3, S: 3, Stride: 1, Pad: 1, G: 2, LdIn: 4, LdOut: 4}
			in, w := randSlice(rng, h*14*4), randSlice(rng, s.Weights())
			want, got := make([]float32, h*14*4), make([]float32, h*14*4)
			convNaive(want, in, w, s)
			NewConv(s, 1, scratch).Forward(got, in, w)
			if i, ok := closeTo(got, want, 1e-5, 1e-5); !ok {
				t.Fatalf("%d×14: [%d] = %v, want %v", h, i, got[i], want[i])
			}
		}
	}
}

// The register transpose does what its definition does, for each block
// shape and with add, and writes nothing else.
// prefetchLines may be asked for lines past its slice, even on pages that
// are not mapped (the last blocks of a buffer ask for the lines after
// it): a prefetch never faults, and changes nothing it reaches.
func TestPrefetchLinesPastEnd(t *testing.T) {
	buf := []float32{1, 2, 3}
	for _, write := range []bool{false, true} {
		for _, offset := range []int{3, 1 << 20, 1 << 40, -1 << 40} {
			prefetchLines(&buf[0], offset, 1<<30, write)
		}
	}
	if !slices.Equal(buf, []float32{1, 2, 3}) {
		t.Fatalf("buffer changed: %v", buf)
	}
}

func TestTranspose(t *testing.T) {
	if !use.transpose {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(17, 17))
	for _, rows := range []int{8, 16} {
		for _, cols := range []int{8, 16} {
			for _, add := range []bool{false, true} {
				src := randSlice(rng, 16*21)
				dst0 := randSlice(rng, 16*19)
				got, want := slices.Clone(dst0), slices.Clone(dst0)
				transpose(got, 19, src, 21, rows, cols, add)
				transposeGo(want, 19, src, 21, rows, cols, add)
				if !slices.Equal(got, want) {
					i, _ := closeTo(got, want, 0, 0)
					t.Errorf("rows %d cols %d add %v: [%d] = %v, want %v", rows, cols, add, i, got[i], want[i])
				}
			}
		}
	}
}

// affineRows gives its definition's results on rows of every width a
// mask covers, 16 and past it.
func TestAffineRows(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(4, 4))
		for _, w := range []int{1, 7, 8, 16, 17, 32, 56} {
			const h, stride = 3, 60
			src := randSlice(rng, w*h)
			got, want := make([]float32, (h-1)*stride+w), make([]float32, (h-1)*stride+w)
			affineRows(got, stride, src, w, h, 1.5, -0.25, 0)
			affineRowsGo(want, stride, src, w, h, 1.5, -0.25, 0)
			if !slices.Equal(got, want) {
				t.Fatalf("width %d: %v, want %v", w, got, want)
			}
		}
		mustPanic(t, "rows past the source", "rows of", func() { affineRows(make([]float32, 200), 60, make([]float32, 47), 16, 3, 1, 0, 0) })
	})
}

// The ImageNet stem computed directly (stem2Forward) gives the bits of its
// GEMM on patches, which the AVX2 level runs, and the plain definition's
// values; odd sizes reach the padding on the far sides.
func TestStem2SameBits(t *testing.T) {
	if !use.bnAll {
		t.Skip("stem2Forward is AVX-512 only")
	}
	rng := rand.New(rand.NewPCG(23, 23))
	for _, s := range []engine.ConvShape{
		{N: 2, H: 14, W: 18, C: 3, K: 16, R: 3, S: 3, Stride: 2, Pad: 1, G: 1, LdIn: 3, LdOut: 16},
		{N: 1, H: 7, W: 9, C: 3, K: 16, R: 3, S: 3, Stride: 2, Pad: 1, G: 1, LdIn: 3, LdOut: 20},
	} {
		if !useStem2(s) {
			t.Fatalf("%s: not the stem", enginetest.ConvName(s))
		}
		in, w := randSlice(rng, s.N*s.H*s.W*3), randSlice(rng, s.Weights())
		n := s.N * s.OH() * s.OW() * s.LdOut
		got, want, plain := make([]float32, n), make([]float32, n), make([]float32, n)
		NewConv(s, 2, nil).Forward(got, in, w)
		func() {
			defer withISA(isaAVX2)()
			NewConv(s, 2, nil).Forward(want, in, w)
		}()
		convNaive(plain, in, w, s)
		for p := range s.N * s.OH() * s.OW() {
			row := p * s.LdOut
			if !slices.Equal(got[row:row+16], want[row:row+16]) {
				t.Fatalf("%s: pixel %d = %v, the GEMM's %v", enginetest.ConvName(s), p, got[row:row+16], want[row:row+16])
			}
			if k, ok := closeTo(got[row:row+16], plain[row:row+16], 1e-5, 1e-5); !ok {
				t.Fatalf("%s: pixel %d channel %d = %v, want %v", enginetest.ConvName(s), p, k, got[row+k], plain[row+k])
			}
		}
	}
}

// The direct micro-kernel over four output channels gives the bits of
// the pair kernel over two and two, so tileWidth does not change results;
// and the one-vector forms of both, those of the whole block's.
func TestDirectQuadIsTwoPairs(t *testing.T) {
	if !use.direct3x3 {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(13, 13))
	for _, rowStride := range []int{9, 16, 34} {
		red := 37
		planeLen := directBlock + 2*rowStride + 2
		plane, quad := randSlice(rng, red*planeLen), randSlice(rng, red*9*4)
		pairs := make([]float32, 2*red*9*2) // quad's outputs 0-1, then 2-3
		for h := range 2 {
			for i := range red * 9 {
				pairs[h*red*18+2*i], pairs[h*red*18+2*i+1] = quad[4*i+2*h], quad[4*i+2*h+1]
			}
		}
		var got [4 * directBlock]float32
		var want [2][2 * directBlock]float32
		conv3x3Quad512(&got[0], &plane[0], &quad[0], red, planeLen, rowStride)
		conv3x3Pair512(&want[0][0], &plane[0], &pairs[0], red, planeLen, rowStride)
		conv3x3Pair512(&want[1][0], &plane[0], &pairs[red*18], red, planeLen, rowStride)
		if !slices.Equal(got[:], slices.Concat(want[0][:], want[1][:])) {
			i, _ := closeTo(got[:], slices.Concat(want[0][:], want[1][:]), 0, 0)
			t.Fatalf("row stride %d: output %d position %d differs from the pair kernel's", rowStride, i/directBlock, i%directBlock)
		}
		for v := 0; v < directBlock; v += directVector {
			var quadVec [4 * directBlock]float32
			var pairVec [2][4 * directBlock]float32
			conv3x3QuadVec512(&quadVec[0], &plane[v], &quad[0], red, planeLen, rowStride)
			conv3x3PairVec512(&pairVec[0][0], &plane[v], &pairs[0], red, planeLen, rowStride)
			conv3x3PairVec512(&pairVec[1][0], &plane[v], &pairs[red*18], red, planeLen, rowStride)
			for j := range 4 {
				whole := got[j*directBlock+v:][:directVector]
				if !slices.Equal(quadVec[j*directBlock:][:directVector], whole) {
					t.Fatalf("row stride %d: the one-vector quad kernel's output %d at position %d differs from the block's", rowStride, j, v)
				}
				if !slices.Equal(pairVec[j/2][j%2*directBlock:][:directVector], whole) {
					t.Fatalf("row stride %d: the one-vector pair kernel's output %d at position %d differs from the block's", rowStride, j, v)
				}
			}
		}
	}
}

// The pointwise kernels into planes, for blocks of any count of outputs
// (8, 4, or another through a buffer), give the bits of the definition,
// and write nothing past their outputs' pixels: a short block's unused
// weights (here not zero) change nothing.
func TestPointwisePlanesBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for _, kb := range []int{8, 4, 7, 3, 1} {
		for _, c := range []struct{ cg, pixels int }{{1, 32}, {9, 32}, {37, 17}, {5, 1}} {
			const stride, ld = 45, 40
			src := randSlice(rng, 200*stride)
			idx := make([]int32, c.cg)
			for i := range idx {
				idx[i] = int32(rng.IntN(200))
			}
			scale, shift, w := randSlice(rng, c.cg), randSlice(rng, c.cg), randSlice(rng, c.cg*pointwiseBlock)
			for _, floor := range []float32{0, float32(math.Inf(-1))} {
				got, want := make([]float32, (kb+1)*ld), make([]float32, (kb+1)*ld)
				for i := range got {
					got[i] = float32(math.NaN())
					want[i] = got[i]
				}
				pointwisePlanes(got, ld, src, stride, idx, slices.Max(idx), scale, shift, w, kb, floor, c.pixels)
				pointwisePlanesGo(want, ld, src, stride, idx, scale, shift, w, kb, floor, c.pixels)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("block of %d, %d channels, %d pixels, floor %v: output %d pixel %d = %v, want %v", kb, c.cg, c.pixels, floor, i/ld, i%ld, got[i], want[i])
					}
				}
			}
		}
	}
}

// A pointwise convolution into planes whose inputs are transformed once
// for all its blocks of outputs (transformPlanes, pointwiseTransformed)
// gives the bits of its definition, which transforms them in every
// block, as the fused kernel does; tails of pixels included.
func TestPointwiseTransformedSameBits(t *testing.T) {
	if !use.planes {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(14, 14))
	for _, c := range []struct{ cg, pixels int }{{1, 32}, {7, 32}, {37, 17}, {130, 1}} {
		const stride, blocks = 45, 3
		src := randSlice(rng, 200*stride)
		idx := make([]int32, c.cg)
		for i := range idx {
			idx[i] = int32(rng.IntN(200))
		}
		most := slices.Max(idx)
		scale, shift, w := randSlice(rng, c.cg), randSlice(rng, c.cg), randSlice(rng, blocks*c.cg*pointwiseBlock)
		for _, floor := range []float32{0, float32(math.Inf(-1))} {
			transformed := make([]float32, c.cg*pointwiseChunk)
			transformPlanes(transformed, src, stride, idx, most, scale, shift, floor, c.pixels)
			const ld = 40
			got, fused, want := make([]float32, blocks*pointwiseBlock*ld), make([]float32, blocks*pointwiseBlock*ld), make([]float32, blocks*pointwiseBlock*ld)
			for b := range blocks {
				at, wb := b*pointwiseBlock*ld, w[b*c.cg*pointwiseBlock:]
				pointwiseTransformed(got[at:], ld, transformed, c.cg, wb, c.pixels)
				pointwisePlanes(fused[at:], ld, src, stride, idx, most, scale, shift, wb, pointwiseBlock, floor, c.pixels)
				pointwisePlanesGo(want[at:], ld, src, stride, idx, scale, shift, wb, pointwiseBlock, floor, c.pixels)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(fused[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%d channels, %d pixels, floor %v: output %d pixel %d = %v transformed once, %v fused, %v by definition",
						c.cg, c.pixels, floor, i/ld, i%ld, got[i], fused[i], want[i])
				}
			}
		}
	}
}
