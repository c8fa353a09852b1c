package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/condensenet/condensenet/engine"
)

// A BatchNorm normalises each of C channels over P = N·H·W channels-last
// rows (pixels LdIn and LdOut floats apart), optionally followed by ReLU in
// the same pass. Training uses the batch's statistics and updates running
// averages as PyTorch does (momentum 0.1, unbiased running variance);
// inference uses the running statistics.
//
// Sums are taken in float32 over fixed blocks of sumBlock rows, which
// workers share out, and the blocks' sums are added up in float64 in block
// order: precision does not degrade with the batch size, and results do not
// depend on the worker count.
type BatchNorm struct {
	P, C        int
	LdIn, LdOut int
	ReLU        bool
	Eps         float32 // 1e-5 in PyTorch
	Momentum    float32 // 0.1 in PyTorch
	Workers     int
	// Index, if set, makes output channel j normalise input channel
	// Index[j] (inference only; see engine.NormShape).
	Index []int32
	// Moments, if set, hold the input's sums (see engine.Moments).
	Moments    *Moments
	mean, rstd []float32 // (C): the last training batch's statistics, for Backward
	s1, s2     []float64 // (C): sums
	b1, b2     []float32 // (blocks, C): each block's sums
	// scale and shift are the last forward's y = x·scale + shift, which
	// Backward computes again for the ReLU's mask instead of reading y.
	scale, shift []float32
	ca, cb, cc   []float32 // (C): Backward's coefficients
	// overwrite makes Backward write dIn instead of adding to it (a
	// NormConv's, see engine.NormShape.OverwriteDIn).
	overwrite bool
}

const sumBlock = 256

// NewBatchNorm allocates a BatchNorm with PyTorch's eps and momentum.
func NewBatchNorm(p, c, ldIn, ldOut int, relu bool, workers int) *BatchNorm {
	if ldIn < c {
		panic(fmt.Sprintf("batchnorm: C=%d ldIn=%d", c, ldIn))
	}
	return newBatchNorm(p, c, ldIn, ldOut, relu, workers)
}

// NewIndexedBatchNorm allocates an inference BatchNorm whose output
// channel j normalises input channel index[j].
func NewIndexedBatchNorm(p int, index []int32, ldIn, ldOut int, relu bool, workers int) *BatchNorm {
	engine.CheckIndices("batchnorm", index, ldIn)
	b := newBatchNorm(p, len(index), ldIn, ldOut, relu, workers)
	b.Index = index
	return b
}

func newBatchNorm(p, c, ldIn, ldOut int, relu bool, workers int) *BatchNorm {
	if c <= 0 || ldOut < c || p <= 1 {
		panic(fmt.Sprintf("batchnorm: P=%d C=%d ldOut=%d", p, c, ldOut))
	}
	f := func(n int) []float32 { return make([]float32, n) }
	blocks := (p + sumBlock - 1) / sumBlock
	return &BatchNorm{P: p, C: c, LdIn: ldIn, LdOut: ldOut, ReLU: relu, Eps: 1e-5, Momentum: 0.1, Workers: workers,
		mean: f(c), rstd: f(c), s1: make([]float64, c), s2: make([]float64, c),
		b1: f(blocks * c), b2: f(blocks * c), scale: f(c), shift: f(c), ca: f(c), cb: f(c), cc: f(c)}
}

func (b *BatchNorm) floor() float32 { return reluFloor(b.ReLU) }

// reluFloor is the least value an output may take: 0 after a ReLU.
func reluFloor(relu bool) float32 {
	if relu {
		return 0
	}
	return float32(math.Inf(-1))
}

// sums runs add on every block of rows [r0, r1), each adding into its own
// zeroed (C) vectors, then totals the blocks into s1 and s2 in block order.
func (b *BatchNorm) sums(add func(f1, f2 []float32, r0, r1 int)) {
	blockSums(b.s1, b.s2, b.b1, b.b2, b.P, b.C, b.Workers, add)
}

// blockSums is sums for p rows of n channels, the blocks' sums kept in b1
// and b2 (blocks, n) and the totals in s1 and s2 (n).
func blockSums(s1, s2 []float64, b1, b2 []float32, p, n, workers int, add func(f1, f2 []float32, r0, r1 int)) {
	blocks := (p + sumBlock - 1) / sumBlock
	parallel(workers, blocks, 2*p*n, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			f1, f2 := b1[k*n:(k+1)*n], b2[k*n:(k+1)*n]
			clear(f1)
			clear(f2)
			add(f1, f2, k*sumBlock, min(p, (k+1)*sumBlock))
		}
	})
	clear(s1[:n])
	clear(s2[:n])
	for k := range blocks {
		for c, v := range b1[k*n : (k+1)*n] {
			s1[c] += float64(v)
		}
		for c, v := range b2[k*n : (k+1)*n] {
			s2[c] += float64(v)
		}
	}
}

// Moments are the sums of a channels-last buffer's channels (see
// engine.Moments), summed as a BatchNorm sums its input, so a BatchNorm
// that takes them gives the same bits.
//
// They also hold what those BatchNorms' backward passes leave to Settle:
// the part of each one's input gradient that is linear in the input,
// b·x + c per channel, which adds up over the BatchNorms reading a channel
// (every later layer of the block) into one slope and offset. Each
// BatchNorm then makes one pass over its input (its sums and a·g)
// instead of two, and Settle one per channel.
type Moments struct {
	P, C, Ld      int
	Workers       int
	s1, s2        []float64 // (C)
	b1, b2        []float32 // (blocks, C): a range's blocks' sums
	slope, offset []float64 // (C): the gradient's b and c, summed
	owed          []bool    // (C): a BatchNorm left a slope and offset
	b, c, zero    []float32 // (C): Settle's coefficients
}

// NewMoments returns zero sums of p rows of c channels, ld apart.
func NewMoments(p, c, ld, workers int) *Moments {
	if p <= 1 || c <= 0 || ld < c {
		panic(fmt.Sprintf("batchnorm: moments of P=%d C=%d ld=%d", p, c, ld))
	}
	blocks := (p + sumBlock - 1) / sumBlock
	f := func(n int) []float32 { return make([]float32, n) }
	return &Moments{P: p, C: c, Ld: ld, Workers: workers, s1: make([]float64, c), s2: make([]float64, c),
		b1: f(blocks * c), b2: f(blocks * c), slope: make([]float64, c), offset: make([]float64, c),
		owed: make([]bool, c), b: f(c), c: f(c), zero: f(c)}
}

// Settle adds to dIn, for channels [c0, c1), the slope·in + offset that
// the BatchNorms' backward passes left; their gradients are then whole.
func (m *Moments) Settle(dIn, in []float32, c0, c1 int) {
	m.check(c0, c1)
	if !slices.Contains(m.owed[c0:c1], true) {
		return
	}
	for j := c0; j < c1; j++ {
		m.b[j], m.c[j] = float32(m.slope[j]), float32(m.offset[j])
		m.slope[j], m.offset[j], m.owed[j] = 0, 0, false
	}
	n := c1 - c0
	parallel(m.Workers, m.P, 2*m.P*n, func(r0, r1 int) {
		// bnBackApply with a = 0 adds b·x + c (g, here x itself, counts
		// for nothing).
		z := m.zero[c0:c1]
		x := in[r0*m.Ld+c0:]
		bnBackApply(dIn[r0*m.Ld+c0:], x, x, z, z, z, m.b[c0:c1], m.c[c0:c1], n, r1-r0, m.Ld, m.Ld, float32(math.Inf(-1)), false)
	})
}

func (m *Moments) check(c0, c1 int) {
	if c0 < 0 || c1 > m.C || c0 >= c1 {
		panic(fmt.Sprintf("batchnorm: moments of channels [%d, %d) of %d", c0, c1, m.C))
	}
}

// Add takes the sums of channels [c0, c1) of in.
func (m *Moments) Add(in []float32, c0, c1 int) {
	m.check(c0, c1)
	for j := c0; j < c1; j++ { // a new forward pass owes nothing yet
		m.slope[j], m.offset[j], m.owed[j] = 0, 0, false
	}
	n := c1 - c0
	blockSums(m.s1[c0:c1], m.s2[c0:c1], m.b1, m.b2, m.P, n, m.Workers, func(f1, f2 []float32, r0, r1 int) {
		bnStats(f1, f2, in[r0*m.Ld+c0:], n, r1-r0, m.Ld)
	})
}

// rows runs f over ranges of rows split between the workers.
func (b *BatchNorm) rows(f func(r0, r1 int)) { parallel(b.Workers, b.P, 2*b.P*b.C, f) }

// ForwardTrain normalises with batch statistics and updates runMean and
// runVar in place.
func (b *BatchNorm) ForwardTrain(out, in, gamma, beta, runMean, runVar []float32) {
	b.batchStatistics(in, runMean, runVar)
	b.apply(out, in, gamma, beta)
}

// ForwardInfer normalises with the running statistics.
func (b *BatchNorm) ForwardInfer(out, in, gamma, beta, runMean, runVar []float32) {
	b.runningStatistics(runMean, runVar)
	b.apply(out, in, gamma, beta)
}

// batchStatistics sets mean and rstd to the batch's and updates runMean
// and runVar.
func (b *BatchNorm) batchStatistics(in, runMean, runVar []float32) {
	if b.Index != nil {
		panic("batchnorm: an index is for inference only")
	}
	if m := b.Moments; m != nil {
		copy(b.s1, m.s1[:b.C])
		copy(b.s2, m.s2[:b.C])
	} else {
		b.sums(func(f1, f2 []float32, r0, r1 int) {
			bnStats(f1, f2, in[r0*b.LdIn:], b.C, r1-r0, b.LdIn)
		})
	}
	cnt := float64(b.P)
	for c := range b.C {
		mean := b.s1[c] / cnt
		v := max(b.s2[c]/cnt-mean*mean, 0) // biased, for normalising
		b.mean[c] = float32(mean)
		b.rstd[c] = float32(1 / math.Sqrt(v+float64(b.Eps)))
		m := float64(b.Momentum)
		runMean[c] = float32((1-m)*float64(runMean[c]) + m*mean)
		runVar[c] = float32((1-m)*float64(runVar[c]) + m*v*cnt/(cnt-1))
	}
}

// runningStatistics sets mean and rstd to the running ones.
func (b *BatchNorm) runningStatistics(runMean, runVar []float32) {
	for c := range b.C {
		b.mean[c] = runMean[c]
		b.rstd[c] = float32(1 / math.Sqrt(float64(runVar[c])+float64(b.Eps)))
	}
}

// coefficients sets scale and shift, the output being
// [relu](in·scale + shift).
func (b *BatchNorm) coefficients(gamma, beta []float32) {
	for c := range b.C {
		b.scale[c] = gamma[c] * b.rstd[c]
		b.shift[c] = beta[c] - b.mean[c]*b.scale[c]
	}
}

// apply writes out = [relu](gamma·(in−mean)·rstd + beta).
func (b *BatchNorm) apply(out, in, gamma, beta []float32) {
	b.coefficients(gamma, beta)
	b.rows(func(r0, r1 int) {
		normRows(out[r0*b.LdOut:], in[r0*b.LdIn:], b.Index, b.scale, b.shift, r1-r0, b.C, b.LdIn, b.LdOut, b.floor())
	})
}

// normRows writes out = max(in[:, idx]·scale + shift, floor) for p rows of
// c channels (idx nil: channel j reads channel j). With an index and
// AVX-512, whole sixteens of channels go in one pass; then a few rows of
// the rest are gathered and normalised in place while still in L1.
func normRows(out, in []float32, idx []int32, scale, shift []float32, p, c, ldIn, ldOut int, floor float32) {
	if idx == nil {
		bnApply(out, in, scale, shift, c, p, ldIn, ldOut, floor)
		return
	}
	done := gatherNorm(out, in, idx, scale, shift, p, ldIn, ldOut, floor)
	if done == c {
		return
	}
	idx, scale, shift = idx[done:], scale[done:], shift[done:]
	for q0 := 0; q0 < p; q0 += gatherRowsBlock {
		q := min(p-q0, gatherRowsBlock)
		y := out[q0*ldOut+done:]
		gatherRows(y, in[q0*ldIn:], idx, q, ldIn, ldOut)
		bnApply(y, y, scale, shift, c-done, q, ldOut, ldOut, floor)
	}
}

// gatherRowsBlock rows of gathered channels fit in L1 at CondenseNet's widths.
const gatherRowsBlock = 16

// Backward accumulates into dIn, dGamma and dBeta, given dOut and the
// forward input in. It uses the statistics and coefficients of the last
// ForwardTrain, with which it finds the fused ReLU's mask again, so the
// forward's output (engine.BatchNorm's out) is not read.
func (b *BatchNorm) Backward(dIn, dGamma, dBeta, dOut, in, gamma []float32) {
	b.backward(dIn, dGamma, dBeta, dOut, in, gamma, nil)
}

// defers reports whether Backward makes one pass and leaves the gradient's
// part linear in the input to its Moments: with Moments, where AVX2
// machines do not keep their two assembly passes instead.
func (b *BatchNorm) defers() bool {
	return b.Moments != nil && (use.bnAll || !use.bnEights)
}

// backward is Backward. If pass is set and b defers, dOut is not read:
// pass makes the one pass over each block of rows [r0, r1) itself, adding
// to f1 and f2 and to dIn what bnBackFused would on the gradient that it
// computes there (see NormConv.Backward).
func (b *BatchNorm) backward(dIn, dGamma, dBeta, dOut, in, gamma []float32, pass func(f1, f2 []float32, r0, r1 int)) {
	if b.Index != nil {
		panic("batchnorm: an index is for inference only")
	}
	floor := b.floor()
	// forward: xhat = (x−mean)·rstd; y = relu(gamma·xhat + beta); g = dy·[y > 0]
	// With Moments, one pass takes the sums and adds a·g (a needs no
	// sums), leaving b·x + c to them.
	// dx = gamma·rstd·(g − Σg/P − xhat·Σg·xhat/P), which is a·g + b·x + c,
	// a = gamma·rstd needing no sums.
	for c := range b.C {
		b.ca[c] = float32(float64(gamma[c]) * float64(b.rstd[c]))
	}
	var m *Moments
	if b.defers() {
		m = b.Moments
	}
	if m != nil {
		b.sums(func(f1, f2 []float32, r0, r1 int) {
			if pass != nil {
				pass(f1, f2, r0, r1)
				return
			}
			bnBackFused(f1, f2, dIn[r0*b.LdIn:], in[r0*b.LdIn:], dOut[r0*b.LdOut:], b.scale, b.shift, b.ca, b.C, r1-r0, b.LdIn, b.LdOut, floor)
		})
	} else {
		b.sums(func(f1, f2 []float32, r0, r1 int) {
			bnBackSums(f1, f2, in[r0*b.LdIn:], dOut[r0*b.LdOut:], b.scale, b.shift, b.C, r1-r0, b.LdIn, b.LdOut, floor)
		})
	}
	// dbeta = Σg; dgamma = Σg·xhat = rstd·(Σg·x − mean·Σg)
	cnt := float64(b.P)
	for c := range b.C {
		mean, rstd := float64(b.mean[c]), float64(b.rstd[c])
		sg := b.s1[c]
		sgxhat := rstd * (b.s2[c] - mean*sg)
		dBeta[c] += float32(sg)
		dGamma[c] += float32(sgxhat)
		gr := float64(gamma[c]) * rstd
		k1, k2 := sg/cnt, sgxhat/cnt
		cb, cc := -gr*rstd*k2, gr*(mean*rstd*k2-k1)
		if m != nil {
			m.slope[c] += cb
			m.offset[c] += cc
			m.owed[c] = true
		}
		b.cb[c], b.cc[c] = float32(cb), float32(cc)
	}
	if m != nil {
		return
	}
	b.rows(func(r0, r1 int) {
		bnBackApply(dIn[r0*b.LdIn:], in[r0*b.LdIn:], dOut[r0*b.LdOut:], b.scale, b.shift, b.ca, b.cb, b.cc, b.C, r1-r0, b.LdIn, b.LdOut, floor, b.overwrite)
	})
}
