package cpu

import "github.com/condensenet/condensenet/engine"

// A "same" convolution with few output channels per group (CondenseNet's
// grouped 3×3 in its first blocks: 2 or 4 per group) makes im2col's GEMMs
// too narrow to use the micro-kernel, and its patch matrix costs more to
// build than the arithmetic. Its forward pass is done instead as R·S
// pointwise GEMMs on shifted views of a zero-padded input (its backward
// pass, as every stride-1 convolution's, from output-gradient patches:
// see conv_outpatches.go):
//
//	outPad[q] = Σ_t inPad[q + off_t] · B_t
//
// where q runs over padded pixel positions, off_t is tap t's row offset in
// the padded image, and B_t (C, K) holds tap t's weights block-diagonally
// (zero between groups). The zeros cost G× the arithmetic of a grouped
// convolution, which at these widths is still far cheaper than im2col.
// Outputs at border positions are computed and dropped.

// useShifted reports whether s is done with shifted GEMMs.
func useShifted(s engine.ConvShape) bool {
	return s.Stride == 1 && s.R == s.S && s.R%2 == 1 && s.Pad == s.R/2 && s.R > 1 && s.K/s.G < 8
}

// padded returns the padded image size, the padded pixel count, and the
// margin of rows kept before and after so that every shifted view stays
// inside the buffer.
func (c *Conv) padded() (hp, wp, pp, margin int) {
	s := c.ConvShape
	hp, wp = s.H+2*s.Pad, s.W+2*s.Pad
	return hp, wp, s.N * hp * wp, s.Pad*wp + s.Pad
}

// tapOffset returns tap (r, q)'s row offset in the padded image.
func (c *Conv) tapOffset(r, q, wp int) int { return (r-c.Pad)*wp + (q - c.Pad) }

// padRows copies rows of ch channels (ld apart in src) into the interior of
// a padded buffer dst (pitch ch, margin rows first) and zeroes everything
// else, margins included.
func (c *Conv) padRows(dst, src []float32, ch, ld int) {
	s := c.ConvShape
	hp, wp, pp, margin := c.padded()
	clear(dst[:margin*ch])
	clear(dst[(margin+pp)*ch:])
	parallel(c.Workers, s.N*hp, 2*s.N*hp*wp*ch, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, y := row/hp, row%hp-s.Pad
			d := dst[(margin+row*wp)*ch : (margin+(row+1)*wp)*ch]
			if y < 0 || y >= s.H {
				clear(d)
				continue
			}
			clear(d[:s.Pad*ch])
			clear(d[(s.Pad+s.W)*ch:])
			copyRuns(d[s.Pad*ch:], src[(n*s.H+y)*s.W*ld:], s.W, ch, ch, ld)
		}
	})
}

// interior visits the interior rows of a padded buffer: for each image row,
// the padded buffer's offset (in pixels, margin included) and the unpadded
// pixel index of its first pixel.
func (c *Conv) interior(f func(padPix, pix int)) {
	s := c.ConvShape
	hp, wp, _, margin := c.padded()
	parallel(c.Workers, s.N*s.H, 2*s.N*s.H*s.W*max(s.C, s.K), func(lo, hi int) {
		for row := lo; row < hi; row++ {
			n, y := row/s.H, row%s.H
			f(margin+(n*hp+y+s.Pad)*wp+s.Pad, row*s.W)
		}
	})
}

// blockDiagonal builds wTaps (R·S, C, K) from w (K, C/G, R, S).
func (c *Conv) blockDiagonal(w []float32) {
	s := c.ConvShape
	cg, kg, rs := s.C/s.G, s.K/s.G, s.R*s.S
	c.wTaps = grow(&c.wTaps, s.R*s.S*s.C*s.K)
	clear(c.wTaps)
	for o := range s.K {
		g := o / kg
		for ci := range cg {
			for t := range rs {
				c.wTaps[(t*s.C+g*cg+ci)*s.K+o] = w[(o*cg+ci)*rs+t]
			}
		}
	}
}

func (c *Conv) shiftedForward(out, in, w []float32) {
	s := c.ConvShape
	_, wp, pp, margin := c.padded()
	c.prepare(w, c.blockDiagonal)
	inPad := grow(&c.scratch.in, (pp+2*margin)*s.C)
	outPad := grow(&c.scratch.out, pp*s.K)
	c.padRows(inPad, in, s.C, s.LdIn)
	for r := range s.R {
		for q := range s.S {
			t := r*s.S + q
			add := t > 0 // the taps add up
			// outPad += shift(inPad, off_t) · B_t
			a := inPad[(margin+c.tapOffset(r, q, wp))*s.C:]
			Gemm(false, false, pp, s.K, s.C, a, s.C, c.wTaps[t*s.C*s.K:], s.K, add, outPad, s.K, c.Workers)
		}
	}
	c.interior(func(padPix, pix int) {
		copyRuns(out[pix*s.LdOut:], outPad[(padPix-margin)*s.K:], s.W, s.K, s.LdOut, s.K)
	})
}
