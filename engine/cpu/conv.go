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

// A Conv is a convolution over channels-last views (see engine.ConvShape).
// Its patch buffers live in a Scratch shared with the other convolutions of
// a network, since only one runs at a time.
type Conv struct {
	engine.ConvShape
	Workers int
	scratch *Scratch
	wt      []float32 // (K, R·S·C/G): weights in patch order
	dwt     []float32 // (K/G, R·S·C/G): one group's weight gradient in patch order
}

// Scratch holds the patch matrices of convolutions that run one at a time.
// It grows to the largest request and then stays, so a network allocates
// it during its first step only. Not safe for concurrent use.
type Scratch struct {
	col  []float32 // (N·OH·OW, G·R·S·C/G): input patches, group by group
	dcol []float32 // same shape: their gradient
}

func (s *Scratch) get(n int) (col, dcol []float32) {
	if len(s.col) < n {
		s.col, s.dcol = make([]float32, n), make([]float32, n)
	}
	return s.col[:n], s.dcol[:n]
}

// NewConv returns a convolution of shape s that keeps its patches in
// scratch (nil: its own).
func NewConv(s engine.ConvShape, workers int, scratch *Scratch) *Conv {
	checkConv(s)
	if scratch == nil {
		scratch = new(Scratch)
	}
	kk := s.R * s.S * s.C / s.G
	return &Conv{ConvShape: s, Workers: workers, scratch: scratch,
		wt: make([]float32, s.K*kk), dwt: make([]float32, s.K/s.G*kk)}
}

// patches returns group g's patch matrix and its row stride: the input
// itself for a pointwise convolution, else the patch buffer.
func (c *Conv) patches(in, col []float32, g int) ([]float32, int) {
	s := c.ConvShape
	if pointwise(s) {
		return in[g*s.C/s.G:], s.LdIn
	}
	kk := s.R * s.S * s.C / s.G
	return col[g*kk:], s.G * kk
}

// Forward computes out = conv(in, w), overwriting out.
func (c *Conv) Forward(out, in, w []float32) {
	s := c.ConvShape
	kg, kk := s.K/s.G, s.R*s.S*s.C/s.G
	p := s.N * s.OH() * s.OW()
	c.permuteWeights(w)
	col, _ := c.scratch.get(p * s.G * kk)
	if !pointwise(s) {
		c.im2col(col, in)
	}
	for g := range s.G {
		a, lda := c.patches(in, col, g)
		// out[:, g] = patches[g] · w[g]ᵀ
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
	col, dcol := c.scratch.get(p * s.G * kk)
	if !pointwise(s) {
		c.im2col(col, in)
	}
	for g := range s.G {
		a, lda := c.patches(in, col, g)
		// forward: out[:, g] = patches[g] · w[g]ᵀ, so dw[g] = dOut[:, g]ᵀ · patches[g]
		Gemm(true, false, kg, kk, p, dOut[g*kg:], s.LdOut, a, lda, 0, c.dwt, kk, c.Workers)
		c.addWeightGrad(dW, g)
		// and dPatches[g] = dOut[:, g] · w[g]
		if pointwise(s) {
			Gemm(false, false, p, cg, kg, dOut[g*kg:], s.LdOut, c.wt[g*kg*kk:], kk, 1, dIn[g*cg:], s.LdIn, c.Workers)
			continue
		}
		Gemm(false, false, p, kk, kg, dOut[g*kg:], s.LdOut, c.wt[g*kg*kk:], kk, 0, dcol[g*kk:], s.G*kk, c.Workers)
	}
	if !pointwise(s) {
		c.col2im(dIn, dcol)
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

// im2col fills col (N·OH·OW, G·R·S·C/G) with every group's input patches:
// row (n, oy, ox), columns (g, r, s, ci); taps outside the image are zero.
// One pass over the input serves all groups.
func (c *Conv) im2col(col, in []float32) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N*oh, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, oy := row/oh, row%oh
			for ox := range ow {
				dst := col[(row*ow+ox)*s.G*kk:]
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
						src := in[((n*s.H+iy)*s.W+ix)*s.LdIn:]
						for g := range s.G {
							copySmall(dst[g*kk+tap:g*kk+tap+cg], src[g*cg:g*cg+cg])
						}
					}
				}
			}
		}
	})
}

// col2im adds dcol's patch gradients back onto the input pixels. Images are
// independent, so splitting over them keeps writes disjoint.
func (c *Conv) col2im(dIn, dcol []float32) {
	s := c.ConvShape
	cg, kk := s.C/s.G, s.R*s.S*s.C/s.G
	oh, ow := s.OH(), s.OW()
	parallel(c.Workers, s.N, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			for oy := range oh {
				for ox := range ow {
					src := dcol[((n*oh+oy)*ow+ox)*s.G*kk:]
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
							d := dIn[((n*s.H+iy)*s.W+ix)*s.LdIn:]
							for g := range s.G {
								addSmall(d[g*cg:g*cg+cg], src[g*kk+tap:g*kk+tap+cg])
							}
						}
					}
				}
			}
		}
	})
}

// copySmall copies a short channel run; an element loop beats a memmove
// call at these sizes (8 to 32 floats).
func copySmall(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = v
	}
}

func addSmall(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
