package cpu

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly micro-kernel.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func kernelAVX2(k int, a, b, c *float32, ldc int, accumulate bool)

func kernel(k int, a, b, c []float32, ldc int, accumulate bool) {
	if useAVX2 && k > 0 {
		// The assembly trusts these lengths; check them here.
		_, _, _ = a[k*mr-1], b[k*nr-1], c[(mr-1)*ldc+nr-1]
		kernelAVX2(k, &a[0], &b[0], &c[0], ldc, accumulate)
		return
	}
	kernelGo(k, a, b, c, ldc, accumulate)
}
