package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gradCheck compares analytic gradients with central differences.
//
// L = Σ out·r for a fixed random r. backward(r) must return the analytic
// dL/dx for each named input (accumulated into zeroed buffers). For up to
// `samples` coordinates of each input, (L(x+ε) − L(x−ε)) / 2ε is computed
// with L summed in float64. The kernels are float32, so the bound is float32's:
// |analytic − numeric| ≤ 2e-3 + 1e-2·|numeric| with ε = 1e-2 on O(1) values
// (truncation error is O(ε²), rounding O(1e-7·|L|/ε)).
//
// A coordinate whose perturbation changes which outputs are exactly zero
// (a ReLU kink crossed) is skipped; at most a quarter may be.
func gradCheck(t *testing.T, name string, inputs map[string][]float32, forward func() []float32,
	backward func(r []float32) map[string][]float32, samples int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, uint64(len(name))))
	out := forward()
	r := randSlice(rng, len(out))
	zeros := func(o []float32) (z []bool) {
		for _, v := range o {
			z = append(z, v == 0)
		}
		return z
	}
	base := zeros(out)
	loss := func() (float64, bool) {
		o := forward()
		var l float64
		for i, v := range o {
			l += float64(v) * float64(r[i])
		}
		z := zeros(o)
		for i := range z {
			if z[i] != base[i] {
				return l, false
			}
		}
		return l, true
	}
	forward() // restore saved state (batch statistics) at the base point
	grads := backward(r)
	const eps = 1e-2
	for in, x := range inputs {
		g := grads[in]
		if len(g) != len(x) {
			t.Fatalf("%s: gradient of %s has %d elements, input %d", name, in, len(g), len(x))
		}
		skipped, checked := 0, 0
		for s := range min(samples, len(x)) {
			i := s
			if len(x) > samples {
				i = rng.IntN(len(x))
			}
			orig := x[i]
			x[i] = orig + eps
			lp, okp := loss()
			x[i] = orig - eps
			lm, okm := loss()
			x[i] = orig
			if !okp || !okm {
				skipped++
				continue
			}
			checked++
			num := (lp - lm) / (2 * eps)
			if d := math.Abs(float64(g[i]) - num); d > 2e-3+1e-2*math.Abs(num) {
				t.Errorf("%s: d%s[%d] = %.6g, finite difference %.6g", name, in, i, g[i], num)
			}
		}
		if skipped > checked/3 {
			t.Errorf("%s: %s: %d of %d coordinates crossed a kink; the check is too weak", name, in, skipped, skipped+checked)
		}
	}
	forward()
}
