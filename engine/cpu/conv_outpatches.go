package cpu

// The backward pass of a stride-1 convolution needs no input patches.
// Tap (r, s) of output pixel (y, x) reads input pixel (y − pad + r,
// x − pad + s), so input pixel q = (y, x) feeds output pixel
// (y + pad − r, x + pad − s) through that tap. With D the patches of dOut
// per input pixel, D[q, o·R·S + t] = dOut at the pixel q feeds through tap
// t (0 where that is outside the output), and Wt_g rows (o, t) of wPatch:
//
//	dIn[:, g] += D[:, g] · Wt_g      (K/G·R·S → C/G)
//	dwt_g     += D[:, g]ᵀ · in[:, g]
//
// D has K·R·S columns where input patches have C·R·S (a quarter, in
// CondenseNet's bottleneck), the GEMMs do a grouped convolution's exact
// arithmetic (no block-diagonal zeros), and nothing is scattered back.

// outPatches fills d with D's rows for input pixels [r0, r1).
func (c *Conv) outPatches(d, dOut []float32, r0, r1 int) {
	s := c.ConvShape
	rs, oh, ow := s.R*s.S, s.OH(), s.OW()
	row := s.K * rs
	parallel(c.Workers, r1-r0, 2*(r1-r0)*row, func(lo, hi int) {
		for q := r0 + lo; q < r0+hi; q++ {
			n, y, x := q/(s.H*s.W), q/s.W%s.H, q%s.W
			dst := d[(q-r0)*row : (q-r0+1)*row]
			for r := range s.R {
				oy := y + s.Pad - r
				for sx := range s.S {
					ox, t := x+s.Pad-sx, r*s.S+sx
					if oy < 0 || oy >= oh || ox < 0 || ox >= ow {
						for o := range s.K {
							dst[o*rs+t] = 0
						}
						continue
					}
					src := dOut[((n*oh+oy)*ow+ox)*s.LdOut:][:s.K]
					for o, v := range src {
						dst[o*rs+t] = v
					}
				}
			}
		}
	})
}

// backwardByOutputPatches is Backward for a stride-1 convolution.
func (c *Conv) backwardByOutputPatches(dIn, dW, dOut, in, w []float32) {
	s := c.ConvShape
	cg, kg, rs := s.C/s.G, s.K/s.G, s.R*s.S
	p, row, jg := s.N*s.H*s.W, s.K*rs, kg*rs
	c.permuteWeights(w)
	blk := max(mr, patchBytes/4/row/mr*mr)
	d, _ := c.scratch.get(min(blk, p) * row)
	for r0 := 0; r0 < p; r0 += blk {
		r1 := min(p, r0+blk)
		c.outPatches(d, dOut, r0, r1)
		add := r0 > 0 // blocks add up, in order
		for g := range s.G {
			Gemm(false, false, r1-r0, cg, jg, d[g*jg:], row, c.wPatch[g*jg*cg:], cg, c.addsToDIn(), dIn[r0*s.LdIn+g*cg:], s.LdIn, c.Workers)
			Gemm(true, false, jg, cg, r1-r0, d[g*jg:], row, in[r0*s.LdIn+g*cg:], s.LdIn, add, c.dwPatch[g*jg*cg:], cg, c.Workers)
		}
	}
	c.addWeightGrad(dW)
}
