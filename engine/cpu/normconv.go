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
	// wPairs is the last Backward's w packed for bnBackFusedGemm (nil
	// where it is not used) and dwBlocks each block of rows' part of the
	// weight gradient, both in the convolution's scratch.
	wPairs, dwBlocks []float32
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
// defers to Moments after a 1×1 convolution: there that gradient is
// computed as the BatchNorm's pass reads it (backRows) and never stored,
// and with AVX-512 the same pass takes the weight gradient too.
func (f *NormConv) Backward(dIn, dGamma, dBeta, dW, dNormed, dOut, in, gamma, w []float32) {
	s := f.conv.ConvShape
	if !f.bn.defers() || !pointwise(s) || s.G != 1 || sumBlock*s.C > len(scratch{}.b) {
		f.conv.Backward(dNormed, dW, dOut, in, w)
		f.bn.Backward(dIn, dGamma, dBeta, dNormed, in, gamma)
		return
	}
	f.wPairs = nil
	if !use.gemmPair || !use.bnAll || s.K%2 != 0 {
		f.conv.pointwiseWeightGradient(dW, dOut, in)
	} else {
		// forward: out = normed · wᵀ, so dNormed = dOut · w: w's rows are
		// B's, packed once in pairs of strips, the last padded with zeros.
		pairs := (s.C + 2*nr - 1) / (2 * nr)
		f.wPairs = grow(&f.conv.scratch.packedW, pairs*2*nr*s.K)
		clear(f.wPairs[(pairs*2-1)*nr*s.K:])
		g := gemmArgs{B: w, ldb: s.C}
		g.packB(f.wPairs, 0, s.K, 0, s.C)
		f.dwBlocks = grow(&f.conv.scratch.partial, f.blocks()*f.partLen())
	}
	f.bn.backward(dIn, dGamma, dBeta, nil, in, gamma, func(f1, f2 []float32, r0, r1 int) {
		f.backRows(f1, f2, dIn, dOut, in, w, r0, r1)
	})
	if f.wPairs != nil {
		f.addWeightGradient(dW)
	}
}

// backRows is the BatchNorm's pass over rows [r0, r1) on dNormed = dOut·w,
// which it computes there: with AVX-512 a 6×32 tile at a time, used while
// in registers (bnBackFusedGemm), so that the pass's reading of the input
// and its gradient from memory overlaps the multiplying, and the block's
// weight gradient with it; without, as Gemm's rows into a buffer that
// stays in cache. The sums add rows in order either way.
func (f *NormConv) backRows(f1, f2, dIn, dOut, in, w []float32, r0, r1 int) {
	s, b := f.conv.ConvShape, f.bn
	floor := b.floor()
	stage := getScratch()
	defer putScratch(stage)
	if f.wPairs != nil {
		part := f.blockWeights(r0 / sumBlock)
		clear(part)
		for j := 0; j < s.C; j += 2 * nr {
			at := r0*b.LdIn + j
			bnBackFusedGemm(s.K, dOut[r0*s.LdOut:], s.LdOut, r1-r0, f.wPairs[j*s.K:], stage.a[:], f1[j:], f2[j:], dIn[at:], in[at:],
				part[j*s.K:], b.LdIn, min(2*nr, s.C-j), b.scale[j:], b.shift[j:], b.ca[j:], floor)
		}
		return
	}
	dy := stage.b[:(r1-r0)*s.C]
	Gemm(false, false, r1-r0, s.C, s.K, dOut[r0*s.LdOut:], s.LdOut, w, s.C, false, dy, s.C, 1)
	bnBackFused(f1, f2, dIn[r0*b.LdIn:], in[r0*b.LdIn:], dy, b.scale, b.shift, b.ca, s.C, r1-r0, b.LdIn, s.C, floor)
}

// blockWeights is block k's part of the weight gradient: for each 32
// channels j, K rows o of 32 floats, the sum over the block's rows of
// dOut[r, o]·x̂[r, j:j+32].
func (f *NormConv) blockWeights(k int) []float32 {
	n := f.partLen()
	return f.dwBlocks[k*n : (k+1)*n]
}

// partLen is the length of a block's part: K rows of 32 floats for each
// 32 channels.
func (f *NormConv) partLen() int { return (f.conv.C + 2*nr - 1) / (2 * nr) * 2 * nr * f.conv.K }

// blocks is the number of the BatchNorm's blocks of rows.
func (f *NormConv) blocks() int { return (f.bn.P + sumBlock - 1) / sumBlock }

// The blocks of rows that the weight gradient's parts are summed over are
// the BatchNorm's; they are gemmLongK's blocks of K too, which these make
// sure of (an array of non-zero length does not convert to one of none).
var (
	_ = [0]struct{}([kc - sumBlock]struct{}{})
	_ = [0]struct{}([longKChunk % sumBlock]struct{}{})
)

// addWeightGradient adds the blocks' parts of the weight gradient into dW
// (K×C) in gemmLongK's order, whose bits they are: each chunk of
// longKChunk rows is its blocks of kc rows added in turn (the blocks are
// the BatchNorm's, sumBlock = kc), the chunks are added in order, and the
// total is added to dW.
func (f *NormConv) addWeightGradient(dW []float32) {
	s := f.conv.ConvShape
	blocks, per, n := f.blocks(), longKChunk/sumBlock, f.partLen()
	chunks := (blocks + per - 1) / per
	parallel(f.conv.Workers, chunks, blocks*n, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			first := f.blockWeights(k * per)
			for b := k*per + 1; b < min(blocks, (k+1)*per); b++ {
				addRuns(first, f.blockWeights(b), 1, n, 0, 0)
			}
		}
	})
	total := f.blockWeights(0)
	parallel(f.conv.Workers, n/(2*nr), chunks*n, func(lo, hi int) {
		a, b := lo*2*nr, hi*2*nr
		for k := 1; k < chunks; k++ {
			addRuns(total[a:b], f.blockWeights(k * per)[a:b], 1, b-a, 0, 0)
		}
	})
	for j := 0; j < s.C; j += 2 * nr {
		addRuns(dW[j:], total[j*s.K:], s.K, min(2*nr, s.C-j), s.C, 2*nr)
	}
}
