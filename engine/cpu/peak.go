package cpu

import (
	"sync"
	"time"
)

// PeakGFLOPs returns one core's peak rate in GFLOP/s with the widest FMAs
// the kernels use (512-bit where the CPU has AVX-512), measured once per
// process on registers alone: what a kernel's share of the machine is
// taken against. It takes about 20 ms the first time.
var PeakGFLOPs = sync.OnceValue(func() float64 { return measurePeak(fmaRounds) })

// PeakInt8GOPs is PeakGFLOPs for the int8 kernels: one core's rate of
// uint8·int8 operations (2 per multiply-add) with 512-bit VPDPBUSDs, or
// where the CPU has no AVX-512 VNNI with the AVX-512BW instructions the
// kernels use in their place; 0 without AVX-512.
var PeakInt8GOPs = sync.OnceValue(func() float64 { return measurePeak(dotRounds) })

// measurePeak is the best of three runs of rounds, which returns the
// operations it did, in G a second.
func measurePeak(rounds func(n int) float64) float64 {
	rounds(1 << 12) // wake the core and its vector units
	best := 0.0
	for range 3 {
		start := time.Now()
		ops := rounds(1 << 18)
		best = max(best, ops/time.Since(start).Seconds()/1e9)
	}
	return best
}

// fmaRoundsGo is fmaRounds without assembly: 12 independent multiply-adds
// a round, each 2 floating-point operations.
func fmaRoundsGo(n int) float64 {
	// Twelve variables, not an array: the compiler keeps them in
	// registers, as the pure-Go GEMM kernel keeps its accumulators; an
	// array went through memory and measured less than half the GEMM.
	var a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 float32
	x, y := float32(0.5), float32(0.25)
	for range n {
		a0, a1, a2, a3 = a0*x+y, a1*x+y, a2*x+y, a3*x+y
		a4, a5, a6, a7 = a4*x+y, a5*x+y, a6*x+y, a7*x+y
		a8, a9, a10, a11 = a8*x+y, a9*x+y, a10*x+y, a11*x+y
	}
	sink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11
	return float64(n) * 12 * 2
}

var sink float32
