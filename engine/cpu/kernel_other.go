//go:build !amd64

package cpu

var useAVX2 = false

func kernel(k int, a, b, c []float32, ldc int, accumulate bool) {
	kernelGo(k, a, b, c, ldc, accumulate)
}
