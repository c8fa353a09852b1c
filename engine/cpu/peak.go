package cpu

import (
	"sync"
	"time"
)

// PeakGFLOPs returns one core's peak rate in GFLOP/s with the widest FMAs
// the kernels use (512-bit where the CPU has AVX-512), measured once per
// process on registers alone: what a kernel's share of the machine is
// taken against. It takes about 20 ms the first time.
var PeakGFLOPs = sync.OnceValue(func() float64 {
	fmaRounds(1 << 12) // wake the core and its vector units
	best := 0.0
	for range 3 {
		start := time.Now()
		flops := fmaRounds(1 << 18)
		best = max(best, flops/time.Since(start).Seconds()/1e9)
	}
	return best
})

// fmaRoundsGo is fmaRounds without assembly: 12 independent multiply-adds
// a round, each 2 floating-point operations.
func fmaRoundsGo(n int) float64 {
	var a [12]float32
	x, y := float32(0.5), float32(0.25)
	for range n {
		for i := range a {
			a[i] = a[i]*x + y
		}
	}
	sink = a[0]
	return float64(n) * 12 * 2
}

var sink float32
