package cpu

// Row kernels of BatchNorm: each walks `rows` rows of n channels. They run
// in assembly where the CPU allows (with AVX-512 on every channel, with
// AVX2 on whole groups of 8) and in Go on the rest; all compute the same
// thing, the Go code being the definition. floor is 0 for a fused ReLU
// and -Inf without one.

// bnStats adds each row's values to s1 and their squares to s2.
func bnStats(s1, s2, x []float32, n, rows, ldx int) {
	if done := asmChannels(n, rows); done > 0 {
		_, _, _ = s1[done-1], s2[done-1], x[(rows-1)*ldx+done-1]
		if use.bnAll {
			bnStats512(&s1[0], &s2[0], &x[0], n, rows, ldx)
			return
		}
		bnStatsAVX2(&s1[0], &s2[0], &x[0], done, rows, ldx)
		s1, s2, x, n = s1[done:], s2[done:], x[done:], n-done
	}
	for r := range rows {
		xr := x[r*ldx : r*ldx+n]
		for c := range n {
			s1[c] += xr[c]
			s2[c] += xr[c] * xr[c]
		}
	}
}

// bnApply writes y = max(x·scale + shift, floor).
func bnApply(y, x, scale, shift []float32, n, rows, ldx, ldy int, floor float32) {
	if done := asmChannels(n, rows); done > 0 {
		_, _, _, _ = y[(rows-1)*ldy+done-1], x[(rows-1)*ldx+done-1], scale[done-1], shift[done-1]
		if use.bnAll {
			bnApply512(&y[0], &x[0], &scale[0], &shift[0], n, rows, ldx, ldy, floor)
			return
		}
		bnApplyAVX2(&y[0], &x[0], &scale[0], &shift[0], done, rows, ldx, ldy, floor)
		y, x, scale, shift, n = y[done:], x[done:], scale[done:], shift[done:], n-done
	}
	for r := range rows {
		xr, yr := x[r*ldx:r*ldx+n], y[r*ldy:r*ldy+n]
		for c := range n {
			yr[c] = max(affine(xr[c], scale[c], shift[c]), floor)
		}
	}
}

// affine is the forward's output before its floor; the backward kernels
// compute it again, with the same instructions, for the ReLU's mask.
func affine(x, scale, shift float32) float32 { return x*scale + shift }

// bnBackSums adds g and g·x to sg and sgx, where g is dy where the
// forward's x·scale + shift is above floor and 0 elsewhere.
func bnBackSums(sg, sgx, x, dy, scale, shift []float32, n, rows, ldx, ldy int, floor float32) {
	if done := asmChannels(n, rows); done > 0 {
		_, _, _, _ = sg[done-1], sgx[done-1], x[(rows-1)*ldx+done-1], dy[(rows-1)*ldy+done-1]
		_, _ = scale[done-1], shift[done-1]
		if use.bnAll {
			bnBackSums512(&sg[0], &sgx[0], &x[0], &dy[0], &scale[0], &shift[0], n, rows, ldx, ldy, floor)
			return
		}
		bnBackSumsAVX2(&sg[0], &sgx[0], &x[0], &dy[0], &scale[0], &shift[0], done, rows, ldx, ldy, floor)
		sg, sgx, x, dy, scale, shift, n = sg[done:], sgx[done:], x[done:], dy[done:], scale[done:], shift[done:], n-done
	}
	for r := range rows {
		xr, dyr := x[r*ldx:r*ldx+n], dy[r*ldy:r*ldy+n]
		for c := range n {
			if affine(xr[c], scale[c], shift[c]) > floor {
				sg[c] += dyr[c]
				sgx[c] += dyr[c] * xr[c]
			}
		}
	}
}

// bnBackApply adds a·g + b·x + c to dx, g as in bnBackSums, or with set
// writes it there (as adding it to zeros would).
func bnBackApply(dx, x, dy, scale, shift, a, b, c []float32, n, rows, ldx, ldy int, floor float32, set bool) {
	if set && !use.bnAll {
		for r := range rows {
			clear(dx[r*ldx : r*ldx+n])
		}
	}
	if done := asmChannels(n, rows); done > 0 {
		_, _, _ = dx[(rows-1)*ldx+done-1], x[(rows-1)*ldx+done-1], dy[(rows-1)*ldy+done-1]
		_, _, _, _, _ = scale[done-1], shift[done-1], a[done-1], b[done-1], c[done-1]
		if use.bnAll && set {
			bnBackSet512(&dx[0], &x[0], &dy[0], &scale[0], &shift[0], &a[0], &b[0], &c[0], n, rows, ldx, ldy, floor)
			return
		}
		if use.bnAll {
			bnBackApply512(&dx[0], &x[0], &dy[0], &scale[0], &shift[0], &a[0], &b[0], &c[0], n, rows, ldx, ldy, floor)
			return
		}
		bnBackApplyAVX2(&dx[0], &x[0], &dy[0], &scale[0], &shift[0], &a[0], &b[0], &c[0], done, rows, ldx, ldy, floor)
		dx, x, dy, n = dx[done:], x[done:], dy[done:], n-done
		scale, shift, a, b, c = scale[done:], shift[done:], a[done:], b[done:], c[done:]
	}
	for r := range rows {
		dxr, xr, dyr := dx[r*ldx:r*ldx+n], x[r*ldx:r*ldx+n], dy[r*ldy:r*ldy+n]
		for ch := range n {
			g := float32(0)
			if affine(xr[ch], scale[ch], shift[ch]) > floor {
				g = dyr[ch]
			}
			dxr[ch] += a[ch]*g + b[ch]*xr[ch] + c[ch]
		}
	}
}

// bnBackFused adds g and g·x to sg and sgx, as bnBackSums, and a·g to dx:
// a BatchNorm's backward pass but for the part of dx linear in x, b·x + c,
// which Moments.Settle adds later (for every BatchNorm reading a channel
// at once). AVX-512 only, where the others run in Go.
func bnBackFused(sg, sgx, dx, x, dy, scale, shift, a []float32, n, rows, ldx, ldy int, floor float32) {
	if rows > 0 && use.bnAll {
		_, _, _, _ = sg[n-1], sgx[n-1], dx[(rows-1)*ldx+n-1], x[(rows-1)*ldx+n-1]
		_, _, _, _ = dy[(rows-1)*ldy+n-1], scale[n-1], shift[n-1], a[n-1]
		bnBackFused512(&sg[0], &sgx[0], &dx[0], &x[0], &dy[0], &scale[0], &shift[0], &a[0], n, rows, ldx, ldy, floor)
		return
	}
	for r := range rows {
		dxr, xr, dyr := dx[r*ldx:r*ldx+n], x[r*ldx:r*ldx+n], dy[r*ldy:r*ldy+n]
		for c := range n {
			if affine(xr[c], scale[c], shift[c]) > floor {
				g := dyr[c]
				sg[c] += g
				sgx[c] += g * xr[c]
				dxr[c] += a[c] * g
			}
		}
	}
}

// asmChannels returns how many leading channels of rows rows the assembly
// handles: all of them with AVX-512, whole eights with AVX2.
func asmChannels(n, rows int) int {
	switch {
	case rows == 0 || !use.bnEights:
		return 0
	case use.bnAll:
		return n
	}
	return n &^ 7
}

// normSum returns the sum of max(float32(x·scale) + shift, floor) over x,
// as normSumGo sums it.
func normSum(x []float32, scale, shift, floor float32) float32 {
	if use.bnAll && len(x) > 0 {
		return normSum512(&x[0], len(x), scale, shift, floor)
	}
	return normSumGo(x, scale, shift, floor)
}

// normSumGo is normSum's definition: value p goes into lane p%16 in
// order, and the lanes are added as halves: lane i and i+8, then i and
// i+4, i+2, i+1 (a 512-bit register's sums, folded).
func normSumGo(x []float32, scale, shift, floor float32) float32 {
	var lanes [16]float32
	for p, v := range x {
		lanes[p%16] += max(float32(v*scale)+shift, floor)
	}
	for half := 8; half > 0; half /= 2 {
		for i := range half {
			lanes[i] += lanes[i+half]
		}
	}
	return lanes[0]
}
