package cpu

import (
	"github.com/condensenet/condensenet/engine"
	"slices"
)

// A grouped 3×3 convolution (stride 1, padding 1) is done directly where
// the CPU has AVX-512, with a grouped convolution's exact arithmetic. The
// input is copied once into zero-padded planes, one per channel and
// image, (H+2)·(W+2) floats each, flattened: output pixel (y, x) is then
// position q = y·(W+2) + x, and tap (r, s) reads the plane at
// q + r·(W+2) + s. So 16 consecutive positions, across image rows, read 16
// consecutive floats for every tap, and a micro-kernel (conv3x3Quad512)
// computes four output channels over 64 positions at a time, the input
// vectors shared by all four (conv3x3Pair512 two; see tiling), and a
// plane's last vectors one at a time where they are not a whole 64 (at
// 8×8, 80 positions, where whole blocks computed 128). The two positions
// per row past the image's edge are computed and dropped (6% of the work
// at 32×32, 20% at 8×8). The shifted GEMMs this replaces computed G times
// the arithmetic.

// useDirect reports whether s is done directly.
func useDirect(s engine.ConvShape) bool {
	return use.direct3x3 && s.R == 3 && s.S == 3 && s.Stride == 1 && s.Pad == 1
}

// directBlock is the positions the micro-kernel covers per call, and
// directVector those of its one-vector form (conv3x3QuadVec512), which
// takes a plane's last vectors where they are not a whole block.
const directBlock, directVector = 64, 16

// directPlanes returns the positions computed per image (whole vectors)
// and the floats per plane: the positions plus the farthest tap's reach.
func (c *Conv) directPlanes() (positions, planeLen int) {
	s := c.ConvShape
	rowStride := s.W + 2
	positions = (s.H*rowStride + directVector - 1) / directVector * directVector
	return positions, positions + 2*rowStride + 2
}

// direct3x3 runs the micro-kernel for width outputs (see tiling) over
// the m positions of the planes from at on into acc: a whole block, or
// the plane's last vectors one at a time.
func direct3x3(acc *[4 * directBlock]float32, planes, w []float32, at, red, planeLen, rowStride, width, m int) {
	_ = planes[at+(red-1)*planeLen+m-1+2*rowStride+2] // the kernel's farthest read
	switch {
	case m == directBlock && width == 4:
		conv3x3Quad512(&acc[0], &planes[at], &w[0], red, planeLen, rowStride)
	case m == directBlock:
		conv3x3Pair512(&acc[0], &planes[at], &w[0], red, planeLen, rowStride)
	case width == 4:
		for v := 0; v < m; v += directVector {
			conv3x3QuadVec512(&acc[v], &planes[at+v], &w[0], red, planeLen, rowStride)
		}
	default:
		for v := 0; v < m; v += directVector {
			conv3x3PairVec512(&acc[v], &planes[at+v], &w[0], red, planeLen, rowStride)
		}
	}
}

// Plane roles: a convolution's input, and its output gradient (both at
// once in Backward); and the stride-2 stem's padded rows.
const (
	inputPlanes = iota
	gradientPlanes
	stemInput // stem2Forward's padded rows
)

// toPlanes copies src (N·H·W pixels of ch channels, ld apart) into
// zero-padded planes, one per (image, channel), kept for role, applying a
// if it is not nil.
func (c *Conv) toPlanes(role int, src []float32, ch, ld int, a *engine.Affine) []float32 {
	s := c.ConvShape
	_, planeLen := c.directPlanes()
	if role == inputPlanes && s.InPlanes { // planes already: each row copied (transformed) into its padded plane
		planes := c.scratch.planes(role, s.H, s.W, planeLen, s.N*ch)
		c.copying = planesCopy{c: c, planes: planes, src: src, ch: ch, ld: ld, a: a, floor: reluFloor(a != nil && a.ReLU)}
		each(c.Workers, s.N*ch, 2*s.N*s.H*s.W*ch, &c.copying, (*planesCopy).run)
		c.copying = planesCopy{}
		return planes
	}
	f := c.planeFill(role, src, ch, ld, a)
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*ch, f.rows)
	return f.planes
}

// A planeFill is toPlanes's copy of channels-last rows into planes, for
// its ranges of pixel rows (see rows).
type planeFill struct {
	c                        *Conv
	planes, src              []float32
	ch, ld                   int
	a                        *engine.Affine
	floor                    float32
	blocks, permuted, staged bool
	run                      int
}

// planeFill returns toPlanes's fill of role's planes from rows.
func (c *Conv) planeFill(role int, src []float32, ch, ld int, a *engine.Affine) *planeFill {
	s := c.ConvShape
	_, planeLen := c.directPlanes()
	f := &planeFill{c: c, planes: c.scratch.planes(role, s.H, s.W, planeLen, s.N*ch), src: src, ch: ch, ld: ld, a: a,
		floor: reluFloor(a != nil && a.ReLU)}
	// A pixel row and a channel at a time: the pixel row stays in cache
	// while each plane's row is written in order. Where rows are whole
	// eights of pixels, blocks of 16 (or 8) pixels × 16 (or 8) channels
	// are transposed in registers instead (on CondenseNet-86's first
	// block, half the time of gathering a channel at a time).
	f.blocks = use.transpose && s.W%8 == 0 && ch%8 == 0
	f.run = c.transposeRun()
	// With a transform that permutes whole sixteens of channels, the
	// transposed rows go to their planes with the BatchNorm on the way;
	// with another, a pixel row is transformed into a buffer (staged) and
	// transposed from there.
	f.permuted = f.blocks && a != nil && f.run == 16 && ch%16 == 0 && c.sourceRows(a, ch, planeLen) != nil
	f.staged = f.blocks && a != nil && !f.permuted && s.W*ch <= len(scratch{}.a)
	return f
}

// rows fills the planes of pixel rows [lo, hi), row n·H + y being image
// n's row y.
func (f *planeFill) rows(lo, hi int) {
	c, s := f.c, f.c.ConvShape
	planes, ch, ld, a := f.planes, f.ch, f.ld, f.a
	rowStride := s.W + 2
	_, planeLen := c.directPlanes()
	var stage *scratch
	if f.staged {
		stage = getScratch()
		defer putScratch(stage)
	}
	for row := lo; row < hi; row++ {
		n, y := row/s.H, row%s.H
		px := f.src[(n*s.H+y)*s.W*ld:]
		at := n*ch*planeLen + (y+1)*rowStride + 1
		if f.permuted {
			for s0 := 0; s0 < ch; s0 += 16 {
				for x0 := 0; x0 < s.W; x0 += 16 {
					d, p := planes[at+x0:], px[x0*ld+s0:]
					prefetchLines(&p[0], prefetchAhead*ld, ld, false)
					_, _ = d[(ch-1)*planeLen+15], p[15*ld+15]
					transposeAffine(&d[0], &c.rows.off[s0], &p[0], ld, &c.rows.scale[s0], &c.rows.shift[s0], f.floor)
				}
			}
			continue
		}
		if f.blocks && (a == nil || f.staged) {
			src, srcLd := px, ld
			if f.staged {
				src, srcLd = stage.a[:s.W*ch], ch
				normRows(src, px, a.Index, a.Scale, a.Shift, s.W, ch, ld, ch, f.floor)
			}
			for k0 := 0; k0 < ch; k0 += 16 {
				cols := min(16, ch-k0)
				for x0 := 0; x0 < s.W; x0 += f.run {
					prefetchLines(&src[x0*srcLd+k0], prefetchAhead*srcLd, srcLd, false)
					transpose(planes[at+k0*planeLen+x0:], planeLen, src[x0*srcLd+k0:], srcLd, f.run, cols, false)
				}
			}
			continue
		}
		for k := range ch {
			dst := planes[at+k*planeLen:][:s.W]
			if a == nil {
				stridedCopy(dst, px[k:], ld)
				continue
			}
			stridedAffine(dst, px[a.Source(k):], ld, a.Scale[k], a.Shift[k], f.floor)
		}
	}
}

// A planesCopy is toPlanes's copy of planes, for its ranges (see each).
type planesCopy struct {
	c           *Conv
	planes, src []float32
	ch, ld      int
	a           *engine.Affine
	floor       float32
}

// run copies items [lo, hi), (image, channel), into their padded planes.
func (j *planesCopy) run(lo, hi int) {
	s, a := j.c.ConvShape, j.a
	rowStride := s.W + 2
	_, planeLen := j.c.directPlanes()
	for item := lo; item < hi; item++ {
		n, k := item/j.ch, item%j.ch
		src, scale, shift := k, float32(1), float32(0) // without a transform, a copy
		if a != nil {
			src, scale, shift = a.Source(k), a.Scale[k], a.Shift[k]
		}
		affineRows(j.planes[item*planeLen+rowStride+1:], rowStride, j.src[src*j.ld+n*s.H*s.W:], s.W, s.H, scale, shift, j.floor)
	}
}

// A sourceLayout is an input transform laid out by source channel for
// transposeAffine: source channel j goes to plane off[j]/planeLen with
// scale[j] and shift[j].
type sourceLayout struct {
	off          []int
	scale, shift []float32
}

// sourceRows returns a's layout by source channel, made on the first call
// (a convolution's transform reads the same channels on every call; a
// training one's coefficients change, and are copied again), or nil unless
// a reads each of the ch source channels once (a permutation, like a
// channel shuffle).
func (c *Conv) sourceRows(a *engine.Affine, ch, planeLen int) *sourceLayout {
	if l := c.rows; l != nil && !c.Fixed {
		for k := range ch {
			j := a.Source(k)
			l.scale[j], l.shift[j] = a.Scale[k], a.Shift[k]
		}
	}
	if c.rows != nil || c.rowsTried {
		return c.rows
	}
	c.rowsTried = true
	if a.Index != nil && len(a.Index) != ch {
		return nil
	}
	l := &sourceLayout{off: slices.Repeat([]int{-1}, ch), scale: make([]float32, ch), shift: make([]float32, ch)}
	for k := range ch {
		j := a.Source(k)
		if j < 0 || j >= ch || l.off[j] >= 0 {
			return nil
		}
		l.off[j], l.scale[j], l.shift[j] = k*planeLen, a.Scale[k], a.Shift[k]
	}
	c.rows = l
	return l
}

// transposeRun is the pixels of a row a register transpose takes: 16
// where rows are whole sixteens, else 8 (rows of whole eights).
func (c *Conv) transposeRun() int {
	if c.W%16 == 0 {
		return 16
	}
	return 8
}

// prefetchAhead is how many pixels ahead of a transpose the lines of a
// later one are prefetched: two blocks of 16 (measured 2.4x faster adding
// blocks into a 33 MB buffer of rows 128 floats apart; one block ahead
// gained less, four no more).
const prefetchAhead = 32

// transpose is transposeBlock on slices, checked: dst[j·dstStride + i]
// (+)= src[i·srcStride + j] for i < rows, j < cols, each 8 or 16.
func transpose(dst []float32, dstStride int, src []float32, srcStride, rows, cols int, add bool) {
	_, _ = dst[(cols-1)*dstStride+rows-1], src[(rows-1)*srcStride+cols-1]
	transposeBlock(&dst[0], dstStride, &src[0], srcStride, rows, cols, add)
}

// transposeGo is transpose's definition.
func transposeGo(dst []float32, dstStride int, src []float32, srcStride, rows, cols int, add bool) {
	for i := range rows {
		for j := range cols {
			v := src[i*srcStride+j]
			if add {
				v += dst[j*dstStride+i]
			}
			dst[j*dstStride+i] = v
		}
	}
}

// stridedCopyGo is stridedCopy's definition.
func stridedCopyGo(dst, src []float32, stride int) {
	for i := range dst {
		dst[i] = src[i*stride]
	}
}

// stridedAffineGo is stridedAffine's definition.
func stridedAffineGo(dst, src []float32, stride int, scale, shift, floor float32) {
	for i := range dst {
		dst[i] = max(src[i*stride]*scale+shift, floor)
	}
}

// tiling returns the output channels a direct micro-kernel call computes
// for a group of per outputs, and the calls (tiles) per group: four
// channels (conv3x3Quad512, each input load feeding four multiply-adds)
// where they come in whole fours, else two (conv3x3Pair512, an odd
// count's last pair half zero). Both sum in the same order, so the width
// does not change the bits.
func tiling(per int) (width, tiles int) {
	if per%4 == 0 {
		return 4, per / 4
	}
	return 2, (per + 1) / 2
}

// arrangeTiles lays out w (K, C/G, 3, 3) in dst for the direct
// micro-kernels: per group and tile of the kernel's outputs (see
// tiling), (reduction channels, 9 taps, width), a missing output zero. For
// the output the kernel's outputs are w's output channels and the
// reduction its input channels; for the input gradient (flip) the other
// way round, the taps reversed.
func (c *Conv) arrangeTiles(dst, w []float32, flip bool) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	outs, red := kg, cg
	if flip {
		outs, red = cg, kg
	}
	width, tiles := tiling(outs)
	for g := range s.G {
		for p := range tiles {
			d := dst[(g*tiles+p)*red*9*width:][:red*9*width]
			for r := range red {
				for t := range 9 {
					for j := range width {
						v := float32(0)
						if o := width*p + j; o < outs && flip {
							v = w[((g*kg+r)*cg+o)*9+8-t]
						} else if o < outs {
							v = w[((g*kg+o)*cg+r)*9+t]
						}
						d[(r*9+t)*width+j] = v
					}
				}
			}
		}
	}
}

// tileWeights is the length of arrangeTiles's layout for per outputs and
// red reduction channels a group.
func (c *Conv) tileWeights(per, red int) int {
	width, tiles := tiling(per)
	return c.G * tiles * width * red * 9
}

func (c *Conv) directForward(out, in, w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	if c.prepared != &w[0] { // (a closure made only when there is work for it)
		c.prepare(w, func(w []float32) { c.arrangeTiles(grow(&c.wTiles, c.tileWeights(kg, cg)), w, false) })
	}
	wk := c.wTiles
	if s.InPlanes || !c.byImage(kg) {
		planes := c.toPlanes(inputPlanes, in, s.C, s.LdIn, s.Input)
		c.tiles(out, s.LdOut, false, planes, s.C, cg, kg, wk)
		return
	}
	// Each image's planes are filled and convolved by one worker in turn,
	// while they are in its cache, where the whole batch's planes would
	// go to memory and back (9.5 MB a layer in CondenseNet-86's first
	// block).
	f := c.planeFill(inputPlanes, in, s.C, s.LdIn, s.Input)
	job := tilesJob{c: c, dst: out, ld: s.LdOut, planes: f.planes, chIn: s.C, red: cg, per: kg, wk: wk}
	positions, _ := c.directPlanes()
	parallel(c.Workers, s.N, s.N*(positions*s.K*cg*9/12+2*s.H*s.W*s.C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			f.rows(n*s.H, (n+1)*s.H)
			job.images(n, n+1)
		}
	})
}

// byImage reports whether tiles computes a whole image at a time, for per
// outputs a group (see tiles).
func (c *Conv) byImage(per int) bool {
	s := c.ConvShape
	positions, _ := c.directPlanes()
	k := s.G * per
	return s.W%8 == 0 && k%8 == 0 && !s.OutPlanes && k*positions <= len(scratch{}.b)
}

// tiles runs the direct micro-kernel over every (image, group, tile of
// output channels): planes hold chIn channels per image, red of them per
// group (the reduction), and each group has per outputs, written to dst
// (ld apart) or, with add, added to it. The work counts multiply-adds as
// the row kernels count floats, about twelve to one in time.
func (c *Conv) tiles(dst []float32, ld int, add bool, planes []float32, chIn, red, per int, wk []float32) {
	s := c.ConvShape
	_, tiles := tiling(per)
	positions, _ := c.directPlanes()
	c.job = tilesJob{c: c, dst: dst, ld: ld, add: add, planes: planes, chIn: chIn, red: red, per: per, wk: wk}
	work := s.N * positions * s.G * per * red * 9 / 12
	// With rows of whole eights of pixels and outputs in eights, an
	// image's outputs go to planes of their own first, and from there into
	// dst by register transposes, 16 (or 8) pixels at a time, instead of
	// one float a pixel, while the planes are still in cache.
	if c.byImage(per) {
		each(c.Workers, s.N, work, &c.job, (*tilesJob).images)
	} else {
		each(c.Workers, s.N*s.G*tiles, work, &c.job, (*tilesJob).run)
	}
	c.job = tilesJob{}
}

// A tilesJob is a call of tiles, for its ranges (see each).
type tilesJob struct {
	c              *Conv
	dst            []float32
	ld             int
	add            bool
	planes         []float32
	chIn, red, per int
	wk             []float32
}

// images computes images [lo, hi) a whole image at a time, through
// planes of its outputs.
func (j *tilesJob) images(lo, hi int) {
	s := j.c.ConvShape
	_, tiles := tiling(j.per)
	rowStride, k := s.W+2, s.G*j.per
	positions, _ := j.c.directPlanes()
	stage := getScratch()
	defer putScratch(stage)
	outPlanes := stage.b[:k*positions]
	run := j.c.transposeRun()
	for n := lo; n < hi; n++ {
		j.items(n*s.G*tiles, (n+1)*s.G*tiles, outPlanes)
		for y := range s.H {
			for k0 := 0; k0 < k; k0 += 16 {
				rows := min(16, k-k0)
				for x0 := 0; x0 < s.W; x0 += run {
					at := ((n*s.H+y)*s.W+x0)*j.ld + k0
					prefetchLines(&j.dst[at], prefetchAhead*j.ld, j.ld, true)
					transpose(j.dst[at:], j.ld, outPlanes[k0*positions+y*rowStride+x0:], positions, rows, run, j.add)
				}
			}
		}
	}
}

// run computes items [lo, hi).
func (j *tilesJob) run(lo, hi int) { j.items(lo, hi, nil) }

// items computes items [lo, hi): (image, group, tile of output channels),
// all of one image if outPlanes, which gets their outputs, is set.
func (j *tilesJob) items(lo, hi int, outPlanes []float32) {
	c, s := j.c, j.c.ConvShape
	dst, ld, add, planes, chIn, red, per, wk := j.dst, j.ld, j.add, j.planes, j.chIn, j.red, j.per, j.wk
	width, tiles := tiling(per)
	rowStride := s.W + 2
	positions, planeLen := c.directPlanes()
	var acc [4 * directBlock]float32
	for item := lo; item < hi; item++ {
		n, g, p := item/(s.G*tiles), item/tiles%s.G, item%tiles
		w := wk[(g*tiles+p)*red*9*width:][:red*9*width]
		base := (n*chIn + g*red) * planeLen
		o, outs := g*per+width*p, min(width, per-width*p)
		for q0 := 0; q0 < positions; q0 += directBlock {
			m := min(directBlock, positions-q0)
			direct3x3(&acc, planes, w, base+q0, red, planeLen, rowStride, width, m)
			if outPlanes != nil {
				for i := range outs {
					copy(outPlanes[(o+i)*positions+q0:][:m], acc[i*directBlock:][:m])
				}
				continue
			}
			// The block's positions, row by row: the first W of a
			// padded row are pixels, the last two padding.
			y, x := q0/rowStride, q0%rowStride
			for i := 0; i < m && y < s.H; {
				run := min(m-i, rowStride-x)
				if m := min(run, s.W-x); m > 0 && s.OutPlanes { // a run of each output's plane (Forward only)
					at := o*ld + (n*s.H+y)*s.W + x
					for k := range outs {
						copy(dst[at+k*ld:][:m], acc[k*directBlock+i:][:m])
					}
				} else if m > 0 {
					at := ((n*s.H+y)*s.W+x)*ld + o
					scatter(dst[at:at+(m-1)*ld+outs], ld, acc[i:], m, outs, add)
				}
				i, x = i+run, x+run
				if x == rowStride {
					y, x = y+1, 0
				}
			}
		}
	}
}

// scatter stores (or with add, adds) pixel j's outputs, acc[k·directBlock
// + j] for k < outs, at dst[j·ld + k], for j < m.
func scatter(dst []float32, ld int, acc []float32, m, outs int, add bool) {
	for k := range outs {
		v := acc[k*directBlock:][:m]
		if add {
			for j, x := range v {
				dst[j*ld+k] += x
			}
		} else {
			for j, x := range v {
				dst[j*ld+k] = x
			}
		}
	}
}

// directBackward is Backward for a convolution useDirect takes: dIn with
// the same micro-kernel on dOut's planes, dW with conv3x3GradPair512, both
// exact; results do not depend on the worker count (each dW entry is
// summed over the images in order).
func (c *Conv) directBackward(dIn, dW, dOut, in, w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	positions, planeLen := c.directPlanes()
	rowStride := s.W + 2
	wkT := grow(&c.wTilesT, c.tileWeights(cg, kg))
	c.arrangeTiles(wkT, w, true)
	inPlanes := c.toPlanes(inputPlanes, in, s.C, s.LdIn, s.Input)
	outPlanes := c.toPlanes(gradientPlanes, dOut, s.K, s.LdOut, nil)
	ldDIn := s.LdIn // with an input transform, dIn is its output's gradient, rows of C
	if s.Input != nil {
		ldDIn = s.C
	}
	c.tiles(dIn, ldDIn, !s.OverwriteDIn, outPlanes, s.K, kg, cg, wkT)
	// dW[o, ci, t] += Σ_n Σ_q dOut[n, o](q) · in[n, ci](q + tap t); a
	// plane's dOut at q is its padded plane at q + rowStride + 1.
	pairs := (kg + 1) / 2
	// The sums stop at the last vector that holds an output position: past
	// it dOut's planes are zero, in the whole blocks that the forward
	// kernel computes (37% of the 8×8 planes' vectors).
	vectors := (s.H*rowStride + 15) / 16
	parallel(c.Workers, s.G*pairs*cg, s.N*positions*s.K*cg*9/12, func(lo, hi int) {
		var acc [18 * 16]float32
		for item := lo; item < hi; item++ {
			g, ci, p := item/(cg*pairs), item/pairs%cg, item%pairs
			o := g*kg + 2*p
			clear(acc[:])
			// Every image's planes, one after another (K and C planes
			// apart); an odd last pair's second gradient repeats the
			// first, and its sums are not kept.
			d0 := outPlanes[o*planeLen+rowStride+1:]
			d1 := d0
			if 2*p+1 < kg {
				d1 = outPlanes[(o+1)*planeLen+rowStride+1:]
			}
			src := inPlanes[(g*cg+ci)*planeLen:]
			last := s.N - 1 // the last image's farthest reads
			_, _, _ = d0[last*s.K*planeLen+16*vectors-1], d1[last*s.K*planeLen+16*vectors-1], src[last*s.C*planeLen+16*vectors-1+2*rowStride+2]
			conv3x3GradPair512(&acc[0], &d0[0], &d1[0], &src[0], vectors, rowStride, s.N, s.K*planeLen, s.C*planeLen)
			for j := range min(2, kg-2*p) {
				for t := range 9 {
					var sum float32
					for _, v := range acc[(j*9+t)*16 : (j*9+t+1)*16] {
						sum += v
					}
					dW[((o+j)*cg+ci)*9+t] += sum
				}
			}
		}
	})
}

// useStem2 reports the ImageNet network's stem, a stride-2 3×3
// convolution of RGB rows into 16 channels, which stem2Forward computes
// directly: through patches its GEMMs have 27-long sums and 16 columns,
// and the patches are copied three floats at a time.
func useStem2(s engine.ConvShape) bool {
	return use.bnAll && s.R == 3 && s.S == 3 && s.Stride == 2 && s.Pad == 1 && s.C == 3 && s.K == 16 &&
		s.G == 1 && s.LdIn == 3 && s.Input == nil && !s.InPlanes
}

// stem2Forward copies each image into rows padded by a zero pixel (kept
// per image size, their borders zero, as toPlanes's planes are) and runs
// stem2Row over each output row: output (y, x) reads the nine floats of
// three pixels at padded rows 2y to 2y+2, columns 2x to 2x+2. The sums
// are the GEMM's of the patches, in the same order.
func (c *Conv) stem2Forward(out, in, w []float32) {
	s := c.ConvShape
	if c.prepared != &w[0] { // (a closure made only when there is work for it)
		c.prepare(w, func(w []float32) {
			c.wStem = grow(&c.wStem, 27*16)
			for k := range 16 {
				for ci := range 3 {
					for t := range 9 {
						c.wStem[(t*3+ci)*16+k] = w[(k*3+ci)*9+t]
					}
				}
			}
		})
	}
	ldIn := (s.W + 2) * 3 // a padded row
	padded := c.scratch.planes(stemInput, s.H, s.W, (s.H+2)*ldIn, s.N)
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*3, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, y := row/s.H, row%s.H
			copy(padded[n*(s.H+2)*ldIn+(y+1)*ldIn+3:][:s.W*3], in[(n*s.H+y)*s.W*3:][:s.W*3])
		}
	})
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N*oh, s.N*oh*ow*27*16/8, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, y := row/oh, row%oh
			stem2Row(out[(n*oh+y)*ow*s.LdOut:], padded[n*(s.H+2)*ldIn+2*y*ldIn:], c.wStem, ow, ldIn, s.LdOut)
		}
	})
}
