package cpu

import (
	"fmt"
	"math"

	"github.com/condensenet/condensenet/engine"
)

// An Int8Conv is a convolution in 8-bit integers (engine.Requant says
// what it computes). It quantises its input once into a zero-padded byte
// image, so the padding is the integer 0 and every tap reads in bounds,
// and sums exact int32 products over each output's taps and channels.
type Int8Conv struct {
	engine.ConvShape
	Workers int
	cg, cq  int     // input channels of a group, and that rounded up to 4 (a VNNI quad)
	hp, wp  int     // the padded input's height and width
	w8      []int8  // (K, R·S, cq): the weights, each group's channels zero-padded to cq
	in8     []uint8 // (N, hp, wp, G·cq): the quantised input; its borders stay 0
	// prepared is the weights w8 was made from (the shape is Fixed).
	prepared *float32
}

func checkInt8(s engine.ConvShape) {
	q := s.Int8
	if !s.Fixed || len(q.Scale) != s.K || len(q.Shift) != s.K || !(q.Lo <= q.Hi) || q.Lo < math.MinInt32/2 || q.Hi > math.MaxInt32/2 {
		panic(fmt.Sprintf("conv: invalid int8 shape %+v (requant scale %d, shift %d, range [%v, %v])", s, len(q.Scale), len(q.Shift), q.Lo, q.Hi))
	}
	if a := s.Input; a != nil && (len(a.Scale) != s.C || len(a.Shift) != s.C || a.Index != nil && len(a.Index) != s.C) {
		panic(fmt.Sprintf("conv: int8 input transform of %d channels for %d", len(a.Scale), s.C))
	}
}

// NewInt8Conv returns the int8 convolution of shape s (s.Int8 set).
func NewInt8Conv(s engine.ConvShape, workers int) *Int8Conv {
	checkConv(s)
	checkInt8(s)
	cg := s.C / s.G
	c := &Int8Conv{ConvShape: s, Workers: workers, cg: cg, cq: (cg + 3) &^ 3, hp: s.H + 2*s.Pad, wp: s.W + 2*s.Pad}
	c.in8 = make([]uint8, s.N*c.hp*c.wp*s.G*c.cq)
	c.w8 = make([]int8, s.K*s.R*s.S*c.cq)
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
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N*oh, s.N*oh*ow*s.K*s.R*s.S*c.cg/8, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			c.outputRow(out, row/oh, row%oh)
		}
	})
}

// prepareWeights converts the weights to int8, once for a Fixed shape.
func (c *Int8Conv) prepareWeights(w []float32) {
	if c.prepared == &w[0] {
		return
	}
	s := c.ConvShape
	rs := s.R * s.S
	for k := range s.K {
		for ci := range c.cg {
			for t := range rs {
				v := w[(k*c.cg+ci)*rs+t]
				if v != float32(int8(v)) || v < -127 {
					panic(fmt.Sprintf("conv: int8 weight %v (output %d, input %d, tap %d) is not an integer in [-127, 127]", v, k, ci, t))
				}
				c.w8[(k*rs+t)*c.cq+ci] = int8(v)
			}
		}
	}
	c.prepared = &w[0]
}

// quantiseInput writes the input's quantised values inside in8's borders.
func (c *Int8Conv) quantiseInput(in []float32) {
	s := c.ConvShape
	a, row := s.Input, s.G*c.cq
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*s.C, func(lo, hi int) {
		for ny := lo; ny < hi; ny++ {
			n, y := ny/s.H, ny%s.H
			for x := range s.W {
				src := in[((n*s.H+y)*s.W+x)*s.LdIn:]
				dst := c.in8[((n*c.hp+y+s.Pad)*c.wp+x+s.Pad)*row:]
				for j := range s.C {
					var v float32
					if a == nil {
						v = src[j]
					} else {
						v = float32(src[a.Source(j)]*a.Scale[j]) + a.Shift[j]
					}
					dst[j/c.cg*c.cq+j%c.cg] = uint8(roundClamp(v, 0, 255))
				}
			}
		}
	})
}

// outputRow computes output row oy of image n.
func (c *Int8Conv) outputRow(out []float32, n, oy int) {
	s, q := c.ConvShape, c.Int8
	kg, rs, row := s.K/s.G, s.R*s.S, s.G*c.cq
	for ox := range s.OW() {
		o := out[((n*s.OH()+oy)*s.OW()+ox)*s.LdOut:]
		for k := range s.K {
			g := k / kg
			var sum int32
			for r := range s.R {
				for t := range s.S {
					x := c.in8[((n*c.hp+oy*s.Stride+r)*c.wp+ox*s.Stride+t)*row+g*c.cq:][:c.cq]
					wk := c.w8[(k*rs+r*s.S+t)*c.cq:][:c.cq]
					for i, v := range x {
						sum += int32(v) * int32(wk[i])
					}
				}
			}
			o[k] = roundClamp(float32(float32(sum)*q.Scale[k])+q.Shift[k], q.Lo, q.Hi) * q.Step
		}
	}
}

// roundClamp rounds v to the nearest integer, ties to even (as the
// vector conversions do), within [lo, hi], integers.
func roundClamp(v, lo, hi float32) float32 {
	return float32(math.RoundToEven(float64(min(max(v, lo), hi))))
}
