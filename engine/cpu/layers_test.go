package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine"
)

// batchNormNaive is the definition in float64: biased batch variance for
// normalising, unbiased for the running estimate.
func batchNormNaive(out, in, gamma, beta, runMean, runVar []float32, p, c, ldIn, ldOut int, relu bool) {
	for ch := range c {
		var m, v float64
		for i := range p {
			m += float64(in[i*ldIn+ch])
		}
		m /= float64(p)
		for i := range p {
			d := float64(in[i*ldIn+ch]) - m
			v += d * d
		}
		v /= float64(p)
		for i := range p {
			y := float64(gamma[ch])*(float64(in[i*ldIn+ch])-m)/math.Sqrt(v+1e-5) + float64(beta[ch])
			if relu {
				y = max(y, 0)
			}
			out[i*ldOut+ch] = float32(y)
		}
		runMean[ch] = float32(0.9*float64(runMean[ch]) + 0.1*m)
		runVar[ch] = float32(0.9*float64(runVar[ch]) + 0.1*v*float64(p)/float64(p-1))
	}
}

func TestBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, tc := range []struct {
		p, c, ldIn, ldOut int
		relu              bool
	}{{40, 5, 5, 5, false}, {40, 5, 9, 6, true}, {30, 16, 16, 16, false}, {30, 19, 20, 21, true}, {64, 70, 80, 70, true}} {
		in := randSlice(rng, tc.p*tc.ldIn)
		for i := range in {
			in[i] = in[i]*2 + 0.5 // not already normalised
		}
		gamma, beta := randSlice(rng, tc.c), randSlice(rng, tc.c)
		rm, rv := randSlice(rng, tc.c), make([]float32, tc.c)
		for i := range rv {
			rv[i] = 1 + rng.Float32()
		}
		wantRM, wantRV := slices.Clone(rm), slices.Clone(rv)
		want := make([]float32, tc.p*tc.ldOut)
		batchNormNaive(want, in, gamma, beta, wantRM, wantRV, tc.p, tc.c, tc.ldIn, tc.ldOut, tc.relu)
		bn := NewBatchNorm(tc.p, tc.c, tc.ldIn, tc.ldOut, tc.relu, 2)
		got := make([]float32, len(want))
		bn.ForwardTrain(got, in, gamma, beta, rm, rv)
		if i, ok := closeTo(got, want, 1e-5, 1e-5); !ok {
			t.Errorf("train forward P%d C%d: out[%d] = %v, want %v", tc.p, tc.c, i, got[i], want[i])
		}
		if i, ok := closeTo(rm, wantRM, 1e-6, 1e-5); !ok {
			t.Errorf("running mean[%d] = %v, want %v", i, rm[i], wantRM[i])
		}
		if i, ok := closeTo(rv, wantRV, 1e-6, 1e-5); !ok {
			t.Errorf("running var[%d] = %v, want %v", i, rv[i], wantRV[i])
		}
		// Inference uses the running statistics: y = gamma·(x−rm)/sqrt(rv+eps) + beta.
		bn.ForwardInfer(got, in, gamma, beta, rm, rv)
		for i := range tc.p {
			for ch := range tc.c {
				y := float64(gamma[ch])*(float64(in[i*tc.ldIn+ch])-float64(rm[ch]))/math.Sqrt(float64(rv[ch])+1e-5) + float64(beta[ch])
				if tc.relu {
					y = max(y, 0)
				}
				if math.Abs(float64(got[i*tc.ldOut+ch])-y) > 1e-5*(1+math.Abs(y)) {
					t.Fatalf("infer forward [%d,%d] = %v, want %v", i, ch, got[i*tc.ldOut+ch], y)
				}
			}
		}
		if tc.p*tc.c > 1000 {
			continue // gradient check on the small cases
		}
		out := make([]float32, len(want))
		gradCheck(t, "batchnorm", map[string][]float32{"in": in, "gamma": gamma, "beta": beta},
			func() []float32 { bn.ForwardTrain(out, in, gamma, beta, rm, rv); return out },
			func(r []float32) map[string][]float32 {
				dIn, dg, db := make([]float32, len(in)), make([]float32, tc.c), make([]float32, tc.c)
				bn.Backward(dIn, dg, db, r, in, gamma)
				return map[string][]float32{"in": dIn, "gamma": dg, "beta": db}
			}, 40)
	}
}

func TestPools(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	n, h, w, c, ld := 2, 4, 6, 3, 5
	in := randSlice(rng, n*h*w*ld)
	out := make([]float32, n*(h/2)*(w/2)*4)
	AvgPool2Forward(out, in, n, h, w, c, ld, 4, 2)
	// definition: mean of the 2×2 window
	for b := range n {
		for y := range h / 2 {
			for x := range w / 2 {
				for ch := range c {
					var s float64
					for dy := range 2 {
						for dx := range 2 {
							s += float64(in[((b*h+2*y+dy)*w+2*x+dx)*ld+ch])
						}
					}
					if got := out[((b*(h/2)+y)*(w/2)+x)*4+ch]; math.Abs(float64(got)-s/4) > 1e-6 {
						t.Fatalf("avgpool[%d,%d,%d,%d] = %v, want %v", b, y, x, ch, got, s/4)
					}
				}
			}
		}
	}
	gradCheck(t, "avgpool2", map[string][]float32{"in": in},
		func() []float32 { AvgPool2Forward(out, in, n, h, w, c, ld, 4, 2); return out },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			AvgPool2Backward(d, r, n, h, w, c, ld, 4, 2)
			return map[string][]float32{"in": d}
		}, 50)
	gap := make([]float32, n*c)
	GlobalAvgPoolForward(gap, in, n, h*w, c, ld)
	for b := range n {
		for ch := range c {
			var s float64
			for p := range h * w {
				s += float64(in[(b*h*w+p)*ld+ch])
			}
			if math.Abs(float64(gap[b*c+ch])-s/float64(h*w)) > 1e-6 {
				t.Fatalf("global avgpool[%d,%d] = %v, want %v", b, ch, gap[b*c+ch], s/float64(h*w))
			}
		}
	}
	gradCheck(t, "global avgpool", map[string][]float32{"in": in},
		func() []float32 { GlobalAvgPoolForward(gap, in, n, h*w, c, ld); return gap },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			GlobalAvgPoolBackward(d, r, n, h*w, c, ld)
			return map[string][]float32{"in": d}
		}, 50)
}

func TestLinearAndLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	n, i, o := 5, 7, 4
	in, w, bias := randSlice(rng, n*i), randSlice(rng, o*i), randSlice(rng, o)
	out := make([]float32, n*o)
	LinearForward(out, in, w, bias, n, i, o, 2)
	for b := range n {
		for j := range o {
			s := float64(bias[j])
			for k := range i {
				s += float64(in[b*i+k]) * float64(w[j*i+k])
			}
			if math.Abs(float64(out[b*o+j])-s) > 1e-5 {
				t.Fatalf("linear[%d,%d] = %v, want %v", b, j, out[b*o+j], s)
			}
		}
	}
	gradCheck(t, "linear", map[string][]float32{"in": in, "w": w, "bias": bias},
		func() []float32 { LinearForward(out, in, w, bias, n, i, o, 2); return out },
		func(r []float32) map[string][]float32 {
			di, dw, db := make([]float32, len(in)), make([]float32, len(w)), make([]float32, len(bias))
			LinearBackward(di, dw, db, r, in, w, n, i, o, 2)
			return map[string][]float32{"in": di, "w": dw, "bias": db}
		}, 30)

	labels := []int32{0, 3, 2, 2, 1}
	probs := make([]float32, n*o)
	loss := SoftmaxCrossEntropyForward(probs, out, labels, n, o)
	var want float64
	for b := range n {
		var s float64
		for j := range o {
			s += math.Exp(float64(out[b*o+j]))
		}
		want += -math.Log(math.Exp(float64(out[b*o+int(labels[b])])) / s)
	}
	if want /= float64(n); math.Abs(loss-want) > 1e-6 {
		t.Errorf("cross-entropy = %v, want %v", loss, want)
	}
	lossOut := []float32{0}
	gradCheck(t, "cross-entropy", map[string][]float32{"logits": out},
		func() []float32 {
			lossOut[0] = float32(SoftmaxCrossEntropyForward(probs, out, labels, n, o))
			return lossOut
		},
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(out))
			SoftmaxCrossEntropyBackward(d, probs, labels, n, o)
			for k := range d {
				d[k] *= r[0]
			}
			return map[string][]float32{"logits": d}
		}, 20)
}

func TestChannelOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	p, c, g, ld := 3, 8, 4, 10
	in := randSlice(rng, p*ld)
	out := make([]float32, p*c)
	// Shuffle by its definition: view (G, C/G), swap the axes, flatten.
	ShuffleForward(out, in, p, c, g, ld, c)
	for i := range p {
		for gi := range g {
			for k := range c / g {
				if out[i*c+k*g+gi] != in[i*ld+gi*(c/g)+k] {
					t.Fatalf("shuffle: out[%d, %d] != in[%d, %d]", i, k*g+gi, i, gi*(c/g)+k)
				}
			}
		}
	}
	// With G = 2 and C = 4: channels 0 1 2 3 become 0 2 1 3.
	small := []float32{10, 11, 12, 13}
	ShuffleForward(small, []float32{10, 11, 12, 13}, 1, 4, 2, 4, 4)
	if !slices.Equal(small, []float32{10, 12, 11, 13}) {
		t.Errorf("shuffle of 10 11 12 13 in 2 groups = %v, want 10 12 11 13", small)
	}
	gradCheck(t, "shuffle", map[string][]float32{"in": in},
		func() []float32 { ShuffleForward(out, in, p, c, g, ld, c); return out },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			ShuffleBackward(d, r, p, c, g, ld, c)
			return map[string][]float32{"in": d}
		}, 30)

	idx := []int32{7, 0, 3, 3, 5}
	sel := make([]float32, p*len(idx))
	IndexSelectForward(sel, in, idx, p, ld, len(idx))
	for i := range p {
		for j, k := range idx {
			if sel[i*len(idx)+j] != in[i*ld+int(k)] {
				t.Fatalf("index-select [%d,%d] != in[%d,%d]", i, j, i, k)
			}
		}
	}
	gradCheck(t, "index-select", map[string][]float32{"in": in},
		func() []float32 { IndexSelectForward(sel, in, idx, p, ld, len(idx)); return sel },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			IndexSelectBackward(d, r, idx, p, ld, len(idx))
			return map[string][]float32{"in": d}
		}, 30)

	mask := make([]float32, p*c)
	DropoutMask(mask, 0.25, rng.Float32)
	zeros := 0
	for _, m := range mask {
		if m != 0 && m != 1/0.75 {
			t.Fatalf("dropout mask value %v, want 0 or 1/(1-p)", m)
		}
		if m == 0 {
			zeros++
		}
	}
	if zeros == 0 || zeros == len(mask) {
		t.Errorf("dropout dropped %d of %d", zeros, len(mask))
	}
	drop := make([]float32, p*c)
	gradCheck(t, "dropout", map[string][]float32{"in": in},
		func() []float32 { DropoutForward(drop, in, mask, p, c, ld, c); return drop },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			DropoutBackward(d, r, mask, p, c, ld, c)
			return map[string][]float32{"in": d}
		}, 30)

	relu := make([]float32, p*c)
	gradCheck(t, "relu", map[string][]float32{"in": in},
		func() []float32 { ReLUForward(relu, in, p, c, ld, c); return relu },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(in))
			ReLUBackward(d, r, relu, p, c, ld, c)
			return map[string][]float32{"in": d}
		}, 30)

	w := randSlice(rng, 12)
	wm := make([]float32, 12)
	wmask := []float32{1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0}
	gradCheck(t, "weight mask", map[string][]float32{"w": w},
		func() []float32 { MaskForward(wm, w, wmask); return wm },
		func(r []float32) map[string][]float32 {
			d := make([]float32, len(w))
			MaskBackward(d, r, wmask)
			return map[string][]float32{"w": d}
		}, 12)
}

func TestSGDNesterovMatchesPyTorch(t *testing.T) {
	// Two steps of torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True,
	// weight_decay=1e-4) on w = 1 with gradients 0.5 then −0.2, worked by hand:
	// step 1: d = 0.5 + 1e-4·1 = 0.5001; v = 0.5001; w = 1 − 0.1·(0.5001 + 0.9·0.5001) = 0.904981
	// step 2: d = −0.2 + 1e-4·0.904981 = −0.1999095019; v = 0.9·0.5001 − 0.1999095019 = 0.2501804981
	//         w = 0.904981 − 0.1·(−0.1999095019 + 0.9·0.2501804981) = 0.9024557054
	w, v := []float32{1}, []float32{0}
	SGDNesterov(w, []float32{0.5}, v, 0.1, 0.9, 1e-4)
	if math.Abs(float64(w[0])-0.904981) > 1e-6 {
		t.Fatalf("after step 1 w = %v, want 0.904981", w[0])
	}
	SGDNesterov(w, []float32{-0.2}, v, 0.1, 0.9, 1e-4)
	if math.Abs(float64(w[0])-0.9024557054) > 1e-6 || math.Abs(float64(v[0])-0.2501804981) > 1e-6 {
		t.Errorf("after step 2 w = %v, v = %v; want 0.9024557054, 0.2501804981", w[0], v[0])
	}
}

// TestBatchNormRowKernels runs the assembly row kernels against the Go
// ones, which are their definition, on widths with and without a tail:
// AVX2 within float rounding (it fuses multiply-adds), AVX-512 to the bit
// against AVX2 where AVX2 leaves no channels to Go.
func TestBatchNormRowKernels(t *testing.T) {
	if !use.bnEights {
		t.Skip("no AVX2 on this CPU: only the Go kernels run")
	}
	rng := rand.New(rand.NewPCG(12, 12))
	for _, n := range []int{5, 8, 16, 24, 29, 35, 64, 77, 100, 136} { // AVX-512 sums four vectors at a time, then one
		rows, ldx, ldy := 7, n+3, n+5
		x, dy := randSlice(rng, rows*ldx), randSlice(rng, rows*ldy)
		scale, shift := randSlice(rng, n), randSlice(rng, n)
		a, b, c := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		for _, floor := range []float32{0, float32(math.Inf(-1))} {
			run := func(l isa) (out [][]float32) {
				defer withISA(l)()
				s1, s2 := make([]float32, n), make([]float32, n)
				bnStats(s1, s2, x, n, rows, ldx)
				ap := make([]float32, rows*ldy)
				bnApply(ap, x, scale, shift, n, rows, ldx, ldy, floor)
				g1, g2 := make([]float32, n), make([]float32, n)
				bnBackSums(g1, g2, x, dy, scale, shift, n, rows, ldx, ldy, floor)
				dx := randSlice(rand.New(rand.NewPCG(1, 1)), rows*ldx)
				set, added := slices.Clone(dx), slices.Clone(dx)
				bnBackApply(dx, x, dy, scale, shift, a, b, c, n, rows, ldx, ldy, floor, false)
				// Writing dx is adding to zeros, bit for bit, and leaves
				// the channels past n.
				bnBackApply(set, x, dy, scale, shift, a, b, c, n, rows, ldx, ldy, floor, true)
				for r := range rows {
					clear(added[r*ldx : r*ldx+n])
				}
				bnBackApply(added, x, dy, scale, shift, a, b, c, n, rows, ldx, ldy, floor, false)
				if !slices.Equal(set, added) {
					t.Errorf("n=%d floor=%v %v: writing dx differs from adding to zeros", n, floor, l)
				}
				return [][]float32{s1, s2, ap, g1, g2, dx}
			}
			names := []string{"stats s1", "stats s2", "apply", "back sums g", "back sums gx", "back apply"}
			want, got := run(isaGo), run(isaAVX2)
			for k, name := range names {
				if i, ok := closeTo(got[k], want[k], 1e-5, 1e-5); !ok {
					t.Errorf("n=%d floor=%v %s: [%d] = %v with AVX2, Go gives %v", n, floor, name, i, got[k][i], want[k][i])
				}
			}
			if !use.bnAll {
				continue
			}
			// AVX2 leaves a tail of fewer than 8 channels to Go.
			tol := 0.0
			if n%8 != 0 {
				tol = 1e-5
			}
			wide := run(isaAVX512)
			for k, name := range names {
				if i, ok := closeTo(wide[k], got[k], tol, tol); !ok {
					t.Errorf("n=%d floor=%v %s: [%d] = %v with AVX-512, %v with AVX2", n, floor, name, i, wide[k][i], got[k][i])
				}
			}
		}
	}
}

// Memory-bound kernels report bytes moved per call (b.SetBytes) on the
// shapes of CondenseNet-86's first block at batch 64.
func BenchmarkBatchNorm(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 13))
	const p, c, ld = 64 * 32 * 32, 64, 128
	in, out := randSlice(rng, p*ld), make([]float32, p*c)
	dIn := make([]float32, p*ld)
	gamma, beta, rm, rv := randSlice(rng, c), randSlice(rng, c), make([]float32, c), make([]float32, c)
	dg, db := make([]float32, c), make([]float32, c)
	bn := NewBatchNorm(p, c, ld, c, true, 2)
	b.Run("forward-train", func(b *testing.B) {
		b.SetBytes(3 * p * c * 4) // stats read, normalise read and write
		for b.Loop() {
			bn.ForwardTrain(out, in, gamma, beta, rm, rv)
		}
	})
	b.Run("backward", func(b *testing.B) {
		b.SetBytes(6 * p * c * 4) // two passes over x and dy; dx read and written
		for b.Loop() {
			bn.Backward(dIn, dg, db, out, in, gamma)
		}
	})
}

// A row of 2×2 pooling, and its gradient, give their definitions' bits on
// whole vectors of channels and on tails, and leave the channels past c
// as they were.
func TestAvgPool2RowSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for _, c := range []int{1, 5, 16, 17, 40, 128} {
		ldIn, ldOut, ow := c+3, c+7, 5
		rowIn := 2*ow*ldIn + 2
		x, g := randSlice(rng, 2*rowIn), randSlice(rng, ow*ldOut)
		y := randSlice(rng, ow*ldOut)
		want := slices.Clone(y)
		avgPool2Row(y, x, ldIn, rowIn, ldOut, ow, c)
		avgPool2RowGo(want, x, ldIn, rowIn, ldOut, ow, c)
		if !slices.Equal(y, want) {
			t.Fatalf("c %d: pooled %v, want %v", c, y, want)
		}
		dx := randSlice(rng, 2*rowIn)
		wantDx := slices.Clone(dx)
		avgPool2RowBack(dx, g, ldIn, rowIn, ldOut, ow, c)
		avgPool2RowBackGo(wantDx, g, ldIn, rowIn, ldOut, ow, c)
		if !slices.Equal(dx, wantDx) {
			t.Fatalf("c %d: gradient %v, want %v", c, dx, wantDx)
		}
	}
}

func BenchmarkAvgPool2(b *testing.B) {
	rng := rand.New(rand.NewPCG(14, 14))
	const n, h, w, c = 64, 32, 32, 128
	in, out := randSlice(rng, n*h*w*c), make([]float32, n*h*w*c/4)
	b.SetBytes(n * h * w * c * 4 * 5 / 4)
	for b.Loop() {
		AvgPool2Forward(out, in, n, h, w, c, c, c, 2)
	}
}

// BatchNorm's sums go by fixed row blocks, so any worker count gives the
// same bits.
func TestBatchNormWorkersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	const p, c, ld = 1000, 24, 30
	in, dy := randSlice(rng, p*ld), randSlice(rng, p*c)
	gamma, beta := randSlice(rng, c), randSlice(rng, c)
	var first [][]float32
	for _, workers := range []int{1, 2, 3} {
		bn := NewBatchNorm(p, c, ld, c, true, workers)
		out, dIn := make([]float32, p*c), make([]float32, p*ld)
		dg, db, rm, rv := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
		bn.ForwardTrain(out, in, gamma, beta, rm, rv)
		bn.Backward(dIn, dg, db, dy, in, gamma)
		got := [][]float32{out, dIn, dg, db, rm, rv}
		if first == nil {
			first = got
			continue
		}
		for i := range got {
			if !slices.Equal(got[i], first[i]) {
				t.Fatalf("%d workers: result %d differs from 1 worker's", workers, i)
			}
		}
	}
}

// The assembly gathers (AVX-512 by sixteens, AVX2 by eights) agree with the
// Go index-select, tails included.
func TestGatherRows(t *testing.T) { forEachISA(t, testGatherRows) }

func testGatherRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 16))
	const p, ld = 9, 40
	in := randSlice(rng, p*ld)
	for _, n := range []int{3, 8, 16, 21, 40, 45} {
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(rng.IntN(ld))
		}
		want, got := make([]float32, p*n), make([]float32, p*n)
		IndexSelectForward(want, in, idx, p, ld, n)
		gatherRows(got, in, idx, p, ld, n)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: gather differs from index-select", n)
		}
	}
}

// A BatchNorm with an index equals index-select followed by BatchNorm,
// with the AVX-512 one-pass kernel and without.
func TestBatchNormIndexed(t *testing.T) { forEachISA(t, testBatchNormIndexed) }

func testBatchNormIndexed(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	const p, ld = 50, 37
	in := randSlice(rng, p*ld)
	for _, n := range []int{5, 16, 27, 32, 40} {
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(rng.IntN(ld))
		}
		gamma, beta, rm, rv := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n), make([]float32, n)
		for i := range rv {
			rv[i] = 0.5 + rng.Float32()
		}
		sel := make([]float32, p*n)
		IndexSelectForward(sel, in, idx, p, ld, n)
		want := make([]float32, p*n)
		NewBatchNorm(p, n, n, n, true, 2).ForwardInfer(want, sel, gamma, beta, rm, rv)
		bn := NewIndexedBatchNorm(p, idx, ld, n, true, 2)
		got := make([]float32, p*n)
		bn.ForwardInfer(got, in, gamma, beta, rm, rv)
		if i, ok := closeTo(got, want, 1e-6, 1e-6); !ok {
			t.Errorf("n=%d: [%d] = %v, want %v", n, i, got[i], want[i])
		}
	}
}

// Pooling planes is AvgPool2Forward on images of one channel; copying
// planes into rows moves every float to its row and channel, at every
// ISA level (the register transposes take whole eights and sixteens, Go
// the edges).
func TestPlanesOps(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(6, 6))
		for _, sh := range [][4]int{{5, 1, 6, 8}, {3, 2, 4, 32}, {2, 1, 4, 70}, {2, 3, 5, 6}, {2, 2, 6, 7}} {
			c, n, h, w := sh[0], sh[1], sh[2], sh[3]
			ldIn, ldOut := n*h*w+16, n*(h/2)*(w/2)+3 // planes apart, as the condensed network keeps them
			in := randSlice(rng, c*ldIn)
			got := make([]float32, c*ldOut)
			AvgPool2Planes(got, in, c, n, h, w, ldIn, ldOut, 2)
			for j := range c { // a plane's images are AvgPool2Forward's of one channel
				want := make([]float32, n*(h/2)*(w/2))
				AvgPool2Forward(want, in[j*ldIn:][:n*h*w], n, h, w, 1, 1, 1, 1)
				if !slices.Equal(got[j*ldOut:][:len(want)], want) {
					t.Errorf("plane %d of %d images of %d×%d pooled: %v, want %v", j, n, h, w, got[j*ldOut:][:len(want)], want)
				}
			}
		}
		for _, sh := range [][2]int{{37, 20}, {64, 48}, {16, 8}, {3, 2}} {
			p, c := sh[0], sh[1]
			const extraIn, extraOut = 3, 5
			planes := randSlice(rng, c*(p+extraIn))
			rows := make([]float32, p*(c+extraOut))
			PlanesToRows(rows, planes, p, c, p+extraIn, c+extraOut, 2)
			for i := range p {
				for ch := range c {
					if rows[i*(c+extraOut)+ch] != planes[ch*(p+extraIn)+i] {
						t.Fatalf("%d pixels of %d channels: pixel %d channel %d = %v, want %v", p, c, i, ch, rows[i*(c+extraOut)+ch], planes[ch*(p+extraIn)+i])
					}
				}
			}
		}
	})
}

// A BatchNorm that takes Moments summed a range of channels at a time, as
// a dense block's layers write them, gives the bits of one that sums its
// input itself.
func TestMomentsSameBits(t *testing.T) { forEachISA(t, testMomentsSameBits) }

func testMomentsSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	const p, width = 1000, 48
	in, gamma, beta := randSlice(rng, p*width), randSlice(rng, width), randSlice(rng, width)
	m := NewMoments(p, width, width, 2)
	for _, r := range [][2]int{{0, 16}, {16, 24}, {24, 40}, {40, 48}} {
		m.Add(in, r[0], r[1])
	}
	for _, c := range []int{16, 24, 40, 48} {
		var outs [2][]float32
		for i, mom := range []*Moments{nil, m} {
			bn := NewBatchNorm(p, c, width, c, true, 2)
			bn.Moments = mom
			outs[i] = make([]float32, p*c)
			rm, rv := make([]float32, c), make([]float32, c)
			bn.ForwardTrain(outs[i], in, gamma, beta, rm, rv)
			outs[i] = append(outs[i], rm...)
			outs[i] = append(outs[i], rv...)
		}
		if !slices.Equal(outs[0], outs[1]) {
			t.Fatalf("C=%d: the BatchNorm with moments differs from the one without", c)
		}
	}
	// and it does take them: the sums of other values change its output
	other := NewMoments(p, width, width, 2)
	other.Add(randSlice(rng, p*width), 0, width)
	bn := NewBatchNorm(p, width, width, width, true, 2)
	bn.Moments = other
	out, rm, rv := make([]float32, p*width), make([]float32, width), make([]float32, width)
	bn.ForwardTrain(out, in, gamma, beta, rm, rv)
	want := make([]float32, p*width)
	NewBatchNorm(p, width, width, width, true, 2).ForwardTrain(want, in, gamma, beta, make([]float32, width), make([]float32, width))
	if slices.Equal(out, want) {
		t.Fatal("a BatchNorm given other moments gave the output of its own sums")
	}
}

// bnBackFused takes bnBackSums's sums and adds bnBackApply's a·g (b and c
// zero), bit for bit, at every level (the Go definition in Go's
// arithmetic, the assembly in fused multiply-adds).
func TestBackFused(t *testing.T) { forEachISA(t, testBackFused) }

func testBackFused(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 19))
	for _, n := range []int{5, 16, 29, 64, 77, 136} {
		rows, ldx, ldy := 9, n+3, n+5
		x, dy := randSlice(rng, rows*ldx), randSlice(rng, rows*ldy)
		scale, shift, a := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		zero := make([]float32, n)
		for _, floor := range []float32{0, float32(math.Inf(-1))} {
			dx := randSlice(rng, rows*ldx)
			want := slices.Clone(dx)
			g1, g2 := make([]float32, n), make([]float32, n)
			w1, w2 := make([]float32, n), make([]float32, n)
			bnBackFused(g1, g2, dx, x, dy, scale, shift, a, n, rows, ldx, ldy, floor)
			func() {
				if !use.bnAll { // bnBackFused ran its Go definition: so do these
					defer withISA(isaGo)()
				}
				bnBackSums(w1, w2, x, dy, scale, shift, n, rows, ldx, ldy, floor)
				bnBackApply(want, x, dy, scale, shift, a, zero, zero, n, rows, ldx, ldy, floor, false)
			}()
			for k, pr := range [][2][]float32{{g1, w1}, {g2, w2}, {dx, want}} {
				if !slices.Equal(pr[0], pr[1]) {
					t.Fatalf("n=%d floor=%v: result %d (sums of g, of g·x, dx) differs from the two kernels'", n, floor, k)
				}
			}
		}
	}
}

// A single row through LinearForward (the weights read in place) gives
// the bits of the same row in a batch (the weights packed), with sums
// longer than the GEMM's blocks of K.
func TestLinearOneRowSameBits(t *testing.T) { forEachISA(t, testLinearOneRowSameBits) }

func testLinearOneRowSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 29))
	const n, i, o = 3, 300, 37
	in, w, bias := randSlice(rng, n*i), randSlice(rng, o*i), randSlice(rng, o)
	batch := make([]float32, n*o)
	LinearForward(batch, in, w, bias, n, i, o, 2)
	for b := range n {
		one := make([]float32, o)
		LinearForward(one, in[b*i:(b+1)*i], w, bias, 1, i, o, 2)
		if !slices.Equal(one, batch[b*o:(b+1)*o]) {
			t.Fatalf("row %d alone: %v, in the batch: %v", b, one, batch[b*o:(b+1)*o])
		}
	}
}

// NormPoolPlanes is its definition, bit for bit, and within rounding a
// BatchNorm with its ReLU on rows, global average pooling and an
// index-select, at every ISA level; normSum's kernel is its Go definition,
// bit for bit, on lengths around a vector's.
func TestNormPoolPlanes(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		for _, sh := range [][3]int{{1, 64, 40}, {3, 49, 21}, {2, 4, 17}} {
			n, hw, c := sh[0], sh[1], sh[2]
			ld := n*hw + 16
			planes := randSlice(rng, c*ld)
			rows := make([]float32, n*hw*c)
			PlanesToRows(rows, planes, n*hw, c, ld, c, 1)
			gamma, beta, mean := randSlice(rng, c), randSlice(rng, c), randSlice(rng, c)
			vari := make([]float32, c)
			for j := range vari {
				vari[j] = rng.Float32() + 0.1
			}
			normed, pooled := make([]float32, len(rows)), make([]float32, n*c)
			NewBatchNorm(n*hw, c, c, c, true, 2).ForwardInfer(normed, rows, gamma, beta, mean, vari)
			GlobalAvgPoolForward(pooled, normed, n, hw, c, c)
			a := &engine.Affine{ReLU: true}
			for range c / 2 {
				j := rng.IntN(c)
				rstd := float32(1 / math.Sqrt(float64(vari[j])+1e-5))
				a.Index = append(a.Index, int32(j))
				a.Scale = append(a.Scale, gamma[j]*rstd)
				a.Shift = append(a.Shift, beta[j]-mean[j]*(gamma[j]*rstd))
			}
			m := len(a.Index)
			got := make([]float32, n*m)
			NormPoolPlanes(got, planes, a, n, hw, ld, 2)
			for i := range n {
				for j, src := range a.Index {
					sum := normSumGo(planes[int(src)*ld+i*hw:][:hw], a.Scale[j], a.Shift[j], 0)
					if def := sum * (1 / float32(hw)); math.Float32bits(got[i*m+j]) != math.Float32bits(def) {
						t.Fatalf("%d images of %d pixels, %d channels: image %d's output %d (channel %d) = %v, its definition %v", n, hw, c, i, j, src, got[i*m+j], def)
					}
					if w := pooled[i*c+int(src)]; math.Abs(float64(got[i*m+j]-w)) > 1e-6*(1+math.Abs(float64(w))) {
						t.Fatalf("%d images of %d pixels, %d channels: image %d's output %d (channel %d) = %v, BatchNorm and pooling give %v", n, hw, c, i, j, src, got[i*m+j], w)
					}
				}
			}
		}
		for _, n := range []int{1, 15, 16, 17, 49, 64, 100} {
			x := randSlice(rng, n)
			for _, floor := range []float32{0, float32(math.Inf(-1))} {
				got, want := normSum(x, 1.5, -0.25, floor), normSumGo(x, 1.5, -0.25, floor)
				if math.Float32bits(got) != math.Float32bits(want) {
					t.Errorf("normSum of %d floats (floor %v) = %v, its definition %v", n, floor, got, want)
				}
			}
		}
		mustPanic(t, "a selected plane past the input", "index", func() {
			NormPoolPlanes(make([]float32, 1), make([]float32, 2*20), &engine.Affine{Index: []int32{2}, Scale: []float32{1}, Shift: []float32{0}}, 1, 4, 20, 1)
		})
	})
}
