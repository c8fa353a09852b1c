package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/condensenet/condensenet/engine"
)

// An Int8Conv is a stride-1 convolution in 8-bit integers (engine.Requant
// says what it computes).
//
// It quantises its input into planes of quads, one per group and four
// input channels, (G, C/G/4, positions, 4) bytes, where the positions are
// every image's zero-padded pixels in a row and a slack of zeros after
// them. Output (n, y, x) is then position o = n·hp·wp + y·wp + x, and its
// tap (r, s) reads position o + r·wp + s of every quad: a run of 64
// outputs reads one run of 64 quads per quad and tap, which the tile
// kernels take for two or four output channels at a time (see tile).
// Outputs in the padding's columns and rows are computed and dropped.
type Int8Conv struct {
	engine.ConvShape
	Workers   int
	cg, nq    int   // input channels of a group, and their quads (the last zero-padded)
	hp, wp    int   // the padded images' height and width
	positions int   // N·hp·wp
	plane     int   // positions of a plane: the images', rounded up to tiles, and the taps' reach
	steps     []int // byte offsets of the steps (quad, tap) from a group's first plane
	stepsMost int   // the largest
	in8       []uint8
	// tile is every tile's work but its input: output channels 2 at a
	// time, or 4 for runs (dotRuns) and a pair's first (dotQuads),
	// whose groups of two channels are paired where they can be; its w
	// is the weights in blocks, (blocks, steps, width, 4).
	tile     tile
	prepared *float32 // the weights tile.w was made from (the shape is Fixed)
	quads    quads
	rq       []requant
	// outOff is each position's output offset (row·LdOut, or the pixel
	// for planes), or -1 for a padding one; tileMost the largest of each
	// tile's. With contiguous, positions are output pixels (an unpadded
	// 1×1 convolution writing planes) and tiles are stored whole.
	outOff, tileMost []int32
	contiguous       bool
	// runs, for planes whose positions are not pixels (padded), are where
	// the tiles store their outputs in the planes.
	runs tileRuns
	// outPlanes holds the outputs as planes of every position, to be
	// moved into the output's rows by transposes (see viaPlanes) rather
	// than scattered.
	outPlanes []float32
	// The call's input and output, for its ranges (see each).
	in, out []float32
	via     bool
	// With an input of rows, sources is how many of a row's channels are
	// transposed, sixteen pixels at a time, into one of stages' buffers,
	// to be quantised from there (quantiseStaged).
	sources int
	stages  *bufs
}

// tileLen is the positions of a tile.
const tileLen = 64

// quads are an int8 convolution's input quads, four input channels each:
// the source channels they read (0 past a group's channels) and their
// transforms (0·x + 0 there: a 0 byte), and the largest source, checked
// once against the input's channels.
type quads struct {
	idx          []int32
	scale, shift []float32
	most         int32
}

// requant is engine.Requant's constants for one output channel.
type requant struct{ scale, shift, lo, hi, step float32 }

// checkInt8 checks what checkConv checks of other convolutions, with an
// input or output of planes.
func checkInt8(s engine.ConvShape) {
	q := s.Int8
	pixels := s.N * s.H * s.W
	in, out := s.LdIn >= s.C, s.LdOut >= s.K // rows hold their channels
	if s.InPlanes {
		in = s.LdIn >= pixels // planes hold their pixels
	}
	if s.OutPlanes {
		out = s.LdOut >= s.N*s.OH()*s.OW()
	}
	if a := s.Input; a != nil && a.Index != nil && !s.InPlanes {
		engine.CheckIndices("int8 conv input transform", a.Index, s.LdIn)
		in = true
	}
	if a := s.Input; a != nil && a.Index != nil && s.InPlanes {
		engine.CheckIndices("int8 conv input transform", a.Index, math.MaxInt32) // planes: checked against the input when it comes
	}
	if min(s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.G) <= 0 || s.Pad < 0 || s.C%s.G != 0 || s.K%s.G != 0 || s.OH() <= 0 || s.OW() <= 0 ||
		!in || !out || !s.Fixed || s.Stride != 1 || len(q.Scale) != s.K || len(q.Shift) != s.K || !(q.Lo <= q.Hi) || q.Lo < math.MinInt32/2 || q.Hi > math.MaxInt32/2 {
		panic(fmt.Sprintf("conv: invalid int8 shape %+v (Fixed, stride 1; requant scale %d, shift %d, range [%v, %v])", s, len(q.Scale), len(q.Shift), q.Lo, q.Hi))
	}
	if a := s.Input; a != nil && (len(a.Scale) != s.C || len(a.Shift) != s.C || a.Index != nil && len(a.Index) != s.C) {
		panic(fmt.Sprintf("conv: int8 input transform of %d channels for %d", len(a.Scale), s.C))
	}
	outOff := int64(s.N*s.OH()*s.OW()) * int64(max(s.LdOut, 1)) // outOff's largest: a row's offset, or for planes a pixel
	if s.OutPlanes {
		outOff = int64(s.N * s.OH() * s.OW())
	}
	if outOff > math.MaxInt32 || int64(16*s.LdIn) > math.MaxInt32 {
		panic(fmt.Sprintf("conv: int8 shape %+v has offsets past int32", s))
	}
}

// NewInt8Conv returns the int8 convolution of shape s (s.Int8 set).
func NewInt8Conv(s engine.ConvShape, workers int) *Int8Conv {
	checkInt8(s)
	c := &Int8Conv{ConvShape: s, Workers: workers, cg: s.C / s.G, hp: s.H + 2*s.Pad, wp: s.W + 2*s.Pad}
	c.nq = (c.cg + 3) / 4
	c.positions = s.N * c.hp * c.wp
	c.plane = (c.positions+tileLen-1)/tileLen*tileLen + (s.R-1)*c.wp + s.S - 1
	for q := range c.nq {
		for t := range s.R * s.S {
			c.steps = append(c.steps, 4*(q*c.plane+t/s.S*c.wp+t%s.S))
		}
	}
	c.stepsMost = slices.Max(c.steps)
	c.in8 = make([]uint8, s.G*c.nq*c.plane*4)
	q := s.Int8
	for k := range s.K {
		c.rq = append(c.rq, requant{q.Scale[k], q.Shift[k], q.Lo, q.Hi, q.Step})
	}
	c.contiguous = s.OutPlanes && c.positions == s.N*s.OH()*s.OW()
	if s.OutPlanes && !c.contiguous {
		c.arrange(4, s.K/s.G == 2 && s.G%2 == 0)
	} else {
		c.arrange(2, false)
	}
	c.outOff = make([]int32, c.plane)
	c.tileMost = slices.Repeat([]int32{-1}, (c.positions+tileLen-1)/tileLen)
	for o := range c.outOff {
		n, y, x := o/(c.hp*c.wp), o/c.wp%c.hp, o%c.wp
		c.outOff[o] = -1
		if n < s.N && y < s.OH() && x < s.OW() {
			c.outOff[o] = int32((n*s.OH()+y)*s.OW() + x)
			if !s.OutPlanes {
				c.outOff[o] *= int32(s.LdOut)
			}
			c.tileMost[o/tileLen] = c.outOff[o]
		}
	}
	if s.OutPlanes && !c.contiguous {
		c.runs = newRuns(len(c.tileMost), c.positions, func(o int) int { return int(c.outOff[o]) }, 0xF)
	}
	qd := &c.quads
	qd.idx = make([]int32, s.G*c.nq*4)
	qd.scale, qd.shift = make([]float32, len(qd.idx)), make([]float32, len(qd.idx))
	for j := range s.C {
		at := j/c.cg*c.nq*4 + j%c.cg
		qd.idx[at], qd.scale[at] = int32(j), 1
		if a := s.Input; a != nil {
			qd.idx[at], qd.scale[at], qd.shift[at] = int32(a.Source(j)), a.Scale[j], a.Shift[j]
		}
	}
	qd.most = slices.Max(qd.idx)
	if !s.InPlanes {
		c.sources = int(qd.most) + 1
		c.stages = &bufs{size: 16 * c.sources}
	}
	return c
}

// Forward computes out from in with w, weights (K, C/G, R, S) that are
// integers in [-127, 127].
func (c *Int8Conv) Forward(out, in, w []float32) {
	c.check(out, in, w)
	c.prepareWeights(w)
	c.quantise(in)
	c.compute(out)
}

// check panics unless out and in (either nil: not checked) hold the
// output and input and w the weights.
func (c *Int8Conv) check(out, in, w []float32) {
	s := c.ConvShape
	pixels, outPixels := s.N*s.H*s.W, s.N*s.OH()*s.OW()
	needIn, needOut := (pixels-1)*s.LdIn+int(c.quads.most)+1, (outPixels-1)*s.LdOut+s.K
	if s.InPlanes {
		needIn = int(c.quads.most)*s.LdIn + pixels
	}
	if s.OutPlanes {
		needOut = (s.K-1)*s.LdOut + outPixels
	}
	if len(w) < s.Weights() || in != nil && len(in) < needIn || out != nil && len(out) < needOut {
		panic(fmt.Sprintf("conv: int8 buffers of %d, %d, %d floats for shape %+v", len(out), len(in), len(w), s))
	}
}

// quantise writes in, quantised, into the input's quad planes.
func (c *Int8Conv) quantise(in []float32) {
	s := c.ConvShape
	c.in = in
	if pixels := s.N * s.H * s.W; s.InPlanes && s.Pad == 0 {
		each(c.Workers, len(c.quads.idx)/4, 2*pixels*s.C, c, (*Int8Conv).quantiseQuads)
	} else {
		each(c.Workers, s.N*s.H, 2*pixels*s.C, c, (*Int8Conv).quantiseRows)
	}
	c.in = nil
}

// quantiseQuads writes quads [lo, hi) of the input from planes into
// unpadded planes, whose positions are the pixels: every pixel of a quad
// before the next (its four planes read in a row: sixteen pixels of every
// quad at a time ran at half the speed), across rows, not a row at a time
// (rows of 8 half filled the vectors).
func (c *Int8Conv) quantiseQuads(lo, hi int) {
	s, q := c.ConvShape, c.quads
	q.idx, q.scale, q.shift = q.idx[4*lo:4*hi], q.scale[4*lo:4*hi], q.shift[4*lo:4*hi]
	quantiseStaged(c.in8[lo*c.plane*4:], c.plane*4, c.in, s.LdIn, &q, s.N*s.H*s.W)
}

// compute computes out from the quad planes.
func (c *Int8Conv) compute(out []float32) {
	s := c.ConvShape
	c.out, c.via = out, c.viaPlanes()
	defer func() { c.out = nil }()
	if c.via && c.outPlanes == nil {
		c.outPlanes = make([]float32, s.K*len(c.tileMost)*tileLen)
	}
	each(c.Workers, len(c.tileMost), len(c.tileMost)*tileLen*s.K*len(c.steps)/4, c, (*Int8Conv).tiles)
	if c.via {
		each(c.Workers, s.N*s.OH(), 2*s.N*s.OH()*s.OW()*s.K, c, (*Int8Conv).fromPlanes)
	}
}

// tiles computes tiles [lo, hi) of the outputs: into planes of runs,
// every group's blocks in one call; else a block at a time.
func (c *Int8Conv) tiles(lo, hi int) {
	s, out := c.ConvShape, c.out
	planeLen := len(c.tileMost) * tileLen
	stride := 1 // floats between an output's channels
	if s.OutPlanes {
		stride = s.LdOut
	}
	t := c.tile
	for at := lo; at < hi; at++ {
		most := c.tileMost[at]
		if most < 0 {
			continue // padding alone
		}
		o0 := at * tileLen
		t.in = c.in8[o0*4:]
		if s.OutPlanes && !c.contiguous {
			dotRuns(out, stride, &c.runs, at, &t)
			continue
		}
		offs := (*[tileLen]int32)(c.outOff[o0:])
		for g := range s.G {
			for p := range t.groupBlocks() {
				b, k := t.block(g, p)
				switch {
				case c.contiguous:
					dotStore(out[k*stride+o0:], stride, min(tileLen, c.positions-o0), &b)
				case c.via:
					dotStore(c.outPlanes[k*planeLen+o0:], planeLen, tileLen, &b)
				default:
					dotScatter(out[k*stride:], stride, offs, most, &b)
				}
			}
		}
	}
}

// fromPlanes moves output rows [lo, hi) from outPlanes to the output.
func (c *Int8Conv) fromPlanes(lo, hi int) {
	s, out := c.ConvShape, c.out
	planeLen, oh, ow := len(c.tileMost)*tileLen, s.OH(), s.OW()
	for row := lo; row < hi; row++ {
		n, y := row/oh, row%oh
		o := (n*c.hp + y) * c.wp // the row's first position
		for k0 := 0; k0 < s.K; k0 += 16 {
			for x0 := 0; x0 < ow; x0 += 16 {
				transpose(out[(row*ow+x0)*s.LdOut+k0:], s.LdOut, c.outPlanes[k0*planeLen+o+x0:], planeLen, min(16, s.K-k0), min(16, ow-x0), false)
			}
		}
	}
}

// viaPlanes reports whether outputs are written through outPlanes: rows
// where the register transposes run and the output rows and channels
// come in their eights or sixteens.
func (c *Int8Conv) viaPlanes() bool {
	s := c.ConvShape
	return !s.OutPlanes && use.transpose && (s.OW()%16 == 0 || s.OW() == 8) && s.K%8 == 0
}

// arrange makes the tiles take width output channels at once, paired or
// not (see tile).
func (c *Int8Conv) arrange(width int, paired bool) {
	c.tile = tile{steps: c.steps, most: c.stepsMost, width: width, groups: c.G, groupBytes: 4 * c.nq * c.plane, paired: paired, q: c.rq}
	c.tile.w, c.prepared = make([]int8, c.tile.blockCount()*len(c.steps)*width*4), nil
}

// prepareWeights arranges the weights in blocks of width channels, once
// for a Fixed shape.
func (c *Int8Conv) prepareWeights(w []float32) {
	if c.prepared == &w[0] {
		return
	}
	s := c.ConvShape
	kg, rs, steps, width := s.K/s.G, s.R*s.S, len(c.steps), c.tile.width
	for g := range s.G {
		for kk := range kg {
			k := g*kg + kk
			block, i := c.tile.slot(k)
			for ci := range c.cg {
				for t := range rs {
					v := w[(k*c.cg+ci)*rs+t]
					if v != float32(int8(v)) || v < -127 {
						panic(fmt.Sprintf("conv: int8 weight %v (output %d, input %d, tap %d) is not an integer in [-127, 127]", v, k, ci, t))
					}
					step := ci/4*rs + t
					c.tile.w[((block*steps+step)*width+i)*4+ci%4] = int8(v)
				}
			}
		}
	}
	c.prepared = &w[0]
}

// quantiseRows writes input image rows [lo, hi), quantised, into the
// planes, inside the padding: from planes, or rows transposed first
// (quantiseStaged).
func (c *Int8Conv) quantiseRows(lo, hi int) {
	s, in := c.ConvShape, c.in
	for ny := lo; ny < hi; ny++ {
		n, y := ny/s.H, ny%s.H
		dst := c.in8[((n*c.hp+y+s.Pad)*c.wp+s.Pad)*4:]
		switch {
		case s.InPlanes:
			quantiseStaged(dst, c.plane*4, in[ny*s.W:], s.LdIn, &c.quads, s.W)
		default:
			c.quantiseStagedRow(dst, in[ny*s.W*s.LdIn:])
		}
	}
}

// quantiseStagedRow quantises an image row from src into the planes at
// dst, sixteen pixels at a time: their first c.sources channels
// transposed (stageRows), then each quad's four read from there.
func (c *Int8Conv) quantiseStagedRow(dst []uint8, src []float32) {
	s := c.ConvShape
	staged := c.stages.get()
	defer c.stages.put(staged)
	for x0 := 0; x0 < s.W; x0 += 16 {
		pixels := min(16, s.W-x0)
		stageRows(staged, 16, src[x0*s.LdIn:], s.LdIn, pixels, c.sources)
		quantiseStaged(dst[x0*4:], c.plane*4, staged, 16, &c.quads, pixels)
	}
}

// roundClamp rounds v to the nearest integer, ties to even (as the
// vector conversions do), within [lo, hi], integers.
func roundClamp(v, lo, hi float32) float32 {
	return float32(math.RoundToEven(float64(min(max(v, lo), hi))))
}

// A tile is the dot-product kernels' work: 64 positions of the input's
// quad planes from in, for each of groups (each group's groupBytes after
// the last's); the steps, each quad and tap's byte offset (the largest is
// most, which its caller took from the same steps); the weight quads of
// the output channels in blocks of width (see slot), step by step, block
// after block; and the channels' requantisations, group after group.
type tile struct {
	in                 []uint8
	steps              []int
	most               int
	width              int // channels of a step's weights: 2, or 4 (dotRuns, dotQuads)
	groups, groupBytes int
	// paired makes a block of four channels two groups' two each, for
	// groups of two channels (dotRuns), rather than one group's two and
	// two zeros: the block's second pair reads the second group's input.
	paired bool
	w      []int8
	q      []requant
}

// slot returns the block that holds channel k's weights and its place in
// it: each group's channels in blocks of width, the last padded with
// zeros, or paired, the channels in blocks of four in their order.
func (t *tile) slot(k int) (block, i int) {
	if t.paired {
		return k / 4, k % 4
	}
	kg := len(t.q) / t.groups
	return k/kg*t.groupBlocks() + k%kg/t.width, k % kg % t.width
}

// groupBlocks is how many blocks each group's channels take, unpaired.
func (t *tile) groupBlocks() int { return (len(t.q)/t.groups + t.width - 1) / t.width }

// blockCount is how many blocks the channels take.
func (t *tile) blockCount() int {
	if t.paired {
		return len(t.q) / 4
	}
	return t.groups * t.groupBlocks()
}

// block returns block p of group g of an unpaired tile as a tile of its
// own, and its first channel.
func (t *tile) block(g, p int) (tile, int) {
	kg, size := len(t.q)/t.groups, 4*t.width*len(t.steps)
	k := g*kg + p*t.width
	b := *t
	b.groups, b.groupBytes = 1, 0
	b.in = t.in[g*t.groupBytes:]
	b.w = t.w[(g*t.groupBlocks()+p)*size:][:size]
	b.q = t.q[k:min(k+t.width, (g+1)*kg)]
	return b, k
}

// checkTile panics unless every group's steps' 64 quads lie in in, w
// holds every block's weights, for the kernel's width, and the groups
// have the same channels (two each, an even number of groups, where
// paired): the tile kernels trust all four.
func checkTile(t *tile, width int) {
	if len(t.steps) == 0 || t.width != width || t.groups < 1 || len(t.q) < t.groups || len(t.q)%t.groups != 0 || t.groupBytes < 0 || t.groups > 1 && t.groupBytes > len(t.in) ||
		t.paired && (width != 4 || len(t.q) != 2*t.groups || t.groups%2 != 0 || t.groupBytes == 0) ||
		len(t.w) < t.blockCount()*4*width*len(t.steps) || (t.groups-1)*t.groupBytes+t.most > len(t.in)-4*tileLen || t.steps[0] < 0 {
		panic(fmt.Sprintf("conv: int8 tile of %d steps up to byte %d (groups of %d, %d bytes apart, paired %v) of %d, with %d weights, for %d channels (%d a step; the kernel takes %d)",
			len(t.steps), t.most, t.groups, t.groupBytes, t.paired, len(t.in), len(t.w), len(t.q), t.width, width))
	}
}

// channel returns channel k's input, its group's, and its first weight
// quad (in its block, see slot); its quad of step s is 4·width·s on.
func (t *tile) channel(k int) (in []uint8, w []int8) {
	block, i := t.slot(k)
	return t.in[k/(len(t.q)/t.groups)*t.groupBytes:], t.w[block*4*t.width*len(t.steps)+4*i:]
}

// dotChannelGo is channel k's sums at the tile's positions: acc[p] is the
// sum over steps s and bytes b of in[steps[s] + 4p + b] · w[4·width·s +
// b] for its input and weights (channel). The tile kernels' definitions
// below take their sums from dotChannel, which computes these (on AVX2
// where it runs).
func dotChannelGo(acc *[tileLen]int32, t *tile, k int) {
	in, w := t.channel(k)
	clear(acc[:])
	for s, o := range t.steps {
		wq := w[4*t.width*s:][:4]
		for p := range tileLen {
			x := in[o+4*p:][:4]
			acc[p] += int32(x[0])*int32(wq[0]) + int32(x[1])*int32(wq[1]) + int32(x[2])*int32(wq[2]) + int32(x[3])*int32(wq[3])
		}
	}
}

func checkDotStore(out []float32, ld, n int, t *tile) {
	checkTile(t, 2)
	if t.groups != 1 || len(t.q) > 2 || n < 1 || n > tileLen || ld < 0 || len(out) < (len(t.q)-1)*ld+n {
		panic(fmt.Sprintf("conv: storing %d outputs of %d channels %d floats apart into %d floats", n, len(t.q), ld, len(out)))
	}
}

// dotStoreGo is the storing tile kernel's definition: channel i's first
// n sums requantised (see engine.Requant) into out[i·ld + p].
func dotStoreGo(out []float32, ld, n int, t *tile) {
	for i, q := range t.q {
		var acc [tileLen]int32
		dotChannel(&acc, t, i)
		for p, a := range acc[:n] {
			out[i*ld+p] = q.of(a)
		}
	}
}

func checkDotScatter(out []float32, ld int, most int32, t *tile) {
	checkTile(t, 2)
	if t.groups != 1 || len(t.q) > 2 || ld < 0 || most < 0 || (len(t.q)-1)*ld+int(most) >= len(out) {
		panic(fmt.Sprintf("conv: scattering %d channels %d floats apart to offsets up to %d of %d floats", len(t.q), ld, most, len(out)))
	}
}

// dotScatterGo is the scattering tile kernel's definition: channel i's
// sum at position p requantised into out[i·ld + offs[p]] where offs[p] ≥ 0
// (the largest is most, which its caller took from the same offsets).
func dotScatterGo(out []float32, ld int, offs *[tileLen]int32, t *tile) {
	for i, q := range t.q {
		var acc [tileLen]int32
		dotChannel(&acc, t, i)
		for p, o := range offs {
			if o >= 0 {
				out[i*ld+int(o)] = q.of(acc[p])
			}
		}
	}
}

func checkDotRuns(out []float32, ld int, rs *tileRuns, t *tile) {
	checkTile(t, 4)
	if ld < 0 || rs.least < 0 || 4*(len(t.q)-1)*ld+rs.most >= 4*len(out) {
		panic(fmt.Sprintf("conv: storing runs of %d channels %d floats apart up to byte %d of %d floats", len(t.q), ld, rs.most, len(out)))
	}
}

// dotRunsGo is the run-storing tile kernel's definition: channel k's sum
// at position r.first + j requantised into out[k·ld + r.off/4 + j] for
// each run r and position j of it.
func dotRunsGo(out []float32, ld int, runs []tileRun, t *tile) {
	for k, q := range t.q {
		var acc [tileLen]int32
		dotChannel(&acc, t, k)
		for _, r := range runs {
			for j := range 16 {
				if r.mask>>(4*j)&0xF != 0 {
					out[k*ld+r.off/4+j] = q.of(acc[r.first+j])
				}
			}
		}
	}
}

// checkQuantiseStaged panics unless every quad's sources (up to q.most,
// checked when q was made) lie in staged and every quad's pixels in dst.
func checkQuantiseStaged(dst []uint8, planeBytes int, staged []float32, stride int, q *quads, pixels int) {
	n := len(q.idx) / 4
	if n < 1 || pixels < 1 || stride < pixels || planeBytes < 0 || len(q.scale) < 4*n || len(q.shift) < 4*n ||
		len(dst) < (n-1)*planeBytes+4*pixels || int(q.most)*stride+pixels > len(staged) || int64(4*stride)*int64(q.most) > math.MaxInt32 {
		panic(fmt.Sprintf("conv: quantising %d quads of %d pixels (sources up to %d, %d floats apart, of %d) into %d bytes", n, pixels, q.most, stride, len(staged), len(dst)))
	}
}

// quantiseStagedGo is the staged quantisation's definition: for quads
// u, pixels p < pixels and channels c < 4, with k = 4u + c,
// dst[u·planeBytes + 4p + c] is staged[idx[k]·stride + p]·scale[k] + shift[k]
// (rounded as Go rounds float32), rounded to an integer, ties to even,
// within [0, 255].
func quantiseStagedGo(dst []uint8, planeBytes int, staged []float32, stride int, q *quads, pixels int) {
	for k, j := range q.idx {
		for p := range pixels {
			v := float32(staged[int(j)*stride+p]*q.scale[k]) + q.shift[k]
			dst[k/4*planeBytes+4*p+k%4] = uint8(roundClamp(v, 0, 255))
		}
	}
}

// of is a sum's requantisation.
func (q requant) of(acc int32) float32 {
	return roundClamp(float32(float32(acc)*q.scale)+q.shift, q.lo, q.hi) * q.step
}
