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
	bn.Moments = momentsOf(n)
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
// the gradient at the BatchNorm's output.
func (f *NormConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w []float32) {
	f.conv.Backward(dNormed, dW, dOut, in, w)
	f.bn.Backward(dIn, dGamma, dBeta, dNormed, in, gamma)
}
