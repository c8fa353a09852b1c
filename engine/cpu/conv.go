package cpu

import (
	"fmt"
	"math"

	"github.com/condensenet/condensenet/engine"
)

// pointwise reports a 1×1, stride-1, unpadded convolution, which is a plain
// GEMM on the input with no copying.
func pointwise(s engine.ConvShape) bool { return s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0 }

func checkConv(s engine.ConvShape) {
	width := s.C // floats of an input row read
	if a := s.Input; a != nil && a.Index != nil {
		if s.InPlanes {
			engine.CheckIndices("conv input transform", a.Index, math.MaxInt32) // planes: checked against the input when it comes
		} else {
			engine.CheckIndices("conv input transform", a.Index, s.LdIn) // a selection may repeat channels
		}
		width = 0
	}
	in, out := s.LdIn >= width, s.LdOut >= s.K
	if s.InPlanes {
		in = s.LdIn >= s.N*s.H*s.W
	}
	if s.OutPlanes {
		out = s.LdOut >= s.N*s.OH()*s.OW()
	}
	// Every count is positive: the assembly loops test theirs at the
	// bottom, so a count of 0 would run 2⁶⁴ times.
	if min(s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.Stride, s.G) <= 0 || s.Pad < 0 || s.C%s.G != 0 || s.K%s.G != 0 ||
		!in || !out || s.OH() <= 0 || s.OW() <= 0 || s.OverwriteDIn && s.LdIn != s.C && s.Input == nil || (s.InPlanes || s.OutPlanes) && !s.Fixed {
		panic(fmt.Sprintf("conv: invalid shape %+v", s))
	}
}

// A Conv is a convolution over channels-last views (see engine.ConvShape).
// A convolution that is not pointwise is lowered to GEMMs on patch matrices
// (im2col), built a block of output pixels at a time so that a block's
// patches are still in cache when its GEMMs read them. The patch buffers
// live in a Scratch shared with the other convolutions of a network, since
// only one runs at a time.
type Conv struct {
	engine.ConvShape
	Workers int
	scratch *Scratch
	arranged
	dwPatch []float32 // (K, R·S·C/G): weight gradient in patch order
	wTilesT []float32 // the direct micro-kernels' weights for the input gradient
	shifted bool      // runs as shifted GEMMs (see useShifted)
	// rows lays out a direct convolution's input transform by source
	// channel, once tried (see sourceRows).
	rows      *sourceLayout
	rowsTried bool
	plain     *Conv        // with an Input transform but no direct lowering: the convolution of its result
	planes    *planesState // with InPlanes or OutPlanes (see conv_planes.go)
	job       tilesJob     // the call of tiles running
	copying   planesCopy   // the copy of planes running
	longK     longKInput   // the weight gradient's input transform running
	// prepared is the weights the arranged ones were made from, for a
	// Fixed shape.
	prepared *float32
	// shared, if set, holds Fixed weights' arrangements that other
	// convolutions (of other networks on the same weights) made.
	shared *Arrangements
}

// arranged are a convolution's weights rearranged for its kernels; one of
// them is in use, chosen by the shape.
type arranged struct {
	wPatch  []float32 // (K, R·S·C/G): weights in patch order
	wTaps   []float32 // (R·S, C, K): per-tap block-diagonal weights (shifted only)
	wTiles  []float32 // the direct micro-kernels' weights (see arrangeTiles)
	wG4     []float32 // a grouped 1×1's weights for the four-group kernels (see arrangeG4)
	wGroups []float32 // a Fixed 1×1's weights, group by group (C/G, K/G) (see arrangeGroups)
	wStem   []float32 // the stride-2 stem's weights (R, S, C, K) (see stem2Forward)
}

// prepare runs rearrange on w unless the shape is Fixed and w is what was
// rearranged last time, or what a convolution of the same shape sharing c's
// Arrangements rearranged.
func (c *Conv) prepare(w []float32, rearrange func([]float32)) {
	if c.Fixed && c.prepared == &w[0] {
		return
	}
	if !c.Fixed {
		rearrange(w)
		return
	}
	c.shared.do(c, &w[0], func() { rearrange(w) })
	c.prepared = &w[0]
}

// Scratch holds the patch matrices of convolutions that run one at a time.
// It grows to the largest request and then stays, so a network allocates
// it during its first step only. Not safe for concurrent use.
type Scratch struct {
	col  []float32 // (block, G·R·S·C/G): input patches, group by group
	dcol []float32 // same shape: their gradient
	in   []float32 // a zero-padded input (see shifted)
	out  []float32 // a zero-padded output (see shifted)
	// input is an input after its transform (engine.ConvShape.Input).
	input []float32
	// partial holds GemmLongK's products of chunks, or a NormConv's
	// blocks' parts of a weight gradient.
	partial []float32
	// packedW holds a NormConv's 1×1 weights packed for bnBackFusedGemm.
	packedW []float32
	// rows holds transformed rows of a GemmLongK's A (see longKInput).
	rows bufs
	// planeBufs hold the direct convolutions' planes (see toPlanes), by
	// role and image size: their borders stay zero between calls.
	planeBufs map[[3]int][]float32
}

// planes returns n planes of planeLen floats for role and h×w images
// whose borders are zero: the buffer is kept per (role, h, w), which fixes
// where the borders are, and toPlanes only ever writes the insides.
func (s *Scratch) planes(role, h, w, planeLen, n int) []float32 {
	if s.planeBufs == nil {
		s.planeBufs = map[[3]int][]float32{}
	}
	key := [3]int{role, h, w}
	buf := s.planeBufs[key]
	if len(buf) < n*planeLen {
		buf = append(buf, make([]float32, n*planeLen-len(buf))...)
		s.planeBufs[key] = buf
	}
	return buf[:n*planeLen]
}

func (s *Scratch) get(n int) (col, dcol []float32) {
	return grow(&s.col, n), grow(&s.dcol, n)
}

// grow returns (*buf)[:n], reallocating only when it is too short.
func grow(buf *[]float32, n int) []float32 {
	if len(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}

// patchBytes bounds the patch buffer: blocks of this size measured as fast
// as whole-batch patches on CondenseNet-86 and keep 75 MB layers at 8 MB.
const patchBytes = 8192 << 10

// NewConv returns a convolution of shape s that keeps its patches in
// scratch (nil: its own).
func NewConv(s engine.ConvShape, workers int, scratch *Scratch) *Conv {
	checkConv(s)
	if scratch == nil {
		scratch = new(Scratch)
	}
	c := &Conv{ConvShape: s, Workers: workers, scratch: scratch, shifted: useShifted(s)}
	if s.InPlanes || s.OutPlanes {
		c.planPlanes()
	}
	return c
}

// block returns the number of output pixels per patch block, a multiple of
// the GEMM's row tile.
func (c *Conv) block() int {
	s := c.ConvShape
	b := patchBytes / 4 / (s.R * s.S * s.C)
	return max(mr, b/mr*mr)
}

// Forward computes out = conv(in, w), overwriting out.
func (c *Conv) Forward(out, in, w []float32) {
	s := c.ConvShape
	if c.planesForward(out, in, w) {
		return
	}
	if s.Input != nil && !useDirect(s) {
		c.initPlain()
		if pointwise(s) {
			c.pointwiseInputForward(out, in, w)
			return
		}
		// The input's transform into a buffer first, then the convolution
		// of that (the direct one applies it as it copies the input).
		x := c.transformed(in)
		c.plain.Forward(out, x, w)
		return
	}
	kg, kk := s.K/s.G, s.R*s.S*s.C/s.G
	p := s.N * s.OH() * s.OW()
	if useDirect(s) {
		c.directForward(out, in, w)
		return
	}
	if c.shifted { // shifted GEMMs use their own weight layout
		c.shiftedForward(out, in, w)
		return
	}
	if pointwise(s) {
		c.preparePointwise(w)
		c.pointwiseForward(out, in, w, p, c.Workers)
		return
	}
	if useStem2(s) {
		c.stem2Forward(out, in, w)
		return
	}
	c.prepare(w, c.permuteWeights)
	blk := c.block()
	col, _ := c.scratch.get(blk * s.G * kk)
	for r0 := 0; r0 < p; r0 += blk {
		r1 := min(p, r0+blk)
		c.im2col(col, in, r0, r1)
		for g := range s.G {
			// out[rows, g] = patches[rows, g] · w[g]ᵀ
			Gemm(false, true, r1-r0, kg, kk, col[g*kk:], s.G*kk, c.wPatch[g*kg*kk:], kk, false, out[r0*s.LdOut+g*kg:], s.LdOut, c.Workers)
		}
	}
}

// initPlain makes c.plain, c without its input transform.
func (c *Conv) initPlain() {
	if c.plain == nil {
		plain := *c
		plain.Input, plain.LdIn = nil, c.C
		c.plain = &plain
	}
}

// transformed returns the whole input after its transform, in scratch.
func (c *Conv) transformed(in []float32) []float32 {
	s := c.ConvShape
	x := grow(&c.scratch.input, s.N*s.H*s.W*s.C)
	a, p := s.Input, s.N*s.H*s.W
	parallel(c.Workers, p, 2*p*s.C, func(lo, hi int) {
		normRows(x[lo*s.C:], in[lo*s.LdIn:], a.Index, a.Scale, a.Shift, hi-lo, s.C, s.LdIn, s.C, reluFloor(a.ReLU))
	})
	return x
}

// Backward accumulates the weight gradient into dW and the input gradient
// into dIn, given the output gradient dOut and the forward input in.
func (c *Conv) Backward(dIn, dW, dOut, in, w []float32) {
	s := c.ConvShape
	a := s.Input
	if a != nil && (a.Index != nil || s.Fixed) {
		panic("conv: an input transform with an index, or of a Fixed convolution, is for inference only")
	}
	cg, kg, kk := s.C/s.G, s.K/s.G, s.R*s.S*s.C/s.G
	p := s.N * s.OH() * s.OW()
	c.dwPatch = grow(&c.dwPatch, s.K*kk)
	if useDirect(s) {
		c.directBackward(dIn, dW, dOut, in, w)
		return
	}
	if a != nil && !pointwise(s) {
		c.initPlain()
		c.plain.Backward(dIn, dW, dOut, c.transformed(in), w)
		return
	}
	if s.Stride == 1 && !pointwise(s) {
		c.backwardByOutputPatches(dIn, dW, dOut, in, w)
		return
	}
	c.permuteWeights(w)
	if pointwise(s) {
		c.pointwiseWeightGradient(dW, dOut, in)
		// With an input transform, dIn is its output's gradient, rows of C.
		ldDIn := s.LdIn
		if a != nil {
			ldDIn = s.C
		}
		for g := range s.G {
			// forward: out[:, g] = in[:, g] · w[g]ᵀ, so dIn[:, g] += dOut[:, g] · w[g]
			Gemm(false, false, p, cg, kg, dOut[g*kg:], s.LdOut, c.wPatch[g*kg*kk:], kk, c.addsToDIn(), dIn[g*cg:], ldDIn, c.Workers)
		}
		return
	}
	if s.OverwriteDIn { // col2im adds up patches
		clearParallel(dIn[:s.N*s.H*s.W*s.C], c.Workers) // LdIn is C
	}
	blk := c.block()
	col, dcol := c.scratch.get(blk * s.G * kk)
	for r0 := 0; r0 < p; r0 += blk {
		r1 := min(p, r0+blk)
		c.im2col(col, in, r0, r1)
		add := r0 > 0 // blocks add up, in order
		for g := range s.G {
			// forward: out[rows, g] = patches[rows, g] · w[g]ᵀ, so
			// dw[g] += dOut[rows, g]ᵀ · patches[rows, g] and dPatches[rows, g] = dOut[rows, g] · w[g]
			Gemm(true, false, kg, kk, r1-r0, dOut[r0*s.LdOut+g*kg:], s.LdOut, col[g*kk:], s.G*kk, add, c.dwPatch[g*kg*kk:], kk, c.Workers)
			Gemm(false, false, r1-r0, kk, kg, dOut[r0*s.LdOut+g*kg:], s.LdOut, c.wPatch[g*kg*kk:], kk, false, dcol[g*kk:], s.G*kk, c.Workers)
		}
		c.col2im(dIn, dcol, r0, r1)
	}
	c.addWeightGrad(dW)
}

// pointwiseWeightGradient adds a 1×1 convolution's weight gradient to dW.
func (c *Conv) pointwiseWeightGradient(dW, dOut, in []float32) {
	s, a := c.ConvShape, c.Input
	cg, kg := s.C/s.G, s.K/s.G
	p := s.N * s.H * s.W
	c.dwPatch = grow(&c.dwPatch, s.K*cg)
	for g := range s.G {
		// forward: out[:, g] = in[:, g] · w[g]ᵀ, so dw[g]ᵀ = in[:, g]ᵀ · dOut[:, g].
		// dw[g] comes transposed: its kg columns make whole 32-wide
		// tiles where its cg would leave ragged ones (measured 1.2-1.5x
		// faster on CondenseNet-86's first block), with the same sums.
		t := c.dwPatch[g*kg*cg : (g+1)*kg*cg]
		var transform *longKInput
		if a != nil {
			c.longK = longKInput{scale: a.Scale[g*cg:], shift: a.Shift[g*cg:], floor: reluFloor(a.ReLU), rows: &c.scratch.rows}
			transform = &c.longK
		}
		gemmLongK(cg, kg, p, in[g*cg:], s.LdIn, dOut[g*kg:], s.LdOut, t, kg, c.Workers, &c.scratch.partial, transform)
		for ci := range cg {
			for o, v := range t[ci*kg : (ci+1)*kg] {
				dW[(g*kg+o)*cg+ci] += v
			}
		}
	}
}

// addsToDIn says whether a GEMM that writes dIn whole adds to it, or
// overwrites it (OverwriteDIn).
func (c *Conv) addsToDIn() bool { return !c.OverwriteDIn }

// permuteWeights turns w (K, C/G, R, S) into wPatch (K, R, S, C/G), the order of
// im2col's patches, in which each tap's channels are contiguous.
func (c *Conv) permuteWeights(w []float32) {
	s := c.ConvShape
	cg, rs := s.C/s.G, s.R*s.S
	c.wPatch = grow(&c.wPatch, s.K*cg*rs)
	for o := range s.K {
		src, dst := w[o*cg*rs:(o+1)*cg*rs], c.wPatch[o*cg*rs:(o+1)*cg*rs]
		for ci := range cg {
			for t := range rs {
				dst[t*cg+ci] = src[ci*rs+t]
			}
		}
	}
}

// addWeightGrad adds the gradient in patch order, dwPatch, to dW (K, C/G, R, S).
func (c *Conv) addWeightGrad(dW []float32) {
	s := c.ConvShape
	cg, rs := s.C/s.G, s.R*s.S
	for o := range s.K {
		src, dst := c.dwPatch[o*cg*rs:(o+1)*cg*rs], dW[o*cg*rs:(o+1)*cg*rs]
		for ci := range cg {
			for t := range rs {
				dst[ci*rs+t] += src[t*cg+ci]
			}
		}
	}
}

// im2col fills col with every group's patches for output pixels [r0, r1):
// row (n, oy, ox) − r0, columns (g, r, s, ci); taps outside the image are
// zero. One pass over the input serves all groups.
func (c *Conv) im2col(col, in []float32, r0, r1 int) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, r1-r0, 2*(r1-r0)*s.G*kk, func(lo, hi int) {
		for row := r0 + lo; row < r0+hi; row++ {
			n, oy, ox := row/(oh*ow), row/ow%oh, row%ow
			dst := col[(row-r0)*s.G*kk:]
			for r := range s.R {
				iy := oy*s.Stride - s.Pad + r
				for q := range s.S {
					ix := ox*s.Stride - s.Pad + q
					tap := (r*s.S + q) * cg
					if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
						for g := range s.G {
							clear(dst[g*kk+tap : g*kk+tap+cg])
						}
						continue
					}
					copyRuns(dst[tap:], in[((n*s.H+iy)*s.W+ix)*s.LdIn:], s.G, cg, kk, cg)
				}
			}
		}
	})
}

// col2im adds the patch gradients of output pixels [r0, r1) back onto the
// input pixels. Neighbouring patches overlap, so workers split the groups,
// whose channels are disjoint, and each walks every row in order.
func (c *Conv) col2im(dIn, dcol []float32, r0, r1 int) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.G, 2*(r1-r0)*s.G*kk, func(g0, g1 int) {
		for row := r0; row < r1; row++ {
			n, oy, ox := row/(oh*ow), row/ow%oh, row%ow
			src := dcol[(row-r0)*s.G*kk:]
			for r := range s.R {
				iy := oy*s.Stride - s.Pad + r
				if iy < 0 || iy >= s.H {
					continue
				}
				for q := range s.S {
					ix := ox*s.Stride - s.Pad + q
					if ix < 0 || ix >= s.W {
						continue
					}
					tap := (r*s.S + q) * cg
					addRuns(dIn[((n*s.H+iy)*s.W+ix)*s.LdIn+g0*cg:], src[g0*kk+tap:], g1-g0, cg, cg, kk)
				}
			}
		}
	})
}

// copyRunsGo and addRunsGo are the definitions of copyRuns and
// addRuns: per group, a run of cg floats, strided differently on each side.
func copyRunsGo(dst, src []float32, runs, n, dstStride, srcStride int) {
	for i := range runs {
		copy(dst[i*dstStride:i*dstStride+n], src[i*srcStride:i*srcStride+n])
	}
}

func addRunsGo(dst, src []float32, runs, n, dstStride, srcStride int) {
	for i := range runs {
		d, s := dst[i*dstStride:i*dstStride+n], src[i*srcStride:i*srcStride+n]
		for j, v := range s {
			d[j] += v
		}
	}
}

// useG4 reports a 1×1 convolution of 4 groups of 8 or 16 outputs, which
// a GEMM per group does on a narrow tile with a handful of multiply-adds
// per call (the condensed CondenseNet's first two blocks): with AVX-512
// one kernel does all four groups of six rows at a time instead.
func useG4(s engine.ConvShape) bool {
	return use.conv1x1G4 && pointwise(s) && s.G == 4 && (s.K == 32 || s.K == 64)
}

// arrangeG4 lays out w (K, C/4) as (C/4, K): row i holds every output's
// weight for its group's input i.
func (c *Conv) arrangeG4(w []float32) {
	cg := c.C / 4
	c.wG4 = grow(&c.wG4, cg*c.K)
	for i := range cg {
		for o := range c.K {
			c.wG4[i*c.K+o] = w[o*cg+i]
		}
	}
}

// preparePointwise rearranges a 1×1 convolution's weights for
// pointwiseForward: for the four-group kernel, or, when they are Fixed,
// each group's transposed.
func (c *Conv) preparePointwise(w []float32) {
	switch {
	case useG4(c.ConvShape):
		c.prepare(w, c.arrangeG4)
	case c.Fixed:
		c.prepare(w, c.arrangeGroups)
	}
}

// arrangeGroups lays out each group's weights w[g] (K/G, C/G) as (C/G,
// K/G): B of the group's GEMM row-major, which packing copies a row at a
// time instead of transposing (at batch 1 that packing is much of the
// GEMM).
func (c *Conv) arrangeGroups(w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	c.wGroups = grow(&c.wGroups, s.K*cg)
	for g := range s.G {
		for o := range kg {
			for i := range cg {
				c.wGroups[(g*cg+i)*kg+o] = w[(g*kg+o)*cg+i]
			}
		}
	}
}

// pointwiseForward computes the first p rows of a 1×1 convolution's
// output with up to workers goroutines (weights prepared already; the
// sums are the same with either arrangement).
func (c *Conv) pointwiseForward(out, in, w []float32, p, workers int) {
	s := c.ConvShape
	if useG4(s) {
		c.forwardG4(out, in, w, p, workers)
		return
	}
	cg, kg := s.C/s.G, s.K/s.G
	for g := range s.G {
		// out[:, g] = in[:, g] · w[g]ᵀ; a 1×1 kernel's weights are in
		// patch order already
		if s.Fixed {
			Gemm(false, false, p, kg, cg, in[g*cg:], s.LdIn, c.wGroups[g*cg*kg:], kg, false, out[g*kg:], s.LdOut, workers)
			continue
		}
		Gemm(false, true, p, kg, cg, in[g*cg:], s.LdIn, w[g*kg*cg:], cg, false, out[g*kg:], s.LdOut, workers)
	}
}

// pointwiseInputForward computes a 1×1 convolution of its input's
// transform a chunk of rows at a time: each worker transforms a chunk
// into a buffer that stays in cache and multiplies it there, instead of
// writing the whole transformed input to memory and reading it back
// (the condensed CondenseNet's index-select, BatchNorm and ReLU before
// each grouped 1×1). The sums are those of the unfused convolution.
func (c *Conv) pointwiseInputForward(out, in, w []float32) {
	s, a, plain := c.ConvShape, c.Input, c.plain
	plain.preparePointwise(w)
	p := s.N * s.H * s.W
	rows := max(mr, inputChunkFloats/s.C/mr*mr)
	chunks := (p + rows - 1) / rows
	parallel(c.Workers, chunks, p*(s.C+s.K), func(lo, hi int) {
		buf := getScratch()
		x := buf.b[:rows*s.C]
		for r0 := lo * rows; r0 < min(p, hi*rows); r0 += rows {
			n := min(rows, p-r0)
			normRows(x, in[r0*s.LdIn:], a.Index, a.Scale, a.Shift, n, s.C, s.LdIn, s.C, reluFloor(a.ReLU))
			plain.pointwiseForward(out[r0*s.LdOut:], x, w, n, 1)
		}
		putScratch(buf)
	})
}

// inputChunkFloats is the size of pointwiseInputForward's chunks: with the
// GEMM's packed block of A beside it, it stays in L2.
const inputChunkFloats = 64 << 10

// forwardG4 runs the four-group kernel over whole tiles of six rows and
// the GEMMs over the last few, which sum in the same order.
func (c *Conv) forwardG4(out, in, w []float32, p, workers int) {
	s := c.ConvShape
	cg, kg := s.C/4, s.K/4
	kernel := conv1x1G4x8AVX512
	if kg == 16 {
		kernel = conv1x1G4x16AVX512
	}
	tiles := p / 6
	parallel(workers, tiles, p*s.K*cg/12, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			r := 6 * t
			_, _ = in[(r+5)*s.LdIn+s.C-1], out[(r+5)*s.LdOut+s.K-1]
			kernel(&out[r*s.LdOut], s.LdOut, &in[r*s.LdIn], s.LdIn, cg, &c.wG4[0])
		}
	})
	if r := 6 * tiles; r < p {
		for g := range 4 {
			Gemm(false, true, p-r, kg, cg, in[r*s.LdIn+g*cg:], s.LdIn, w[g*kg*cg:], cg, false, out[r*s.LdOut+g*kg:], s.LdOut, workers)
		}
	}
}
