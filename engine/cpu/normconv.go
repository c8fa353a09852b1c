package cpu

import "github.com/condensenet/condensenet/engine"

// A NormConv is a training BatchNorm with ReLU that its convolution
// applies as it reads its input (engine.ConvShape.Input): a chunk of rows
// at a time for a 1×1 convolution, as the planes are filled for a direct
// 3×3, once in the forward pass and again for the weight gradient. The
// normalised input is never stored, which saves writing and reading it
// and the memory of every layer's copy; the results are those of the
// BatchNorm and the convolution apart, bit for bit.
type NormConv struct {
	bn   *BatchNorm
	conv *Conv
}

// NewNormConv returns the NormConv of n and s (see engine.ComposeNormConv).
func NewNormConv(n engine.NormShape, s engine.ConvShape, workers int, scratch *Scratch) *NormConv {
	engine.CheckNormConv(n, s)
	bn := NewBatchNorm(n.P, n.C, n.LdIn, n.C, true, workers)
	bn.Moments, bn.overwrite = momentsOf(n), n.OverwriteDIn
	s.LdIn, s.Input = n.LdIn, &engine.Affine{Scale: bn.scale, Shift: bn.shift, ReLU: true}
	return &NormConv{bn: bn, conv: NewConv(s, workers, scratch)}
}

// Forward computes out = conv(relu(bn(in)), w).
func (f *NormConv) Forward(out, in, gamma, beta, runMean, runVar, w []float32, train bool) {
	if train {
		f.bn.batchStatistics(in, runMean, runVar)
	} else {
		f.bn.runningStatistics(runMean, runVar)
	}
	f.bn.coefficients(gamma, beta)
	f.conv.Forward(out, in, w)
}

// Backward accumulates into dIn, dGamma, dBeta and dW; dNormed (P·C) gets
// the gradient at the BatchNorm's output, except where the BatchNorm
// defers to Moments after a 1×1 convolution: there each block of rows of
// that gradient is computed as the BatchNorm's pass reads it, into a
// buffer that stays in cache, and is never stored.
func (f *NormConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w []float32) {
	s := f.conv.ConvShape
	if !f.bn.defers() || !pointwise(s) || s.G != 1 || sumBlock*s.C > len(scratch{}.b) {
		f.conv.Backward(dNormed, dW, dOut, in, w)
		f.bn.Backward(dIn, dGamma, dBeta, dNormed, in, gamma)
		return
	}
	f.conv.pointwiseWeightGradient(dW, dOut, in)
	f.bn.backward(dIn, dGamma, dBeta, nil, in, gamma, func(dy []float32, r0, r1 int) {
		// forward: out = normed · wᵀ, so dNormed = dOut · w, these rows of it
		Gemm(false, false, r1-r0, s.C, s.K, dOut[r0*s.LdOut:], s.LdOut, w, s.C, false, dy, s.C, 1)
	})
}
