// Package engine defines the tensors and the backend interface that the
// model is written against. Backends (engine/cpu, engine/cuda) own the
// storage and the kernels; model code never names one.
//
// Layout and legend. Activations are channels-last: an (N, H, W, C) tensor
// is a matrix of P = N·H·W pixel rows, consecutive pixels Ld floats apart
// (Ld ≥ C), so a layer can read a prefix of the channels of a wider buffer
// and write its output into a slice of one: a dense block's concatenation
// costs nothing. N batch, C input channels, K output channels, H and W
// height and width, R and S kernel height and width, G groups.
//
// Conventions, as in llm.c: arguments go outputs first, then inputs; every
// Backward accumulates (+=) into its input and parameter gradients, and
// zeroing gradients is the caller's explicit step (a convolution may be
// told to overwrite its input gradient instead: ConvShape.OverwriteDIn).
package engine

import (
	"errors"
	"fmt"
)

// ErrNoDevice means a requested device backend has no usable device.
var ErrNoDevice = errors.New("engine: no device")

// A Tensor is a flat float32 array in a backend's memory.
type Tensor struct {
	Len int
	// Host is the storage of host backends (the CPU); nil on a device.
	Host []float32
	// Device is a device backend's handle; nil on the CPU.
	Device any
}

// A View is a tensor from an offset on; kernels read and write views.
type View struct {
	T   *Tensor
	Off int
}

// At returns the view starting off elements into t.
func (t *Tensor) At(off int) View {
	if off < 0 || off > t.Len {
		panic(fmt.Sprintf("engine: view at %d of a tensor of %d", off, t.Len))
	}
	return View{t, off}
}

// V returns the view of the whole tensor.
func (t *Tensor) V() View { return View{t, 0} }

// Add returns the view off elements further on.
func (v View) Add(off int) View { return v.T.At(v.Off + off) }

// ConvShape describes a 2-D convolution: input (N, H, W, C) with pixels
// LdIn apart, output (N, OH, OW, K) with pixels LdOut apart, weights
// (K, C/G, R, S) as in PyTorch.
type ConvShape struct {
	N, H, W, C  int
	K, R, S     int
	Stride, Pad int
	G           int
	LdIn, LdOut int
	// Fixed promises that the weights passed to Forward never change (an
	// inference network): a backend may rearrange them once, on the first
	// call, instead of on every call.
	Fixed bool
	// OverwriteDIn makes Backward write dIn instead of adding to it: the
	// caller's buffer holds nothing to keep, so it need be neither cleared
	// first nor read. It requires LdIn == C.
	OverwriteDIn bool
	// Input, if set, is applied to the input as the convolution reads it:
	// input channel j is then Input's output j of rows LdIn floats apart.
	// It is for inference, except in a backend's own NormConv: there
	// Backward's dIn is the gradient at Input's output, rows of C floats.
	Input *Affine
	// Int8, if set, makes a Fixed convolution run in 8-bit integers (see
	// Requant); backends without integer kernels refuse it.
	Int8 *Requant
	// InPlanes and OutPlanes make a Fixed convolution's input, or output,
	// planes instead of rows: channel c of pixel p at c·Ld + p (Ld being
	// LdIn or LdOut, at least N·H·W), which is how one convolution hands
	// its output to the next without transposing it twice. An input
	// transform's Index then selects planes.
	// Only backends that are Planar take them.
	InPlanes, OutPlanes bool
}

// A Planar backend takes ConvShape.InPlanes and OutPlanes, and has the
// two operations a network kept in planes needs besides.
type Planar interface {
	Planar() bool
	// AvgPool2Planes pools c planes, ldIn floats apart, each of n images
	// of h×w floats one after another, into planes of n images of
	// h/2×w/2, ldOut apart.
	AvgPool2Planes(out, in View, c, n, h, w, ldIn, ldOut int)
	// NormPoolPlanes writes out (n, len(a.Index)): output j of image i
	// is the mean over the image's hw pixels of plane a.Index[j] (planes
	// ld floats apart, each holding the n images one after another) under
	// a, a BatchNorm folded with its ReLU: a BatchNorm, global average
	// pooling and a selection of channels, in one pass over the selected
	// planes.
	NormPoolPlanes(out, in View, a *Affine, n, hw, ld int)
}

// A Requant describes an int8 convolution, as quantised inference runs
// one: each input value (after the Input transform, computed as
// float32(x·Scale)+Shift) is rounded to an integer, ties to even, and
// clamped to [0, 255]; the weights passed must be integers in [-127, 127];
// products are summed exactly in int32, and output k is
//
//	clamp(round(float32(float32(sum)·Scale[k]) + Shift[k]), Lo, Hi) · Step
//
// with the same rounding: the next int8 layer's input (Step 1), or a
// dequantised value.
type Requant struct {
	Scale, Shift []float32
	Lo, Hi, Step float32
}

// An Int8Pairer backend runs two int8 convolutions in a row as one
// (engine.Int8Pair), handing the first's output to the second as bytes in
// the second's own input layout instead of as floats it would quantise
// again: the first's outputs must be the second's integer inputs (Requant
// Lo ≥ 0, Hi ≤ 255, Step 1) and the second must read them at most
// permuted (an Input of Scale 1 and Shift 0, whose Index, if any, is a
// permutation), as in a condensed network's dense layer, where the first
// is the 1×1 convolution and the second the 3×3 after the shuffle. The
// pair's output is the second's output of the first's of in, bit for bit.
type Int8Pairer interface {
	NewInt8Pair(first, second ConvShape) Int8Pair
}

// An Int8Pair is two convolutions run as one; w1 and w2 are their weights.
type Int8Pair interface {
	Forward(out, in, w1, w2 View)
}

// An Affine is a per-channel transform of channels-last rows,
// y[j] = max(x[Index[j]]·Scale[j] + Shift[j], floor), floor 0 with ReLU
// and −∞ without; Index nil reads x[j]. It is an inference BatchNorm (with
// its ReLU, and any channel shuffle or selection before it) folded into
// the convolution after it, which saves writing and reading its output.
type Affine struct {
	Index        []int32
	Scale, Shift []float32
	ReLU         bool
}

// Source returns the input channel that output channel j reads.
func (a *Affine) Source(j int) int {
	if a.Index == nil {
		return j
	}
	return int(a.Index[j])
}

func (s ConvShape) OH() int { return (s.H+2*s.Pad-s.R)/s.Stride + 1 }
func (s ConvShape) OW() int { return (s.W+2*s.Pad-s.S)/s.Stride + 1 }

// Weights is the number of weights: K·(C/G)·R·S.
func (s ConvShape) Weights() int { return s.K * s.C / s.G * s.R * s.S }

// FLOPs returns the forward pass's floating-point operations (2 per multiply-add).
func (s ConvShape) FLOPs() int64 {
	return 2 * int64(s.N*s.OH()*s.OW()) * int64(s.K) * int64(s.C/s.G*s.R*s.S)
}

// NormShape describes a BatchNorm over P rows of C channels.
type NormShape struct {
	P, C        int
	LdIn, LdOut int
	ReLU        bool // fused ReLU after the affine step
	// Index, if set, makes output channel j normalise input channel
	// Index[j]: an index-select or channel shuffle fused into the
	// BatchNorm (inference only).
	Index []int32
	// Moments, if set, are the sums of the input's channels, which a
	// training BatchNorm then takes instead of summing its input again
	// (see MomentKeeper).
	Moments Moments
	// OverwriteDIn makes a NormConv's Backward write dIn (P·C floats,
	// LdIn = C) instead of adding to it, so that its caller need not clear
	// it first (not with Moments; a BatchNorm of its own refuses it).
	OverwriteDIn bool
}

// A MomentKeeper is a backend that takes NormShape.Moments.
type MomentKeeper interface {
	// NewMoments returns zero sums of p rows of c channels, ld floats
	// apart, or nil from a backend that wraps one that takes none.
	NewMoments(p, c, ld int) Moments
}

// Moments are the per-channel batch sums of a channels-last buffer, taken
// once as each range of its channels is written. Every layer of a dense
// block normalises a prefix of the block's buffer with the batch's
// statistics, which are the same for a channel whichever layer reads it:
// summing each channel once instead of once per layer saves a pass over
// the layer's whole input.
//
// A BatchNorm taking them may also leave part of its input gradient to
// them in Backward (on the CPU, the part linear in the input, which adds
// up over the layers reading a channel): Settle adds it, and must run
// before the gradient of those channels is read.
type Moments interface {
	// Add takes the sums of channels [c0, c1) of in, as they are now.
	Add(in View, c0, c1 int)
	// Settle adds to dIn, the gradient at in, what the BatchNorms' Backward
	// left for channels [c0, c1).
	Settle(dIn, in View, c0, c1 int)
}

// A Conv is a convolution with its scratch space.
type Conv interface {
	Forward(out, in, w View)
	// Backward accumulates into dIn and dW.
	Backward(dIn, dW, dOut, in, w View)
}

// A BatchNorm normalises channels; training keeps the batch statistics for
// Backward and updates the running ones (PyTorch's momentum 0.1, eps 1e-5).
type BatchNorm interface {
	ForwardTrain(out, in, gamma, beta, runMean, runVar View)
	ForwardInfer(out, in, gamma, beta, runMean, runVar View)
	// Backward accumulates into dIn, dGamma and dBeta; out is the forward
	// output, for the fused ReLU's mask (a backend may compute the mask
	// again from in instead).
	Backward(dIn, dGamma, dBeta, dOut, in, out, gamma View)
}

// A NormConv is a training network's BatchNorm with ReLU and the one
// convolution that reads its output (a dense layer's first BatchNorm and
// learned group convolution, or its second and grouped 3×3). A backend
// may apply the BatchNorm as the convolution reads its input and never
// store its output (ComposeNormConv stores it).
type NormConv interface {
	// Forward computes out = conv(relu(bn(in)), w), with the batch's
	// statistics in training (updating runMean and runVar) and the running
	// ones otherwise.
	Forward(out, in, gamma, beta, runMean, runVar, w View, train bool)
	// Backward accumulates into dIn (or with OverwriteDIn writes it),
	// dGamma, dBeta and dW as the two layers' Backwards would, after a
	// training Forward. dNormed is scratch of P·C floats, for the gradient
	// at the BatchNorm's output.
	Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w View)
}

// ComposeNormConv returns the NormConv of be's BatchNorm n (its LdOut must
// be C) and convolution c (reading rows of n.C floats, with OverwriteDIn),
// which keeps the BatchNorm's output in a tensor of its own.
func ComposeNormConv(be Backend, n NormShape, c ConvShape) NormConv {
	CheckNormConv(n, c)
	f := &composedNormConv{be: be, conv: be.NewConv(c), normed: be.Alloc(n.P * n.C)}
	if n.OverwriteDIn { // Backward clears dIn for the BatchNorm to add to
		f.clearDIn, n.OverwriteDIn = n.P*n.C, false
	}
	f.bn = be.NewBatchNorm(n)
	return f
}

// CheckNormConv panics unless n and c make a NormConv.
func CheckNormConv(n NormShape, c ConvShape) {
	if n.Index != nil || !n.ReLU || n.LdOut != n.C || c.C != n.C || c.LdIn != c.C || !c.OverwriteDIn || c.N*c.H*c.W != n.P || c.Input != nil ||
		n.OverwriteDIn && (n.Moments != nil || n.LdIn != n.C) {
		panic(fmt.Sprintf("engine: NormConv of %+v and %+v", n, c))
	}
}

type composedNormConv struct {
	be       Backend
	bn       BatchNorm
	conv     Conv
	normed   *Tensor
	clearDIn int // floats of dIn Backward clears first (OverwriteDIn), or 0
}

func (f *composedNormConv) Forward(out, in, gamma, beta, runMean, runVar, w View, train bool) {
	if train {
		f.bn.ForwardTrain(f.normed.V(), in, gamma, beta, runMean, runVar)
	} else {
		f.bn.ForwardInfer(f.normed.V(), in, gamma, beta, runMean, runVar)
	}
	f.conv.Forward(out, f.normed.V(), w)
}

func (f *composedNormConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w View) {
	f.conv.Backward(dNormed, dW, dOut, f.normed.V(), w)
	if f.clearDIn > 0 {
		f.be.Zero(dIn, f.clearDIn)
	}
	f.bn.Backward(dIn, dGamma, dBeta, dNormed, in, f.normed.V(), gamma)
}

// Backend is what the model needs from a compute device. Shapes come as
// plain integers; p is a row count, c a channel count, ld strides.
type Backend interface {
	Name() string
	// Alloc returns a zeroed tensor of n elements.
	Alloc(n int) *Tensor
	Upload(dst View, src []float32)
	Download(dst []float32, src View)
	// Zero clears n elements.
	Zero(v View, n int)
	// Sync waits for queued work and reports any device error.
	Sync() error

	NewConv(s ConvShape) Conv
	NewBatchNorm(s NormShape) BatchNorm
	// NewNormConv is as ComposeNormConv.
	NewNormConv(n NormShape, c ConvShape) NormConv

	ReLUForward(out, in View, p, c, ldIn, ldOut int)
	ReLUBackward(dIn, dOut, out View, p, c, ldIn, ldOut int)
	AvgPool2Forward(out, in View, n, h, w, c, ldIn, ldOut int)
	AvgPool2Backward(dIn, dOut View, n, h, w, c, ldIn, ldOut int)
	GlobalAvgPoolForward(out, in View, n, hw, c, ldIn int)
	GlobalAvgPoolBackward(dIn, dOut View, n, hw, c, ldIn int)
	LinearForward(out, in, w, bias View, n, i, o int)
	LinearBackward(dIn, dW, dBias, dOut, in, w View, n, i, o int)
	// SoftmaxCrossEntropyForward writes the batch's mean loss into loss[0]
	// and leaves the softmax in probs; labels are on the host. The loss
	// stays on the device until someone downloads it.
	SoftmaxCrossEntropyForward(loss, probs, logits View, labels []int32, n, k int)
	SoftmaxCrossEntropyBackward(dLogits, probs View, labels []int32, n, k int)
	// Dropout draws a fresh mask (p·n zeros, the rest 1/(1−p)) from seed.
	DropoutMask(mask View, n int, p float32, seed uint64)
	DropoutForward(out, in, mask View, p, c, ldIn, ldOut int)
	DropoutBackward(dIn, dOut, mask View, p, c, ldIn, ldOut int)
	MaskForward(wm, w, mask View, n int)
	MaskBackward(dW, dWm, mask View, n int)
	IndexSelectForward(out, in View, idx []int32, p, ldIn, ldOut int)
	IndexSelectBackward(dIn, dOut View, idx []int32, p, ldIn, ldOut int)
	ShuffleForward(out, in View, p, c, g, ldIn, ldOut int)
	ShuffleBackward(dIn, dOut View, p, c, g, ldIn, ldOut int)
	SGDNesterov(w, g, v View, n int, lr, momentum, wd float32)
}

// A Splitter is a backend whose cores do more apart than together on
// independent work: Split returns one backend per core, each running its
// kernels on that core alone, to be used side by side. A batch of
// inference then runs as one small batch per core, whose activations stay
// in that core's cache and whose layers never wait for another core (the
// CPU). It returns nil when there is a single core.
type Splitter interface {
	Split() []Backend
}

// CheckIndices panics unless every index selects one of a row's first
// width floats: a negative one would read the row before (or memory before
// the input, in assembly or on a GPU), one past width the next row. It
// returns the largest index (0 if there are none).
func CheckIndices(what string, idx []int32, width int) int {
	hi := int32(0)
	for j, k := range idx {
		if k < 0 || int(k) >= width {
			panic(fmt.Sprintf("%s: index %d (position %d) outside rows of %d", what, k, j, width))
		}
		hi = max(hi, k)
	}
	return int(hi)
}
