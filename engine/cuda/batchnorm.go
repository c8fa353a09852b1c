package cuda

import (
	"fmt"

	"github.com/condensenet/condensenet/engine"
)

// batchNorm follows the CPU backend's BatchNorm (same formulas, eps 1e-5,
// momentum 0.1): per-channel sums over blocks of bnRows rows into the
// backend's shared partial-sum buffer, a finalize kernel in which a warp
// per channel adds the blocks in double and derives per-channel
// coefficients, and an apply kernel over every element.
type batchNorm struct {
	b *Backend
	engine.NormShape
	idx        uintptr // the fused index on the device, or 0
	mean, rstd uintptr // (C) the last training batch's statistics
	ca, cb, cc uintptr // (C) per-channel coefficients of the current pass
	blocks     int
}

const bnRows = 256 // BN_ROWS in kernels.cu

// NewNormConv stores the BatchNorm's output: no kernel here fuses them.
func (b *Backend) NewNormConv(n engine.NormShape, c engine.ConvShape) engine.NormConv {
	return engine.ComposeNormConv(b, n, c)
}

func (b *Backend) NewBatchNorm(s engine.NormShape) engine.BatchNorm {
	if s.LdOut < s.C || s.P <= 1 || (s.Index == nil && s.LdIn < s.C) || s.OverwriteDIn {
		panic(fmt.Sprintf("cuda: invalid BatchNorm %+v (OverwriteDIn is a NormConv's)", s))
	}
	n := &batchNorm{b: b, NormShape: s, blocks: (s.P + bnRows - 1) / bnRows}
	if s.Index != nil {
		engine.CheckIndices("cuda: BatchNorm", s.Index, s.LdIn)
		n.C = len(s.Index)
		n.idx = b.alloc(n.C)
		b.putInts(n.idx, s.Index)
	}
	for _, p := range []*uintptr{&n.mean, &n.rstd, &n.ca, &n.cb, &n.cc} {
		*p = b.alloc(n.C)
	}
	return n
}

// partials returns the shared buffer for the per-block sums, as two
// (C, blocks) halves.
func (n *batchNorm) partials() (arg, arg) {
	part := n.b.grow(&n.b.stats, 2*n.blocks*n.C)
	return ptrArg(part), ptrArg(part + uintptr(4*n.blocks*n.C))
}

// The sums kernels run 32 channels × 8 row lanes per block, one block row
// per bnRows rows; the finalize kernels 32 lanes × 8 channels per block.
func (n *batchNorm) sumsGrid() [3]int     { return [3]int{(n.C + 31) / 32, n.blocks, 1} }
func (n *batchNorm) finalizeGrid() [3]int { return [3]int{(n.C + 7) / 8, 1, 1} }

var bnBlock = [3]int{32, 8, 1}

func (n *batchNorm) ForwardTrain(out, in, gamma, beta, runMean, runVar engine.View) {
	if n.idx != 0 {
		panic("cuda: a BatchNorm index is for inference only")
	}
	s1, s2 := n.partials()
	n.b.launch("bn_sums", n.sumsGrid(), bnBlock, s1, s2, va(in), ia(n.P), ia(n.C), ia(n.LdIn))
	n.b.launch("bn_train_finalize", n.finalizeGrid(), bnBlock, ptrArg(n.mean), ptrArg(n.rstd), ptrArg(n.ca), ptrArg(n.cb),
		va(runMean), va(runVar), va(gamma), va(beta), s1, s2, ia(n.blocks), ia(n.C), ia(n.P), f32Arg(1e-5), f32Arg(0.1))
	n.apply(out, in)
}

func (n *batchNorm) ForwardInfer(out, in, gamma, beta, runMean, runVar engine.View) {
	n.b.run("bn_infer_coeffs", n.C, ptrArg(n.ca), ptrArg(n.cb), va(gamma), va(beta), va(runMean), va(runVar), ia(n.C), f32Arg(1e-5))
	n.apply(out, in)
}

func (n *batchNorm) apply(out, in engine.View) {
	n.b.run("bn_apply", n.P*n.C, va(out), va(in), ptrArg(n.ca), ptrArg(n.cb), ptrArg(n.idx),
		ia(n.P), ia(n.C), ia(n.LdIn), ia(n.LdOut), boolArg(n.ReLU))
}

func (n *batchNorm) Backward(dIn, dGamma, dBeta, dOut, in, out, gamma engine.View) {
	if n.idx != 0 {
		panic("cuda: a BatchNorm index is for inference only")
	}
	s1, s2 := n.partials()
	n.b.launch("bn_back_sums", n.sumsGrid(), bnBlock, s1, s2, va(in), va(dOut), va(out),
		ia(n.P), ia(n.C), ia(n.LdIn), ia(n.LdOut), boolArg(n.ReLU))
	n.b.launch("bn_back_finalize", n.finalizeGrid(), bnBlock, ptrArg(n.ca), ptrArg(n.cb), ptrArg(n.cc), va(dGamma), va(dBeta),
		s1, s2, ptrArg(n.mean), ptrArg(n.rstd), va(gamma), ia(n.blocks), ia(n.C), ia(n.P))
	n.b.run("bn_back_apply", n.P*n.C, va(dIn), va(in), va(dOut), va(out), ptrArg(n.ca), ptrArg(n.cb), ptrArg(n.cc),
		ia(n.P), ia(n.C), ia(n.LdIn), ia(n.LdOut), boolArg(n.ReLU))
}
