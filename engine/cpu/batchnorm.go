package cpu

import (
	"fmt"
	"math"
)

// A BatchNorm normalises each of C channels over P = N·H·W channels-last
// rows (pixels LdIn and LdOut floats apart), optionally followed by ReLU in
// the same pass. Training uses the batch's statistics and updates running
// averages as PyTorch does (momentum 0.1, unbiased running variance);
// inference uses the running statistics.
//
// Sums are taken in float32 over blocks of sumBlock rows and added up in
// float64, so precision does not degrade with the batch size. Workers own
// ranges of channels and read every row in order: results do not depend on
// the worker count.
type BatchNorm struct {
	P, C        int
	LdIn, LdOut int
	ReLU        bool
	Eps         float32 // 1e-5 in PyTorch
	Momentum    float32 // 0.1 in PyTorch
	Workers     int
	mean, rstd  []float32 // (C): the last training batch's statistics, for Backward
	s1, s2      []float64 // (C): sums
	f1, f2      []float32 // (C): a block's sums
	ca, cb, cc  []float32 // (C): per-channel coefficients of the current pass
}

const sumBlock = 256

// NewBatchNorm allocates a BatchNorm with PyTorch's eps and momentum.
func NewBatchNorm(p, c, ldIn, ldOut int, relu bool, workers int) *BatchNorm {
	if ldIn < c || ldOut < c || p <= 1 {
		panic(fmt.Sprintf("batchnorm: P=%d C=%d ldIn=%d ldOut=%d", p, c, ldIn, ldOut))
	}
	f := func() []float32 { return make([]float32, c) }
	return &BatchNorm{P: p, C: c, LdIn: ldIn, LdOut: ldOut, ReLU: relu, Eps: 1e-5, Momentum: 0.1, Workers: workers,
		mean: f(), rstd: f(), s1: make([]float64, c), s2: make([]float64, c), f1: f(), f2: f(), ca: f(), cb: f(), cc: f()}
}

func (b *BatchNorm) floor() float32 {
	if b.ReLU {
		return 0
	}
	return float32(math.Inf(-1))
}

// channels runs f over ranges of channels, split in groups of 8 so that the
// assembly handles whole ranges.
func (b *BatchNorm) channels(f func(c0, c1 int)) {
	workers := max(1, min(b.Workers, (b.C+7)/8))
	parallel(workers, workers, func(w0, w1 int) {
		for w := w0; w < w1; w++ {
			c0, c1 := split(b.C, 8, w, workers)
			if c0 < c1 {
				f(c0, c1)
			}
		}
	})
}

// sums runs add over blocks of rows, each adding into f1 and f2 from zero,
// and accumulates the blocks' totals into s1 and s2 in float64.
func (b *BatchNorm) sums(c0, c1 int, add func(f1, f2 []float32, r0, r1 int)) {
	s1, s2, f1, f2 := b.s1[c0:c1], b.s2[c0:c1], b.f1[c0:c1], b.f2[c0:c1]
	clear(s1)
	clear(s2)
	for r0 := 0; r0 < b.P; r0 += sumBlock {
		clear(f1)
		clear(f2)
		add(f1, f2, r0, min(b.P, r0+sumBlock))
		for c := range f1 {
			s1[c] += float64(f1[c])
			s2[c] += float64(f2[c])
		}
	}
}

// ForwardTrain normalises with batch statistics and updates runMean and
// runVar in place.
func (b *BatchNorm) ForwardTrain(out, in, gamma, beta, runMean, runVar []float32) {
	b.channels(func(c0, c1 int) {
		n := c1 - c0
		b.sums(c0, c1, func(f1, f2 []float32, r0, r1 int) {
			bnStats(f1, f2, in[r0*b.LdIn+c0:], n, r1-r0, b.LdIn)
		})
		cnt := float64(b.P)
		for c := c0; c < c1; c++ {
			mean := b.s1[c] / cnt
			v := max(b.s2[c]/cnt-mean*mean, 0) // biased, for normalising
			b.mean[c] = float32(mean)
			b.rstd[c] = float32(1 / math.Sqrt(v+float64(b.Eps)))
			m := float64(b.Momentum)
			runMean[c] = float32((1-m)*float64(runMean[c]) + m*mean)
			runVar[c] = float32((1-m)*float64(runVar[c]) + m*v*cnt/(cnt-1))
		}
		b.apply(out, in, gamma, beta, c0, c1)
	})
}

// ForwardInfer normalises with the running statistics.
func (b *BatchNorm) ForwardInfer(out, in, gamma, beta, runMean, runVar []float32) {
	b.channels(func(c0, c1 int) {
		for c := c0; c < c1; c++ {
			b.mean[c] = runMean[c]
			b.rstd[c] = float32(1 / math.Sqrt(float64(runVar[c])+float64(b.Eps)))
		}
		b.apply(out, in, gamma, beta, c0, c1)
	})
}

// apply writes out = [relu](gamma·(in−mean)·rstd + beta) for channels [c0, c1).
func (b *BatchNorm) apply(out, in, gamma, beta []float32, c0, c1 int) {
	for c := c0; c < c1; c++ {
		b.ca[c] = gamma[c] * b.rstd[c]
		b.cb[c] = beta[c] - b.mean[c]*b.ca[c]
	}
	bnApply(out[c0:], in[c0:], b.ca[c0:c1], b.cb[c0:c1], c1-c0, b.P, b.LdIn, b.LdOut, b.floor())
}

// Backward accumulates into dIn, dGamma and dBeta, given dOut, the forward
// input in and output out (out is read only for the fused ReLU's mask).
// It uses the statistics of the last ForwardTrain.
func (b *BatchNorm) Backward(dIn, dGamma, dBeta, dOut, in, out, gamma []float32) {
	floor := b.floor()
	b.channels(func(c0, c1 int) {
		n := c1 - c0
		// forward: xhat = (x−mean)·rstd; y = relu(gamma·xhat + beta); g = dy·[y > 0]
		b.sums(c0, c1, func(f1, f2 []float32, r0, r1 int) {
			bnBackSums(f1, f2, in[r0*b.LdIn+c0:], dOut[r0*b.LdOut+c0:], out[r0*b.LdOut+c0:], n, r1-r0, b.LdIn, b.LdOut, floor)
		})
		// dbeta = Σg; dgamma = Σg·xhat = rstd·(Σg·x − mean·Σg);
		// dx = gamma·rstd·(g − Σg/P − xhat·Σg·xhat/P), which is a·g + b·x + c.
		cnt := float64(b.P)
		for c := c0; c < c1; c++ {
			mean, rstd := float64(b.mean[c]), float64(b.rstd[c])
			sg := b.s1[c]
			sgxhat := rstd * (b.s2[c] - mean*sg)
			dBeta[c] += float32(sg)
			dGamma[c] += float32(sgxhat)
			gr := float64(gamma[c]) * rstd
			k1, k2 := sg/cnt, sgxhat/cnt
			b.ca[c] = float32(gr)
			b.cb[c] = float32(-gr * rstd * k2)
			b.cc[c] = float32(gr * (mean*rstd*k2 - k1))
		}
		bnBackApply(dIn[c0:], in[c0:], dOut[c0:], out[c0:], b.ca[c0:c1], b.cb[c0:c1], b.cc[c0:c1], n, b.P, b.LdIn, b.LdOut, floor)
	})
}
