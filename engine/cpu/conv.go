package cpu

import (
	"fmt"

	"github.com/condensenet/condensenet/engine"
)

// pointwise reports a 1×1, stride-1, unpadded convolution, which is a plain
// GEMM on the input with no copying.
func pointwise(s engine.ConvShape) bool { return s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0 }

func checkConv(s engine.ConvShape) {
	if s.G <= 0 || s.C%s.G != 0 || s.K%s.G != 0 || s.LdIn < s.C || s.LdOut < s.K || s.OH() <= 0 || s.OW() <= 0 {
		panic(fmt.Sprintf("conv: invalid shape %+v", s))
	}
}

// A Conv is a convolution over channels-last views (see engine.ConvShape)
// with its scratch buffers, allocated once.
type Conv struct {
	engine.ConvShape
	Workers int
	col     []float32 // (N·OH·OW, R·S·C/G): one group's input patches
	dcol    []float32 // same shape: their gradient
	wt      []float32 // (K, R·S·C/G): weights in patch order
	dwt     []float32 // (K/G, R·S·C/G): one group's weight gradient in patch order
}

// NewConv allocates a convolution's scratch for shape s.
func NewConv(s engine.ConvShape, workers int) *Conv {
	checkConv(s)
	c := &Conv{ConvShape: s, Workers: workers}
	kk := s.R * s.S * s.C / s.G
	if !pointwise(s) {
		c.col = make([]float32, s.N*s.OH()*s.OW()*kk)
		c.dcol = make([]float32, len(c.col))
	}
	c.wt = make([]float32, s.K*kk)
	c.dwt = make([]float32, s.K/s.G*kk)
	return c
}

// Forward computes out = conv(in, w), overwriting out.
func (c *Conv) Forward(out, in, w []float32) {
	s := c.ConvShape
	cg, kg, kk := s.C/s.G, s.K/s.G, s.R*s.S*s.C/s.G
	p := s.N * s.OH() * s.OW()
	c.permuteWeights(w)
	for g := range s.G {
		a, lda := in[g*cg:], s.LdIn
		if !pointwise(s) {
			c.im2col(in, g)
			a, lda = c.col, kk
		}
		// out[:, g] = patches · w[g]ᵀ
		Gemm(false, true, p, kg, kk, a, lda, c.wt[g*kg*kk:], kk, 0, out[g*kg:], s.LdOut, c.Workers)
	}
}

// Backward accumulates the weight gradient into dW and the input gradient
// into dIn, given the output gradient dOut and the forward input in.
func (c *Conv) Backward(dIn, dW, dOut, in, w []float32) {
	s := c.ConvShape
	cg, kg, kk := s.C/s.G, s.K/s.G, s.R*s.S*s.C/s.G
	p := s.N * s.OH() * s.OW()
	c.permuteWeights(w)
	for g := range s.G {
		a, lda := in[g*cg:], s.LdIn
		if !pointwise(s) {
			c.im2col(in, g)
			a, lda = c.col, kk
		}
		// forward: out[:, g] = patches · w[g]ᵀ, so dw[g] = dOut[:, g]ᵀ · patches
		Gemm(true, false, kg, kk, p, dOut[g*kg:], s.LdOut, a, lda, 0, c.dwt, kk, c.Workers)
		c.addWeightGrad(dW, g)
		// and dPatches = dOut[:, g] · w[g]
		if pointwise(s) {
			Gemm(false, false, p, cg, kg, dOut[g*kg:], s.LdOut, c.wt[g*kg*kk:], kk, 1, dIn[g*cg:], s.LdIn, c.Workers)
			continue
		}
		Gemm(false, false, p, kk, kg, dOut[g*kg:], s.LdOut, c.wt[g*kg*kk:], kk, 0, c.dcol, kk, c.Workers)
		c.col2im(dIn, g)
	}
}

// permuteWeights turns w (K, C/G, R, S) into wt (K, R, S, C/G), the order of
// im2col's patches, in which each tap's channels are contiguous.
func (c *Conv) permuteWeights(w []float32) {
	s := c.ConvShape
	cg, rs := s.C/s.G, s.R*s.S
	for o := range s.K {
		src, dst := w[o*cg*rs:(o+1)*cg*rs], c.wt[o*cg*rs:(o+1)*cg*rs]
		for ci := range cg {
			for t := range rs {
				dst[t*cg+ci] = src[ci*rs+t]
			}
		}
	}
}

// addWeightGrad adds group g's gradient, in patch order, to dW (K, C/G, R, S).
func (c *Conv) addWeightGrad(dW []float32, g int) {
	s := c.ConvShape
	cg, kg, rs := s.C/s.G, s.K/s.G, s.R*s.S
	for o := range kg {
		src, dst := c.dwt[o*cg*rs:(o+1)*cg*rs], dW[(g*kg+o)*cg*rs:(g*kg+o+1)*cg*rs]
		for ci := range cg {
			for t := range rs {
				dst[ci*rs+t] += src[t*cg+ci]
			}
		}
	}
}

// im2col fills col with group g's input patches: row (n, oy, ox), columns
// (r, s, ci); taps outside the image are zero.
func (c *Conv) im2col(in []float32, g int) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N*oh, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, oy := row/oh, row%oh
			for ox := range ow {
				dst := c.col[((row*ow)+ox)*kk:]
				for r := range s.R {
					iy := oy*s.Stride - s.Pad + r
					for q := range s.S {
						ix := ox*s.Stride - s.Pad + q
						d := dst[(r*s.S+q)*cg : (r*s.S+q+1)*cg]
						if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
							clear(d)
							continue
						}
						copy(d, in[((n*s.H+iy)*s.W+ix)*s.LdIn+g*cg:])
					}
				}
			}
		}
	})
}

// col2im adds dcol's patch gradients back onto group g's input pixels.
// Images are independent, so splitting over them keeps writes disjoint.
func (c *Conv) col2im(dIn []float32, g int) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			for oy := range oh {
				for ox := range ow {
					src := c.dcol[((n*oh+oy)*ow+ox)*kk:]
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
							d := dIn[((n*s.H+iy)*s.W+ix)*s.LdIn+g*cg:][:cg]
							for ci, v := range src[(r*s.S+q)*cg : (r*s.S+q+1)*cg] {
								d[ci] += v
							}
						}
					}
				}
			}
		}
	})
}
