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
type BatchNorm struct {
	P, C        int
	LdIn, LdOut int
	ReLU        bool
	Eps         float32 // 1e-5 in PyTorch
	Momentum    float32 // 0.1 in PyTorch
	Workers     int
	mean, rstd  []float32 // (C): the last training batch's statistics, for Backward
	s1, s2      []float64 // (C): scratch sums
}

// NewBatchNorm allocates a BatchNorm with PyTorch's eps and momentum.
func NewBatchNorm(p, c, ldIn, ldOut int, relu bool, workers int) *BatchNorm {
	if ldIn < c || ldOut < c || p <= 1 {
		panic(fmt.Sprintf("batchnorm: P=%d C=%d ldIn=%d ldOut=%d", p, c, ldIn, ldOut))
	}
	return &BatchNorm{P: p, C: c, LdIn: ldIn, LdOut: ldOut, ReLU: relu, Eps: 1e-5, Momentum: 0.1, Workers: workers,
		mean: make([]float32, c), rstd: make([]float32, c), s1: make([]float64, c), s2: make([]float64, c)}
}

// ForwardTrain normalises with batch statistics and updates runMean and
// runVar in place.
func (b *BatchNorm) ForwardTrain(out, in, gamma, beta, runMean, runVar []float32) {
	// Each worker owns a range of channels and reads every row: sums are
	// taken in row order whatever the worker count.
	parallel(b.Workers, b.C, func(c0, c1 int) {
		s1, s2 := b.s1[c0:c1], b.s2[c0:c1]
		clear(s1)
		clear(s2)
		for p := range b.P {
			x := in[p*b.LdIn+c0 : p*b.LdIn+c1]
			for c, v := range x {
				s1[c] += float64(v)
				s2[c] += float64(v) * float64(v)
			}
		}
		n := float64(b.P)
		for c := c0; c < c1; c++ {
			mean := b.s1[c] / n
			v := max(b.s2[c]/n-mean*mean, 0) // biased, for normalising
			b.mean[c] = float32(mean)
			b.rstd[c] = float32(1 / math.Sqrt(v+float64(b.Eps)))
			m := float64(b.Momentum)
			runMean[c] = float32((1-m)*float64(runMean[c]) + m*mean)
			runVar[c] = float32((1-m)*float64(runVar[c]) + m*v*n/(n-1))
		}
		b.apply(out, in, gamma, beta, b.mean, b.rstd, c0, c1)
	})
}

// ForwardInfer normalises with the running statistics.
func (b *BatchNorm) ForwardInfer(out, in, gamma, beta, runMean, runVar []float32) {
	parallel(b.Workers, b.C, func(c0, c1 int) {
		for c := c0; c < c1; c++ {
			b.mean[c] = runMean[c]
			b.rstd[c] = float32(1 / math.Sqrt(float64(runVar[c])+float64(b.Eps)))
		}
		b.apply(out, in, gamma, beta, b.mean, b.rstd, c0, c1)
	})
}

// apply writes out = [relu](gamma·(in−mean)·rstd + beta) for channels [c0, c1).
func (b *BatchNorm) apply(out, in, gamma, beta, mean, rstd []float32, c0, c1 int) {
	var scale, shift [64]float32 // per-channel affine, in chunks to stay on the stack
	for k0 := c0; k0 < c1; k0 += len(scale) {
		k1 := min(c1, k0+len(scale))
		for c := k0; c < k1; c++ {
			scale[c-k0] = gamma[c] * rstd[c]
			shift[c-k0] = beta[c] - mean[c]*scale[c-k0]
		}
		sc, sh := scale[:k1-k0], shift[:k1-k0]
		for p := range b.P {
			x := in[p*b.LdIn+k0 : p*b.LdIn+k1]
			y := out[p*b.LdOut+k0 : p*b.LdOut+k1]
			for c, v := range x {
				r := v*sc[c] + sh[c]
				if b.ReLU && r < 0 {
					r = 0
				}
				y[c] = r
			}
		}
	}
}

// Backward accumulates into dIn, dGamma and dBeta, given dOut, the forward
// input in and output out (out is read only for the fused ReLU's mask).
// It uses the statistics of the last ForwardTrain.
func (b *BatchNorm) Backward(dIn, dGamma, dBeta, dOut, in, out, gamma []float32) {
	parallel(b.Workers, b.C, func(c0, c1 int) {
		// forward: xhat = (x−mean)·rstd; y = relu(gamma·xhat + beta)
		sdy, sdyx := b.s1[c0:c1], b.s2[c0:c1]
		clear(sdy)
		clear(sdyx)
		mean, rstd := b.mean[c0:c1], b.rstd[c0:c1]
		for p := range b.P {
			x := in[p*b.LdIn+c0 : p*b.LdIn+c1]
			dy := dOut[p*b.LdOut+c0 : p*b.LdOut+c1]
			y := out[p*b.LdOut+c0 : p*b.LdOut+c1]
			for c, v := range x {
				g := dy[c]
				if b.ReLU && y[c] <= 0 {
					g = 0
				}
				sdy[c] += float64(g)
				sdyx[c] += float64(g) * float64((v-mean[c])*rstd[c])
			}
		}
		// dbeta = Σ dy; dgamma = Σ dy·xhat;
		// dx = gamma·rstd·(dy − mean(dy) − xhat·mean(dy·xhat))
		var k1, k2 [64]float32
		n := float64(b.P)
		for q0 := c0; q0 < c1; q0 += len(k1) {
			q1 := min(c1, q0+len(k1))
			for c := q0; c < q1; c++ {
				dBeta[c] += float32(sdy[c-c0])
				dGamma[c] += float32(sdyx[c-c0])
				k1[c-q0] = float32(sdy[c-c0] / n)
				k2[c-q0] = float32(sdyx[c-c0] / n)
			}
			for p := range b.P {
				x := in[p*b.LdIn+q0 : p*b.LdIn+q1]
				dy := dOut[p*b.LdOut+q0 : p*b.LdOut+q1]
				y := out[p*b.LdOut+q0 : p*b.LdOut+q1]
				dx := dIn[p*b.LdIn+q0 : p*b.LdIn+q1]
				for c, v := range x {
					g := dy[c]
					if b.ReLU && y[c] <= 0 {
						g = 0
					}
					ch := q0 + c
					xhat := (v - b.mean[ch]) * b.rstd[ch]
					dx[c] += gamma[ch] * b.rstd[ch] * (g - k1[c] - xhat*k2[c])
				}
			}
		}
	})
}
