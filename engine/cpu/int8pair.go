package cpu

import (
	"fmt"
	"math"

	"github.com/condensenet/condensenet/engine"
)

// An Int8Pair is two int8 convolutions run as one (see
// engine.Int8Pairer): a 1×1 convolution whose tiles write their outputs,
// as bytes, straight into the next convolution's quad planes (dotQuads),
// which that one then reads without quantising them again. The first's
// output is never stored as floats, and the second's input never
// transposed or rounded.
type Int8Pair struct {
	first, second *Int8Conv
	// dest is where each of the first's output channels goes in the
	// second's quad planes.
	dest []quadDest
	runs tileRuns
}

// tileRuns are a convolution's tiles' outputs cut where a run of
// consecutive places in the destination ends (an image row's end, or
// padding): tile t's runs are runs[start[t]:start[t+1]], and lie in its
// first vectors[t] vectors of sixteen positions. The bytes they write lie
// from least to most after a channel's plane. Only newRuns makes them, so
// that the kernels may trust them.
type tileRuns struct {
	runs        []tileRun
	start       []int
	vectors     []int
	least, most int
}

// A quadDest is an output channel's place in the next convolution's quad
// planes: its quad's plane (a byte offset) and its byte of each quad.
type quadDest struct{ off, lane int }

// A tileRun is the positions of one of a tile's four vectors of sixteen
// whose places follow one another: the vector's first position in the
// tile, mask holding the bits of the bytes that position j's four take,
// shifted 4j (0x1: a quad's first byte; 0xF: a float), and the byte
// offset from a plane where position j's four bytes are at off + 4j.
type tileRun struct {
	first int
	mask  uint64
	off   int
}

// NewInt8Pair returns the pair of int8 convolutions first and second (see
// engine.Int8Pairer). The first must be 1×1, unpadded, and of the same
// images as the second.
func NewInt8Pair(first, second engine.ConvShape, workers int) *Int8Pair {
	f, s := NewInt8Conv(first, workers), NewInt8Conv(second, workers)
	q, a := first.Int8, second.Input
	if first.R != 1 || first.S != 1 || first.Pad != 0 || first.N != second.N || first.H != second.H || first.W != second.W ||
		first.K != second.C || q.Lo < 0 || q.Hi > 255 || q.Step != 1 {
		panic(fmt.Sprintf("conv: int8 pair of %+v and %+v: the first must be an unpadded 1×1 convolution of the second's images, writing its %d input channels as integers in [0, 255]", first, second, second.C))
	}
	inv := make([]int, second.C) // the second's input channel that reads each output of the first
	for j := range inv {
		inv[j] = -1
	}
	for j := range second.C {
		src := j
		if a != nil {
			if a.Scale[j] != 1 || a.Shift[j] != 0 {
				panic(fmt.Sprintf("conv: int8 pair: the second convolution's input %d is transformed (scale %v, shift %v)", j, a.Scale[j], a.Shift[j]))
			}
			src = a.Source(j)
		}
		if src < 0 || src >= second.C || inv[src] >= 0 {
			panic(fmt.Sprintf("conv: int8 pair: the second convolution's input channels are not a permutation of the first's outputs (input %d reads %d)", j, src))
		}
		inv[src] = j
	}
	f.arrange(4, false)
	p := &Int8Pair{first: f, second: s, runs: pairRuns(f, s)}
	for _, j := range inv {
		plane := j/s.cg*s.nq + j%s.cg/4
		d := quadDest{off: 4 * plane * s.plane, lane: j % s.cg % 4}
		if d.off+p.runs.most >= len(s.in8) {
			panic(fmt.Sprintf("conv: int8 pair writes bytes %d to %d of %d", d.off+p.runs.least, d.off+p.runs.most, len(s.in8)))
		}
		p.dest = append(p.dest, d)
	}
	return p
}

// newRuns returns the runs of positions [0, positions) of tiles whose
// places (four bytes each) at gives, -1 for none; lane is the bytes of
// position 0 in a mask.
func newRuns(tiles, positions int, at func(o int) int, lane uint64) tileRuns {
	rs := tileRuns{least: math.MaxInt, most: -1}
	for t := range tiles {
		rs.start = append(rs.start, len(rs.runs))
		rs.vectors = append(rs.vectors, 0)
		for v := 0; v < tileLen; v += 16 {
			last := -2
			for j := 0; j < 16 && t*tileLen+v+j < positions; j++ {
				d := at(t*tileLen + v + j)
				if d < 0 {
					last = -2 // the run ends
					continue
				}
				if d != last+1 {
					rs.runs = append(rs.runs, tileRun{first: v, off: 4 * (d - j)})
					rs.vectors[t] = v/16 + 1
				}
				rs.runs[len(rs.runs)-1].mask |= lane << (4 * j)
				rs.least, rs.most, last = min(rs.least, 4*d), max(rs.most, 4*d+3), d
			}
		}
	}
	rs.start = append(rs.start, len(rs.runs))
	return rs
}

// pairRuns returns the runs of f's tiles' positions (an unpadded 1×1
// convolution's: pixels) in s's quad planes.
func pairRuns(f, s *Int8Conv) tileRuns {
	hw := f.H * f.W
	return newRuns(len(f.tileMost), f.positions, func(o int) int {
		n, y, x := o/hw, o/f.W%f.H, o%f.W
		return (n*s.hp+y+s.Pad)*s.wp + x + s.Pad
	}, 0x1)
}

// Forward computes out from in: the first convolution with w1, the second
// with w2.
func (p *Int8Pair) Forward(out, in, w1, w2 []float32) {
	f, s := p.first, p.second
	f.check(nil, in, w1)
	s.check(out, nil, w2)
	f.prepareWeights(w1)
	s.prepareWeights(w2)
	f.quantise(in)
	each(f.Workers, len(f.tileMost), len(f.tileMost)*tileLen*f.K*len(f.steps)/4, p, (*Int8Pair).tiles)
	s.compute(out)
}

// tiles computes the first convolution's tiles [lo, hi) into the second's
// quad planes, every group in one call.
func (p *Int8Pair) tiles(lo, hi int) {
	f := p.first
	t := f.tile
	for at := lo; at < hi; at++ {
		t.in = f.in8[at*tileLen*4:]
		dotQuads(p.second.in8, &p.runs, at, &t, p.dest)
	}
}

// checkDotQuads panics unless t is a tile of four channels a block and
// every channel's runs lie in dst.
func checkDotQuads(dst []uint8, rs *tileRuns, t *tile, dest []quadDest) {
	checkTile(t, 4)
	if t.paired || len(dest) != len(t.q) || rs.least < 0 {
		panic(fmt.Sprintf("conv: int8 quads tile of %d channels with %d places", len(t.q), len(dest)))
	}
	for _, d := range dest {
		if d.off < 0 || d.lane < 0 || d.lane > 3 || d.off+rs.most >= len(dst) {
			panic(fmt.Sprintf("conv: int8 quads to byte %d of lane %d, up to %d, of %d", d.off, d.lane, d.off+rs.most, len(dst)))
		}
	}
}

// dotQuadsGo is the quads tile kernel's definition: channel k's sum (see
// dotChannelGo) at each position p < 64, requantised (see engine.Requant;
// they are integers in [0, 255]) into byte dest[k].lane of the quads at
// dest[k].off + r.off + 4j for each run r and position j of it, its
// vector's r.first + j.
func dotQuadsGo(dst []uint8, runs []tileRun, t *tile, dest []quadDest) {
	for k, q := range t.q {
		var acc [tileLen]int32
		dotChannel(&acc, t, k)
		d := dest[k]
		for _, r := range runs {
			for j := range 16 {
				if r.mask>>(4*j)&1 != 0 {
					dst[d.off+r.off+4*j+d.lane] = uint8(q.of(acc[r.first+j]))
				}
			}
		}
	}
}
