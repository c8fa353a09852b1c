package cpu

// Row kernels of BatchNorm: each walks `rows` rows of n channels. They run
// in assembly on whole groups of 8 channels where the CPU allows, and in Go
// on the rest; both compute the same thing, the Go code being the
// definition. floor is 0 for a fused ReLU and -Inf without one.

// bnStats adds each row's values to s1 and their squares to s2.
func bnStats(s1, s2, x []float32, n, rows, ldx int) {
	n8 := avxChannels(n, rows)
	if n8 > 0 {
		_, _, _ = s1[n8-1], s2[n8-1], x[(rows-1)*ldx+n8-1]
		bnStatsAVX2(&s1[0], &s2[0], &x[0], n8, rows, ldx)
	}
	for r := range rows {
		xr := x[r*ldx : r*ldx+n]
		for c := n8; c < n; c++ {
			s1[c] += xr[c]
			s2[c] += xr[c] * xr[c]
		}
	}
}

// bnApply writes y = max(x·scale + shift, floor).
func bnApply(y, x, scale, shift []float32, n, rows, ldx, ldy int, floor float32) {
	n8 := avxChannels(n, rows)
	if n8 > 0 {
		_, _, _, _ = y[(rows-1)*ldy+n8-1], x[(rows-1)*ldx+n8-1], scale[n8-1], shift[n8-1]
		bnApplyAVX2(&y[0], &x[0], &scale[0], &shift[0], n8, rows, ldx, ldy, floor)
	}
	for r := range rows {
		xr, yr := x[r*ldx:r*ldx+n], y[r*ldy:r*ldy+n]
		for c := n8; c < n; c++ {
			yr[c] = max(xr[c]*scale[c]+shift[c], floor)
		}
	}
}

// bnBackSums adds g and g·x to sg and sgx, where g is dy where y > floor
// and 0 elsewhere.
func bnBackSums(sg, sgx, x, dy, y []float32, n, rows, ldx, ldy int, floor float32) {
	n8 := avxChannels(n, rows)
	if n8 > 0 {
		_, _, _, _, _ = sg[n8-1], sgx[n8-1], x[(rows-1)*ldx+n8-1], dy[(rows-1)*ldy+n8-1], y[(rows-1)*ldy+n8-1]
		bnBackSumsAVX2(&sg[0], &sgx[0], &x[0], &dy[0], &y[0], n8, rows, ldx, ldy, floor)
	}
	for r := range rows {
		xr, dyr, yr := x[r*ldx:r*ldx+n], dy[r*ldy:r*ldy+n], y[r*ldy:r*ldy+n]
		for c := n8; c < n; c++ {
			if yr[c] > floor {
				sg[c] += dyr[c]
				sgx[c] += dyr[c] * xr[c]
			}
		}
	}
}

// bnBackApply adds a·g + b·x + c to dx, g as in bnBackSums.
func bnBackApply(dx, x, dy, y, a, b, c []float32, n, rows, ldx, ldy int, floor float32) {
	n8 := avxChannels(n, rows)
	if n8 > 0 {
		_, _, _, _ = dx[(rows-1)*ldx+n8-1], x[(rows-1)*ldx+n8-1], dy[(rows-1)*ldy+n8-1], y[(rows-1)*ldy+n8-1]
		_, _, _ = a[n8-1], b[n8-1], c[n8-1]
		bnBackApplyAVX2(&dx[0], &x[0], &dy[0], &y[0], &a[0], &b[0], &c[0], n8, rows, ldx, ldy, floor)
	}
	for r := range rows {
		dxr, xr, dyr, yr := dx[r*ldx:r*ldx+n], x[r*ldx:r*ldx+n], dy[r*ldy:r*ldy+n], y[r*ldy:r*ldy+n]
		for ch := n8; ch < n; ch++ {
			g := float32(0)
			if yr[ch] > floor {
				g = dyr[ch]
			}
			dxr[ch] += a[ch]*g + b[ch]*xr[ch] + c[ch]
		}
	}
}

// avxChannels returns how many leading channels the assembly handles.
func avxChannels(n, rows int) int {
	if !useAVX2 || rows == 0 {
		return 0
	}
	return n &^ 7
}
