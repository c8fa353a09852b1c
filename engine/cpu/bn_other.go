//go:build !amd64

package cpu

// The assembly kernels exist only on amd64; use has none of them
// elsewhere, so these are never called.
func bnStatsAVX2(s1, s2, x *float32, n, rows, ldx int) { panic("unreachable") }
func normSum512(x *float32, n int, scale, shift, floor float32) float32 {
	panic("unreachable")
}
func bnApplyAVX2(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnBackSumsAVX2(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnBackApplyAVX2(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnStats512(s1, s2, x *float32, n, rows, ldx int) { panic("unreachable") }
func bnApply512(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnBackSums512(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnBackApply512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}

func bnBackSet512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
func bnBackFused512(sg, sgx, dx, x, dy, scale, shift, a *float32, n, rows, ldx, ldy int, floor float32) {
	panic("unreachable")
}
