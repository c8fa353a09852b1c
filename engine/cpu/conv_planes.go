package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Planes (engine.ConvShape.InPlanes and OutPlanes) in the float
// convolutions. A pointwise convolution with an input transform writes
// planes itself (pointwisePlanes): a call reads 32 pixels of each
// selected input plane (of the input's, or of 32 rows transposed into a
// staged block first), transforms them and accumulates 8 output
// channels. Where a group has more blocks of 8 outputs than one, its
// inputs are transformed once into a block of their own
// (transformPlanes, which also prefetches the next chunk's pixels of
// each plane) that every block's call reads (pointwiseTransformed): the
// ImageNet network's 1×1s read thousands of planes, from beyond L2. No
// channel is gathered (gathers were a third of the condensed network's
// time). The direct 3×3 convolution copies planes into its
// padded planes (toPlanes) and its outputs' runs into planes (tiles). Any
// other shape goes through rows.

// planesState is how a convolution does its planes, planned when it is
// made.
type planesState struct {
	pointwise bool    // a pointwise convolution with an input transform, into planes
	sources   int     // pointwise from rows: the input channels staged
	idx       []int32 // pointwise: each input channel's source (the transform's Index, or itself)
	most      int32   // pointwise: the largest
	stages    *bufs
	// transformed, where a group has more than one block of outputs, holds
	// a chunk's transformed inputs of a group, made once for its blocks.
	transformed *bufs
	in0, out0   []float32 // pointwise: the call's input and output, for its ranges (see each)
	rows        *Conv     // through rows: the convolution of rows
	in, out     []float32 // through rows: the rows
}

// planesForward computes the convolution if it reads or writes planes in
// a way the other lowerings do not (the direct 3×3 reads and writes them
// itself), and reports whether it did.
func (c *Conv) planesForward(out, in, w []float32) bool {
	s := c.ConvShape
	if !s.InPlanes && !s.OutPlanes || useDirect(s) { // the direct 3×3 reads and writes planes itself
		return false
	}
	ps := c.planes
	if ps.pointwise {
		c.pointwisePlanesForward(out, in, w)
		return true
	}
	// Through rows: the planes in as rows, the convolution, the rows out
	// as planes.
	if ps.rows == nil {
		c.planRows()
	}
	src, dst := in, out
	r := ps.rows
	if s.InPlanes {
		src = ps.in
		PlanesToRows(src, in, s.N*s.H*s.W, r.LdIn, s.LdIn, r.LdIn, 1)
	}
	if s.OutPlanes {
		dst = ps.out
	}
	r.Forward(dst, src, w)
	if s.OutPlanes {
		p := s.N * s.OH() * s.OW()
		for k := range s.K {
			stridedCopy(out[k*s.LdOut:][:p], dst[k:], s.K)
		}
	}
	return true
}

// planPlanes chooses how planes are done.
func (c *Conv) planPlanes() {
	s, ps := c.ConvShape, &planesState{}
	c.planes = ps
	if a := s.Input; s.OutPlanes && pointwise(s) && a != nil {
		ps.idx = a.Index
		if ps.idx == nil {
			ps.idx = make([]int32, s.C)
			for j := range ps.idx {
				ps.idx[j] = int32(j)
			}
		}
		ps.most = slices.Max(ps.idx)
		ps.pointwise = true
		if kg := s.K / s.G; use.planes && kg%pointwiseBlock == 0 && kg > pointwiseBlock {
			ps.transformed = &bufs{size: pointwiseChunk * s.C / s.G}
		}
		if !s.InPlanes { // rows are staged; planes are read as they are
			ps.sources = int(ps.most) + 1
			ps.stages = &bufs{size: pointwiseChunk * ps.sources}
		}
		return
	}
}

// planRows makes the convolution of rows that planes go through, on the
// first call that needs it.
func (c *Conv) planRows() {
	s, ps := c.ConvShape, c.planes
	r := *c
	r.ConvShape.InPlanes, r.ConvShape.OutPlanes, r.planes = false, false, nil
	if s.InPlanes {
		r.LdIn = s.C
		if a := s.Input; a != nil && a.Index != nil {
			r.LdIn = int(slices.Max(a.Index)) + 1
		}
		ps.in = make([]float32, s.N*s.H*s.W*r.LdIn)
	}
	if s.OutPlanes {
		r.LdOut = s.K
		ps.out = make([]float32, s.N*s.OH()*s.OW()*s.K)
	}
	ps.rows = &r
}

// pointwisePlanesForward is the pointwise convolution into planes, from
// planes or from rows transposed a chunk of pixels at a time.
func (c *Conv) pointwisePlanesForward(out, in, w []float32) {
	s, ps := c.ConvShape, c.planes
	cg := s.C / s.G
	p := s.N * s.H * s.W
	need := (p-1)*s.LdIn + ps.sources
	if s.InPlanes {
		need = int(ps.most)*s.LdIn + p
	}
	if len(in) < need || len(out) < (s.K-1)*s.LdOut+p || len(w) < s.Weights() {
		panic(fmt.Sprintf("conv: buffers of %d, %d, %d floats for shape %+v", len(out), len(in), len(w), s))
	}
	if c.prepared != &w[0] { // (a closure made only when there is work for it)
		c.prepare(w, func(w []float32) {
			c.arrangePointwisePlanes(grow(&c.wGroups, s.G*c.pointwiseBlocks()*pointwiseBlock*cg), w)
		})
	}
	ps.in0, ps.out0 = in, out
	each(c.Workers, (p+pointwiseChunk-1)/pointwiseChunk, p*(ps.sources+s.K*cg/8), c, (*Conv).pointwiseRange)
	ps.in0, ps.out0 = nil, nil
}

// A pointwise kernel call takes a chunk of 32 pixels and a block of 8
// outputs: each weight is used for two vectors of an input plane, which
// are read together.
const pointwiseChunk, pointwiseBlock = 32, 8

// pointwiseRange computes chunks [lo, hi) of the pointwise convolution's
// pixels.
func (c *Conv) pointwiseRange(lo, hi int) {
	s, ps, a := c.ConvShape, c.planes, c.Input
	in, out := ps.in0, ps.out0
	cg, kg, p := s.C/s.G, s.K/s.G, s.N*s.H*s.W
	floor := reluFloor(a.ReLU)
	var staged, t []float32
	stride := s.LdIn // floats between a source channel's pixels' rows
	if !s.InPlanes {
		staged, stride = ps.stages.get(), pointwiseChunk
		defer ps.stages.put(staged)
	}
	if ps.transformed != nil {
		t = ps.transformed.get()
		defer ps.transformed.put(t)
	}
	for at := lo; at < hi; at++ {
		p0 := at * pointwiseChunk
		pixels := min(pointwiseChunk, p-p0)
		src := staged
		if s.InPlanes {
			src = in[p0:]
		} else {
			stageRows(staged, pointwiseChunk, in[p0*s.LdIn:], s.LdIn, pixels, ps.sources)
		}
		for g := range s.G {
			j := g * cg
			idx, scale, shift := ps.idx[j:j+cg], a.Scale[j:j+cg], a.Shift[j:j+cg]
			if t != nil {
				transformPlanes(t, src, stride, idx, ps.most, scale, shift, floor, pixels)
			}
			for b0 := 0; b0 < kg; b0 += pointwiseBlock {
				k := g*kg + b0
				if t != nil {
					pointwiseTransformed(out[k*s.LdOut+p0:], s.LdOut, t, cg, c.pointwiseWeights(g, b0), pixels)
					continue
				}
				pointwisePlanes(out[k*s.LdOut+p0:], s.LdOut, src, stride, idx, ps.most, scale, shift, c.pointwiseWeights(g, b0), min(pointwiseBlock, kg-b0), floor, pixels)
			}
		}
	}
}

// arrangePointwisePlanes lays out w (K, C/G) for pointwisePlanes: per
// group and block of pointwiseBlock outputs, (C/G, pointwiseBlock), a
// short last block's missing outputs zero.
func (c *Conv) arrangePointwisePlanes(dst, w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	for g := range s.G {
		for b0 := 0; b0 < kg; b0 += pointwiseBlock {
			d := c.pointwiseWeights(g, b0)
			clear(d)
			for ci := range cg {
				for kk := range min(pointwiseBlock, kg-b0) {
					d[ci*pointwiseBlock+kk] = w[(g*kg+b0+kk)*cg+ci]
				}
			}
		}
	}
}

// pointwiseBlocks is the blocks of outputs a group has.
func (c *Conv) pointwiseBlocks() int { return (c.K/c.G + pointwiseBlock - 1) / pointwiseBlock }

// pointwiseWeights is group g's block of outputs from b0 on in the arranged
// weights.
func (c *Conv) pointwiseWeights(g, b0 int) []float32 {
	cg := c.C / c.G
	return c.wGroups[(g*c.pointwiseBlocks()+b0/pointwiseBlock)*pointwiseBlock*cg:][:pointwiseBlock*cg]
}

// checkPointwisePlanes panics unless the kernel's reads and writes lie in
// its slices; most is the largest of idx (and of every index the caller
// passes, which it checked once against the staged channels when it
// planned them: no negative one).
func checkPointwisePlanes(out []float32, ld int, staged []float32, stride int, idx []int32, most int32, scale, shift, w []float32, kb, pixels int) {
	cg := len(idx)
	if !transformReads(staged, stride, idx, most, scale, shift, pixels) || kb < 1 || kb > pointwiseBlock || len(w) < cg*pointwiseBlock || ld < pixels || len(out) < (kb-1)*ld+pixels {
		panic(fmt.Sprintf("conv: pointwise planes of %d channels (up to %d, %d floats apart, of %d), %d outputs %d apart, %d pixels into %d floats",
			cg, most, stride, len(staged), kb, ld, pixels, len(out)))
	}
}

// pointwisePlanesGo is the pointwise planes kernel's definition: for
// pixels p < pixels and outputs k < kb, out[k·ld + p] is the sum, in
// order over input channels i, of w[i·pointwiseBlock + k] ·
// max(staged[stride·idx[i] + p] · scale[i] + shift[i], floor), every
// multiply-add fused (w as arrangePointwisePlanes lays out a block).
func pointwisePlanesGo(out []float32, ld int, staged []float32, stride int, idx []int32, scale, shift, w []float32, kb int, floor float32, pixels int) {
	for p := range pixels {
		var acc [pointwiseBlock]float32
		for i, j := range idx {
			v := max(fma32(staged[stride*int(j)+p], scale[i], shift[i]), floor)
			for k := range kb {
				acc[k] = fma32(v, w[i*pointwiseBlock+k], acc[k])
			}
		}
		for k := range kb {
			out[k*ld+p] = acc[k]
		}
	}
}

// checkTransformPlanes panics unless transformPlanes's reads lie in src
// and its writes in t.
func checkTransformPlanes(t, src []float32, stride int, idx []int32, most int32, scale, shift []float32, pixels int) {
	if !transformReads(src, stride, idx, most, scale, shift, pixels) || len(t) < len(idx)*pointwiseChunk {
		panic(fmt.Sprintf("conv: transforming %d channels (up to %d, %d floats apart, of %d) of %d pixels into %d floats", len(idx), most, stride, len(src), pixels, len(t)))
	}
}

// transformReads reports whether a chunk's transform of pixels of the
// channels idx (up to most, which the caller checked against every index
// once: none is negative) lies in src, planes stride floats apart.
func transformReads(src []float32, stride int, idx []int32, most int32, scale, shift []float32, pixels int) bool {
	cg := len(idx)
	return cg >= 1 && pixels >= 1 && pixels <= pointwiseChunk && len(scale) >= cg && len(shift) >= cg && stride >= pixels &&
		int(most)*stride+pixels <= len(src) && int64(most)*int64(stride) <= math.MaxInt32
}

// checkPointwiseTransformed panics unless pointwiseTransformed's reads
// lie in t and w and its writes in out.
func checkPointwiseTransformed(out []float32, ld int, t []float32, cg int, w []float32, pixels int) {
	if cg < 1 || pixels < 1 || pixels > pointwiseChunk || ld < pixels || len(t) < cg*pointwiseChunk || len(w) < cg*pointwiseBlock ||
		len(out) < (pointwiseBlock-1)*ld+pixels {
		panic(fmt.Sprintf("conv: pointwise of %d transformed channels, %d outputs %d apart, %d pixels into %d floats", cg, pointwiseBlock, ld, pixels, len(out)))
	}
}

// fma32 is a·b + c rounded once, as a fused multiply-add does (the sum in
// float64 is exact for float32 operands but for the rare sums whose
// rounding to float64 then to float32 differs from rounding once).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// A bufs is a free list of buffers of one size. Unlike a sync.Pool,
// which every garbage collection empties (and whose refilling cost 5% of
// condensed inference), it keeps them; it holds no more than were ever in
// use at once.
type bufs struct {
	size int
	mu   sync.Mutex
	free [][]float32
}

func (b *bufs) get() []float32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.free); n > 0 {
		x := b.free[n-1]
		b.free = b.free[:n-1]
		return x
	}
	return make([]float32, b.size)
}

func (b *bufs) put(x []float32) {
	b.mu.Lock()
	b.free = append(b.free, x)
	b.mu.Unlock()
}

func checkAffineRows(dst []float32, dstStride int, src []float32, w, h int) {
	if w < 1 || h < 1 || dstStride < w || len(src) < w*h || len(dst) < (h-1)*dstStride+w {
		panic(fmt.Sprintf("conv: %d rows of %d floats from %d into %d, %d apart", h, w, len(src), len(dst), dstStride))
	}
}

// affineRowsGo is affineRows's definition: row y's x-th float, dst[y·dstStride + x],
// is max(src[y·w + x]·scale + shift, floor), the multiply-add fused.
func affineRowsGo(dst []float32, dstStride int, src []float32, w, h int, scale, shift, floor float32) {
	for y := range h {
		for x, v := range src[y*w : (y+1)*w] {
			dst[y*dstStride+x] = max(fma32(v, scale, shift), floor)
		}
	}
}

// stageRows transposes the first sources channels of pixels rows, ld
// apart, into staged: channel c's pixels at stride·c, sixteen pixels at a
// time. The register transposes take blocks of 16 or 8 pixels and
// channels, Go the others.
func stageRows(staged []float32, stride int, src []float32, ld, pixels, sources int) {
	for p0 := 0; p0 < pixels; p0 += 16 {
		rows := min(16, pixels-p0)
		for c0 := 0; c0 < sources; c0 += 16 {
			cols := min(16, sources-c0)
			dst, from := staged[c0*stride+p0:], src[p0*ld+c0:]
			if use.transpose && (rows == 16 || rows == 8) && (cols == 16 || cols == 8) {
				transpose(dst, stride, from, ld, rows, cols, false)
			} else {
				transposeGo(dst, stride, from, ld, rows, cols, false)
			}
		}
	}
}
