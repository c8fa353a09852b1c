package cpu

//go:noescape
func normSum512(x *float32, n int, scale, shift, floor float32) float32

//go:noescape
func bnStatsAVX2(s1, s2, x *float32, n, rows, ldx int)

//go:noescape
func bnApplyAVX2(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackSumsAVX2(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackApplyAVX2(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnStats512(s1, s2, x *float32, n, rows, ldx int)

//go:noescape
func bnApply512(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackSums512(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackFused512(sg, sgx, dx, x, dy, scale, shift, a *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackApply512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)

//go:noescape
func bnBackSet512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
