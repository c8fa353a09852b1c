package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"

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
// kernel (dotTile) takes for two output channels at a time. Outputs in
// the padding's columns and rows are computed and dropped.
type Int8Conv struct {
	engine.ConvShape
	Workers   int
	cg, nq    int    // input channels of a group, and their quads (the last zero-padded)
	hp, wp    int    // the padded images' height and width
	plane     int    // positions of a plane: the images', rounded up to tiles, and the taps' reach
	pairs     int    // pairs of output channels per group (a last odd one padded with zeros)
	offs      []int  // byte offsets of the steps (quad, tap) from a group's first plane
	wt        []int8 // (G, pairs, steps, 2, 4): each pair's weight quads, step by step
	in8       []uint8
	prepared  *float32 // the weights wt was made from (the shape is Fixed)
	positions int      // N·hp·wp
	// Each quad's four source channels in the input rows (0 past the
	// group's channels) and their transforms (0·x + 0 there: a 0 byte).
	qidx           []int32
	qscale, qshift []float32
	rq             []requant
	// staged, if set, is the number of source channels (a multiple of
	// 8) that rows of pixels are transposed in, to be quantised from
	// there (quantiseStaged) instead of gathered (quantiseQuads); stages
	// holds those transposes, one per worker at a time.
	staged int
	stages sync.Pool
	// outOff is each position's output offset, row·LdOut, or -1 for a
	// padding one; tileMost the largest of each tile's.
	outOff, tileMost []int32
}

// requant is engine.Requant's constants for one output channel.
type requant struct{ scale, shift, lo, hi, step float32 }

// tileLen is the positions of a tile.
const tileLen = 64

func checkInt8(s engine.ConvShape) {
	q := s.Int8
	if !s.Fixed || s.Stride != 1 || len(q.Scale) != s.K || len(q.Shift) != s.K || !(q.Lo <= q.Hi) || q.Lo < math.MinInt32/2 || q.Hi > math.MaxInt32/2 {
		panic(fmt.Sprintf("conv: invalid int8 shape %+v (Fixed, stride 1; requant scale %d, shift %d, range [%v, %v])", s, len(q.Scale), len(q.Shift), q.Lo, q.Hi))
	}
	if a := s.Input; a != nil && (len(a.Scale) != s.C || len(a.Shift) != s.C || a.Index != nil && len(a.Index) != s.C) {
		panic(fmt.Sprintf("conv: int8 input transform of %d channels for %d", len(a.Scale), s.C))
	}
}

// NewInt8Conv returns the int8 convolution of shape s (s.Int8 set).
func NewInt8Conv(s engine.ConvShape, workers int) *Int8Conv {
	checkConv(s)
	checkInt8(s)
	c := &Int8Conv{ConvShape: s, Workers: workers, cg: s.C / s.G, hp: s.H + 2*s.Pad, wp: s.W + 2*s.Pad}
	c.nq = (c.cg + 3) / 4
	c.pairs = (s.K/s.G + 1) / 2
	c.positions = s.N * c.hp * c.wp
	c.plane = (c.positions+tileLen-1)/tileLen*tileLen + (s.R-1)*c.wp + s.S - 1
	for q := range c.nq {
		for t := range s.R * s.S {
			c.offs = append(c.offs, 4*(q*c.plane+t/s.S*c.wp+t%s.S))
		}
	}
	c.wt = make([]int8, s.G*c.pairs*len(c.offs)*8)
	c.in8 = make([]uint8, s.G*c.nq*c.plane*4)
	if int64(s.N*s.OH()*s.OW())*int64(s.LdOut) > math.MaxInt32 || int64(16*s.LdIn) > math.MaxInt32 {
		panic(fmt.Sprintf("conv: int8 shape %+v has offsets past int32", s))
	}
	c.outOff = make([]int32, c.plane)
	tiles := (c.positions + tileLen - 1) / tileLen
	c.tileMost = slices.Repeat([]int32{-1}, tiles)
	for o := range c.outOff {
		n, y, x := o/(c.hp*c.wp), o/c.wp%c.hp, o%c.wp
		c.outOff[o] = -1
		if n < s.N && y < s.OH() && x < s.OW() {
			c.outOff[o] = int32(((n*s.OH()+y)*s.OW() + x) * s.LdOut)
			c.tileMost[o/tileLen] = c.outOff[o]
		}
	}
	c.qidx = make([]int32, s.G*c.nq*4)
	c.qscale, c.qshift = make([]float32, len(c.qidx)), make([]float32, len(c.qidx))
	for j := range s.C {
		at := j/c.cg*c.nq*4 + j%c.cg
		c.qidx[at], c.qscale[at] = int32(j), 1
		if a := s.Input; a != nil {
			c.qidx[at], c.qscale[at], c.qshift[at] = int32(a.Source(j)), a.Scale[j], a.Shift[j]
		}
	}
	q := s.Int8
	for k := range s.K {
		c.rq = append(c.rq, requant{q.Scale[k], q.Shift[k], q.Lo, q.Hi, q.Step})
	}
	if sources := (int(slices.Max(c.qidx)) + 8) &^ 7; (s.W%16 == 0 || s.W == 8) && sources <= s.LdIn {
		c.staged = sources
		c.stages.New = func() any { return make([]float32, 16*sources) }
	}
	return c
}

// Forward computes out from in with w, weights (K, C/G, R, S) that are
// integers in [-127, 127].
func (c *Int8Conv) Forward(out, in, w []float32) {
	s := c.ConvShape
	width := s.C // floats of the last input row read
	if a := s.Input; a != nil && a.Index != nil {
		width = engine.CheckIndices("int8 conv input", a.Index, s.LdIn) + 1
	}
	if len(w) < s.Weights() || len(in) < (s.N*s.H*s.W-1)*s.LdIn+width || len(out) < (s.N*s.OH()*s.OW()-1)*s.LdOut+s.K {
		panic(fmt.Sprintf("conv: int8 buffers of %d, %d, %d floats for shape %+v", len(out), len(in), len(w), s))
	}
	c.prepareWeights(w)
	c.quantiseInput(in)
	steps := len(c.offs)
	parallel(c.Workers, len(c.tileMost), len(c.tileMost)*tileLen*s.K*steps/4, func(lo, hi int) {
		var acc [2 * tileLen]int32
		kg := s.K / s.G
		for tile := lo; tile < hi; tile++ {
			most := c.tileMost[tile]
			if most < 0 {
				continue // padding alone
			}
			o0 := tile * tileLen
			offs := (*[tileLen]int32)(c.outOff[o0:])
			for g := range s.G {
				planes := c.in8[(g*c.nq*c.plane+o0)*4:]
				for p := range c.pairs {
					dotTile(&acc, planes, c.offs, c.wt[(g*c.pairs+p)*steps*8:][:steps*8])
					for i := range min(2, kg-2*p) {
						k := g*kg + 2*p + i
						requantScatter(out[k:], offs, most, acc[i*tileLen:], c.rq[k])
					}
				}
			}
		}
	})
}

// prepareWeights arranges the weights as int8 pairs, once for a Fixed shape.
func (c *Int8Conv) prepareWeights(w []float32) {
	if c.prepared == &w[0] {
		return
	}
	s := c.ConvShape
	kg, rs, steps := s.K/s.G, s.R*s.S, len(c.offs)
	for g := range s.G {
		for kk := range kg {
			k, pair, i := g*kg+kk, g*c.pairs+kk/2, kk%2
			for ci := range c.cg {
				for t := range rs {
					v := w[(k*c.cg+ci)*rs+t]
					if v != float32(int8(v)) || v < -127 {
						panic(fmt.Sprintf("conv: int8 weight %v (output %d, input %d, tap %d) is not an integer in [-127, 127]", v, k, ci, t))
					}
					step := ci/4*rs + t
					c.wt[((pair*steps+step)*2+i)*4+ci%4] = int8(v)
				}
			}
		}
	}
	c.prepared = &w[0]
}

// quantiseInput writes the input's quantised values into the planes,
// inside the padding, a quad of an image row at a time.
func (c *Int8Conv) quantiseInput(in []float32) {
	s := c.ConvShape
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*s.C, func(lo, hi int) {
		for ny := lo; ny < hi; ny++ {
			n, y := ny/s.H, ny%s.H
			pos := (n*c.hp+y+s.Pad)*c.wp + s.Pad
			src := in[((n*s.H+y)*s.W)*s.LdIn:]
			if c.staged > 0 {
				c.quantiseStagedRow(c.in8[pos*4:], src)
				continue
			}
			for gq := range s.G * c.nq {
				quad := c.qidx[gq*4:][:4]
				quantiseQuads(c.in8[(gq*c.plane+pos)*4:], src, quad, c.qscale[gq*4:][:4], c.qshift[gq*4:][:4], s.W, s.LdIn)
			}
		}
	})
}

// quantiseStagedRow quantises an image row from src into the planes at
// dst, sixteen (or eight) pixels at a time: their first c.staged
// channels transposed, then each quad's four read from there.
func (c *Int8Conv) quantiseStagedRow(dst []uint8, src []float32) {
	s := c.ConvShape
	staged := c.stages.Get().([]float32)
	defer c.stages.Put(staged)
	for x0 := 0; x0 < s.W; x0 += 16 {
		pixels := min(16, s.W-x0)
		for ch := 0; ch < c.staged; ch += 16 {
			cols := min(16, c.staged-ch)
			if use.transpose {
				transpose(staged[ch*16:], 16, src[x0*s.LdIn+ch:], s.LdIn, pixels, cols, false)
			} else {
				transposeGo(staged[ch*16:], 16, src[x0*s.LdIn+ch:], s.LdIn, pixels, cols, false)
			}
		}
		quantiseStaged(dst[x0*4:], c.plane*4, staged, c.qidx, c.qscale, c.qshift, s.G*c.nq, pixels)
	}
}

// roundClamp rounds v to the nearest integer, ties to even (as the
// vector conversions do), within [lo, hi], integers.
func roundClamp(v, lo, hi float32) float32 {
	return float32(math.RoundToEven(float64(min(max(v, lo), hi))))
}

// checkDotTile panics unless every step's 64 quads lie in in and w holds
// every step's two weight quads: the tile kernel trusts both.
func checkDotTile(in []uint8, offs []int, w []int8) {
	if len(offs) == 0 || len(w) < 8*len(offs) {
		panic(fmt.Sprintf("conv: int8 tile of %d steps with %d weights", len(offs), len(w)))
	}
	for _, o := range offs {
		if o < 0 || o > len(in)-4*tileLen {
			panic(fmt.Sprintf("conv: int8 tile step at byte %d of %d", o, len(in)))
		}
	}
}

// dotTileGo is the tile kernel's definition: for channels i = 0, 1 and
// positions p < 64, acc[i·64 + p] is the sum over steps s and bytes b of
// in[offs[s] + 4p + b] · w[8s + 4i + b].
func dotTileGo(acc *[2 * tileLen]int32, in []uint8, offs []int, w []int8) {
	clear(acc[:])
	for s, o := range offs {
		for i := range 2 {
			wq := w[8*s+4*i:][:4]
			for p := range tileLen {
				x := in[o+4*p:][:4]
				acc[i*tileLen+p] += int32(x[0])*int32(wq[0]) + int32(x[1])*int32(wq[1]) + int32(x[2])*int32(wq[2]) + int32(x[3])*int32(wq[3])
			}
		}
	}
}

func checkQuantiseQuads(dst []uint8, src []float32, idx []int32, scale, shift []float32, n, ldIn int) {
	if n < 1 || len(idx) < 4 || len(scale) < 4 || len(shift) < 4 || len(dst) < 4*n || int64(16*ldIn) > math.MaxInt32 {
		panic(fmt.Sprintf("conv: quantising %d pixels into %d bytes with %d, %d, %d channel constants", n, len(dst), len(idx), len(scale), len(shift)))
	}
	for _, j := range idx[:4] {
		if j < 0 || (n-1)*ldIn+int(j) >= len(src) {
			panic(fmt.Sprintf("conv: quantising channel %d of %d pixels %d floats apart from %d floats", j, n, ldIn, len(src)))
		}
	}
}

// quantiseQuadsGo is the quantising gather's definition: for pixels p < n
// (rows ldIn floats apart) and channels c < 4, dst[4p + c] is
// src[p·ldIn + idx[c]]·scale[c] + shift[c] (rounded as Go rounds float32),
// rounded to an integer, ties to even, within [0, 255].
func quantiseQuadsGo(dst []uint8, src []float32, idx []int32, scale, shift []float32, n, ldIn int) {
	for p := range n {
		for c := range 4 {
			v := float32(src[p*ldIn+int(idx[c])]*scale[c]) + shift[c]
			dst[4*p+c] = uint8(roundClamp(v, 0, 255))
		}
	}
}

// checkRequantScatter panics unless out holds the tile's largest output
// offset, most (which its caller took from the same offsets), and acc a
// tile of sums.
func checkRequantScatter(out []float32, most int32, acc []int32) {
	if len(acc) < tileLen || int(most) >= len(out) {
		panic(fmt.Sprintf("conv: requantising %d sums to offsets up to %d of %d floats", len(acc), most, len(out)))
	}
}

// requantScatterGo is the requantising scatter's definition: for
// positions p < 64 with offs[p] ≥ 0, out[offs[p]] is q's requantisation of
// acc[p] (see engine.Requant).
func requantScatterGo(out []float32, offs *[tileLen]int32, acc []int32, q requant) {
	for p, o := range offs {
		if o >= 0 {
			out[o] = roundClamp(float32(float32(acc[p])*q.scale)+q.shift, q.lo, q.hi) * q.step
		}
	}
}

func checkQuantiseStaged(dst []uint8, planeBytes int, staged []float32, idx []int32, scale, shift []float32, quads, pixels int) {
	n := 4 * quads
	if quads < 1 || pixels < 1 || pixels > 16 || planeBytes < 0 || len(idx) < n || len(scale) < n || len(shift) < n || len(dst) < (quads-1)*planeBytes+4*pixels {
		panic(fmt.Sprintf("conv: quantising %d staged quads of %d pixels, planes %d bytes apart, into %d bytes", quads, pixels, planeBytes, len(dst)))
	}
	for _, j := range idx[:n] {
		if j < 0 || int(j) >= len(staged)/16 {
			panic(fmt.Sprintf("conv: quantising staged channel %d of %d", j, len(staged)/16))
		}
	}
}

// quantiseStagedGo is the staged quantisation's definition: for quads
// u < quads, pixels p < pixels and channels c < 4, with j = idx[4u + c],
// dst[u·planeBytes + 4p + c] is staged[16j + p]·scale[4u + c] + shift[4u + c]
// (rounded as Go rounds float32), rounded to an integer, ties to even,
// within [0, 255].
func quantiseStagedGo(dst []uint8, planeBytes int, staged []float32, idx []int32, scale, shift []float32, quads, pixels int) {
	for u := range quads {
		for p := range pixels {
			for c := range 4 {
				k := 4*u + c
				v := float32(staged[16*int(idx[k])+p]*scale[k]) + shift[k]
				dst[u*planeBytes+4*p+c] = uint8(roundClamp(v, 0, 255))
			}
		}
	}
}
