package cpu

import "github.com/condensenet/condensenet/engine"

// A grouped 3×3 convolution (stride 1, padding 1) is done directly where
// the CPU has AVX-512, with a grouped convolution's exact arithmetic. The
// input is copied once into zero-padded planes, one per channel and
// image, (H+2)·(W+2) floats each, flattened: output pixel (y, x) is then
// position q = y·(W+2) + x, and tap (r, s) reads the plane at
// q + r·(W+2) + s. So 16 consecutive positions, across image rows, read 16
// consecutive floats for every tap, and a micro-kernel (conv3x3Pair512)
// computes two output channels over 64 positions at a time, the input
// vectors shared by both channels. The two positions per row past the
// image's edge are computed and dropped (6% of the work at 32×32, 20% at
// 8×8). The shifted GEMMs this replaces computed G times the arithmetic.

// useDirect reports whether s is done directly.
func useDirect(s engine.ConvShape) bool {
	return useAVX512 && s.R == 3 && s.S == 3 && s.Stride == 1 && s.Pad == 1
}

// directBlock is the positions the micro-kernel covers per call.
const directBlock = 64

// directPlanes returns the positions computed per image (whole blocks) and
// the floats per plane: the positions plus the farthest tap's reach.
func (c *Conv) directPlanes() (positions, planeLen int) {
	s := c.ConvShape
	rowStride := s.W + 2
	positions = (s.H*rowStride + directBlock - 1) / directBlock * directBlock
	return positions, positions + 2*rowStride + 2
}

// pairWeights rearranges w (K, C/G, 3, 3) for the micro-kernel: for each
// group and pair of its output channels, (C/G, 9, 2), a missing second
// channel (an odd K/G) zero.
func (c *Conv) pairWeights(w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	pairs := (kg + 1) / 2
	for g := range s.G {
		for p := range pairs {
			dst := c.wk[(g*pairs+p)*cg*18:][:cg*18]
			for ci := range cg {
				for t := range 9 {
					for j := range 2 {
						v := float32(0)
						if o := 2*p + j; o < kg {
							v = w[((g*kg+o)*cg+ci)*9+t]
						}
						dst[(ci*9+t)*2+j] = v
					}
				}
			}
		}
	}
}

func (c *Conv) directForward(out, in, w []float32) {
	s := c.ConvShape
	cg, kg := s.C/s.G, s.K/s.G
	pairs, rowStride := (kg+1)/2, s.W+2
	positions, planeLen := c.directPlanes()
	if len(c.wk) == 0 {
		c.wk = make([]float32, s.G*pairs*cg*18)
	}
	c.prepare(w, c.pairWeights)
	planes := grow(&c.scratch.in, s.N*s.C*planeLen)
	// The planes, a pixel row at a time: each pixel's channels go to their
	// planes; the borders, which the scratch may not hold as zeros, are
	// cleared.
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*s.C, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, y := row/s.H, row%s.H
			for ch := range s.C {
				plane := planes[(n*s.C+ch)*planeLen : (n*s.C+ch+1)*planeLen]
				if y == 0 {
					clear(plane[:rowStride+1])
				}
				if y == s.H-1 {
					clear(plane[(s.H+1)*rowStride-1:])
				}
				plane[(y+1)*rowStride] = 0   // left border
				plane[(y+2)*rowStride-1] = 0 // right border
			}
			src := in[(n*s.H+y)*s.W*s.LdIn:]
			at := (n*s.C)*planeLen + (y+1)*rowStride + 1
			for x := range s.W {
				for ch, v := range src[x*s.LdIn : x*s.LdIn+s.C] {
					planes[at+ch*planeLen+x] = v
				}
			}
		}
	})
	// The convolution, an (image, group, pair of channels) at a time; the
	// work counts multiply-adds as the row kernels count floats, about
	// twelve to one in time.
	parallel(c.Workers, s.N*s.G*pairs, s.N*positions*s.K*cg*9/12, func(lo, hi int) {
		var acc [2 * directBlock]float32
		for item := lo; item < hi; item++ {
			n, g, p := item/(s.G*pairs), item/pairs%s.G, item%pairs
			wk := c.wk[(g*pairs+p)*cg*18:][:cg*18]
			base := (n*s.C + g*cg) * planeLen
			o, two := g*kg+2*p, 2*p+1 < kg
			for q0 := 0; q0 < positions; q0 += directBlock {
				_ = planes[base+(cg-1)*planeLen+q0+directBlock-1+2*rowStride+2] // the kernel's farthest read
				conv3x3Pair512(&acc[0], &planes[base+q0], &wk[0], cg, planeLen, rowStride)
				y, x := q0/rowStride, q0%rowStride
				for i := range directBlock {
					if y >= s.H {
						break
					}
					if x < s.W {
						at := ((n*s.H+y)*s.W+x)*s.LdOut + o
						out[at] = acc[i]
						if two {
							out[at+1] = acc[directBlock+i]
						}
					}
					if x++; x == rowStride {
						y, x = y+1, 0
					}
				}
			}
		}
	})
}
