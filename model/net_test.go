package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
)

// The reference network: plain NCHW loops in float64, written from the
// definitions in the paper and PyTorch's layer docs, sharing nothing with
// the engine.

type tensor struct {
	n, c, h, w int
	v          []float64
}

func newT(n, c, h, w int) *tensor { return &tensor{n, c, h, w, make([]float64, n*c*h*w)} }
func (t *tensor) at(n, c, y, x int) *float64 {
	return &t.v[((n*t.c+c)*t.h+y)*t.w+x]
}

func refConv(x *tensor, wt []float32, k, r, s, pad, g int) *tensor {
	out := newT(x.n, k, x.h+2*pad-r+1, x.w+2*pad-s+1)
	cg, kg := x.c/g, k/g
	for n := range x.n {
		for o := range k {
			for oy := range out.h {
				for ox := range out.w {
					var sum float64
					for ci := range cg {
						for dy := range r {
							for dx := range s {
								iy, ix := oy-pad+dy, ox-pad+dx
								if iy >= 0 && iy < x.h && ix >= 0 && ix < x.w {
									sum += float64(wt[((o*cg+ci)*r+dy)*s+dx]) * *x.at(n, o/kg*cg+ci, iy, ix)
								}
							}
						}
					}
					*out.at(n, o, oy, ox) = sum
				}
			}
		}
	}
	return out
}

// refBNReLU normalises with batch statistics (train) or the given running ones.
func refBNReLU(x *tensor, gamma, beta, rm, rv []float32, train bool) *tensor {
	out := newT(x.n, x.c, x.h, x.w)
	for c := range x.c {
		mean, vari := float64(rm[c]), float64(rv[c])
		if train {
			var s, s2 float64
			for n := range x.n {
				for p := range x.h * x.w {
					v := x.v[(n*x.c+c)*x.h*x.w+p]
					s += v
					s2 += v * v
				}
			}
			cnt := float64(x.n * x.h * x.w)
			mean = s / cnt
			vari = s2/cnt - mean*mean
		}
		for n := range x.n {
			for p := range x.h * x.w {
				i := (n*x.c+c)*x.h*x.w + p
				out.v[i] = max(0, float64(gamma[c])*(x.v[i]-mean)/math.Sqrt(vari+1e-5)+float64(beta[c]))
			}
		}
	}
	return out
}

func refConcat(a, b *tensor) *tensor {
	out := newT(a.n, a.c+b.c, a.h, a.w)
	hw := a.h * a.w
	for n := range a.n {
		copy(out.v[n*out.c*hw:], a.v[n*a.c*hw:(n+1)*a.c*hw])
		copy(out.v[(n*out.c+a.c)*hw:], b.v[n*b.c*hw:(n+1)*b.c*hw])
	}
	return out
}

func refPool(x *tensor) *tensor {
	out := newT(x.n, x.c, x.h/2, x.w/2)
	for n := range x.n {
		for c := range x.c {
			for y := range out.h {
				for xx := range out.w {
					*out.at(n, c, y, xx) = (*x.at(n, c, 2*y, 2*xx) + *x.at(n, c, 2*y+1, 2*xx) + *x.at(n, c, 2*y, 2*xx+1) + *x.at(n, c, 2*y+1, 2*xx+1)) / 4
				}
			}
		}
	}
	return out
}

// refForward returns the logits of the CondenseNet described by cfg with
// parameters p and state s (by PyTorch name) on images x (N, 3, 32, 32).
func refForward(cfg Config, p, s map[string][]float32, x *tensor, train bool) []float64 {
	feat := refConv(x, p["features.init_conv.weight"], 2*cfg.Growth[0], 3, 3, 1, 1)
	bn := func(t *tensor, name string) *tensor {
		return refBNReLU(t, p[name+".weight"], p[name+".bias"], s[name+".running_mean"], s[name+".running_var"], train)
	}
	for b, layers := range cfg.Stages {
		k := cfg.Growth[b]
		for l := range layers {
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", b+1, l+1)
			w1 := p[pre+"conv_1.conv.weight"]
			masked := make([]float32, len(w1))
			for i := range w1 {
				masked[i] = w1[i] * s[pre+"conv_1._mask"][i]
			}
			h := refConv(bn(feat, pre+"conv_1.norm"), masked, cfg.Bottleneck*k, 1, 1, 0, 1)
			h = refConv(bn(h, pre+"conv_2.norm"), p[pre+"conv_2.conv.weight"], k, 3, 3, 1, cfg.Group3x3)
			feat = refConcat(feat, h)
		}
		if b+1 < len(cfg.Stages) {
			feat = refPool(feat)
		}
	}
	feat = bn(feat, "features.norm_last")
	w, bias := p["classifier.weight"], p["classifier.bias"]
	logits := make([]float64, x.n*cfg.Classes)
	for n := range x.n {
		for o := range cfg.Classes {
			sum := float64(bias[o])
			for c := range feat.c {
				var m float64
				for q := range feat.h * feat.w {
					m += feat.v[(n*feat.c+c)*feat.h*feat.w+q]
				}
				sum += float64(w[o*feat.c+c]) * m / float64(feat.h*feat.w)
			}
			logits[n*cfg.Classes+o] = sum
		}
	}
	return logits
}

func smallConfig() Config {
	return Config{Stages: []int{2, 3}, Growth: []int{4, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 5}
}

// byName returns a slab's tensors by param name.
func byName(t *table, slab []float32) map[string][]float32 {
	m := map[string][]float32{}
	for _, p := range t.params {
		m[p.Name] = slab[p.Off : p.Off+p.Size()]
	}
	return m
}

// randomBatch returns images as NCHW (for the reference) and NHWC (for the net).
func randomBatch(rng *rand.Rand, n int) (*tensor, []float32) {
	x := newT(n, 3, 32, 32)
	nhwc := make([]float32, n*32*32*3)
	for i := range x.v {
		v := float32(rng.NormFloat64())
		x.v[i] = float64(v)
		b, c, p := i/(3*1024), i/1024%3, i%1024
		nhwc[(b*1024+p)*3+c] = v
	}
	return x, nhwc
}

func TestForwardMatchesReference(t *testing.T) {
	for _, cfg := range []Config{smallConfig(), {Stages: []int{1, 1, 2}, Growth: []int{8, 4, 8}, Bottleneck: 2, Group1x1: 2, Group3x3: 2, CondenseFactor: 2, Classes: 3}} {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 3
		net, err := NewNet(cfg, n, cpu.New(2), 7)
		if err != nil {
			t.Fatal(err)
		}
		// Random masks, and BN parameters away from their initial 1 and 0.
		s := net.S.Host
		for _, p := range net.State.params {
			if len(p.Name) > 6 && p.Name[len(p.Name)-6:] == "_mask" {
				for i := range p.Size() {
					s[p.Off+i] = float32(rng.IntN(2))
				}
			}
		}
		for _, p := range net.Params.params {
			if p.init == initOne || p.init == initZero {
				for i := range p.Size() {
					net.W.Host[p.Off+i] += 0.3 * float32(rng.NormFloat64())
				}
			}
		}
		x, nhwc := randomBatch(rng, n)
		labels := []int32{0, 2, 1}
		for _, train := range []bool{true, false} {
			// The reference reads the running statistics before this Forward updates them.
			want := refForward(cfg, byName(net.Params, net.W.Host), byName(net.State, append([]float32(nil), s...)), x, train)
			net.SetInput(nhwc, labels)
			net.Forward(train)
			got := make([]float32, n*cfg.Classes)
			net.Logits(got)
			var maxRef, maxDiff float64
			for i := range want {
				maxRef = max(maxRef, math.Abs(want[i]))
				maxDiff = max(maxDiff, math.Abs(float64(got[i])-want[i]))
			}
			if maxDiff > 1e-5*maxRef {
				t.Errorf("stages %v train=%v: logits differ from the reference by %.3g (max |logit| %.3g)\n got %v\nwant %v",
					cfg.Stages, train, maxDiff, maxRef, got, want)
			}
		}
	}
}

// TestBackwardMatchesFiniteDifferences checks the whole network's gradient,
// and so the wiring of every layer's backward through the shared block
// buffers, on sampled parameters. The loss is float32, so the bound is
// |analytic − numeric| ≤ 1e-3 + 3e-2·|numeric| with ε = 1e-2; a parameter
// whose perturbation flips a ReLU somewhere may exceed it, and at most one
// in twenty may.
func TestBackwardMatchesFiniteDifferences(t *testing.T) {
	for _, dropout := range []float32{0, 0.2} {
		cfg := smallConfig()
		cfg.Dropout = dropout
		rng := rand.New(rand.NewPCG(3, 4))
		const n = 2
		net, err := NewNet(cfg, n, cpu.New(2), 11)
		if err != nil {
			t.Fatal(err)
		}
		_, nhwc := randomBatch(rng, n)
		net.SetInput(nhwc, []int32{1, 4})
		step := net.step
		loss := func() float64 {
			net.step = step // the same dropout masks every time
			net.Forward(true)
			return net.Loss()
		}
		loss()
		net.ZeroGrad()
		net.Backward()
		grad := append([]float32(nil), net.DW.Host...)
		bad, checked := 0, 0
		for _, p := range net.Params.params {
			for range 3 {
				i := p.Off + rng.IntN(p.Size())
				orig := net.W.Host[i]
				const eps = 1e-2
				net.W.Host[i] = orig + eps
				lp := loss()
				net.W.Host[i] = orig - eps
				lm := loss()
				net.W.Host[i] = orig
				num := (lp - lm) / (2 * eps)
				checked++
				if d := math.Abs(float64(grad[i]) - num); d > 1e-3+3e-2*math.Abs(num) {
					bad++
					t.Logf("dropout %v: d%s[%d] = %.6g, finite difference %.6g", dropout, p.Name, i-p.Off, grad[i], num)
				}
			}
		}
		if bad > checked/20 {
			t.Errorf("dropout %v: %d of %d sampled gradients disagree with finite differences", dropout, bad, checked)
		}
	}
}
