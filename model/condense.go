package model

import (
	"cmp"
	"math"
	"slices"
)

// Learned group convolution: during the first half of training each layer's
// 1×1 convolution drops, in C−1 steps, the inputs its output groups use
// least, until every group keeps 1/C of them (condensenet.md, "Learned
// group convolution").

// Stage returns the condensing stage at training progress p in [0, 1):
// the first i in 0..C−2 with 2p < (i+1)/(C−1), else C−1 (the optimisation
// stage).
func (c *Config) Stage(p float64) int {
	last := c.CondenseFactor - 1
	for i := range last {
		if 2*p < float64(i+1)/float64(last) {
			return i
		}
	}
	return last
}

// CondensingSteps returns, for a run of total iterations, the iteration at
// which each of the C−1 condensing steps happens (the first whose
// progress reaches the step's stage) and the learned group convolutions'
// weights kept after it, all layers together; kept[0] is before any step.
func (c *Config) CondensingSteps(total int) (iterations []int, kept []int) {
	steps := c.CondenseFactor - 1
	for it, s := 0, 1; it < total && s <= steps; it++ {
		for ; s <= steps && c.Stage(float64(it)/float64(total)) >= s; s++ {
			iterations = append(iterations, it)
		}
	}
	for s := 0; s <= steps; s++ {
		n := 0
		ch := 2 * c.Growth[0]
		for b, layers := range c.Stages {
			for range layers {
				n += c.Bottleneck * c.Growth[b] * (ch - s*(ch/c.CondenseFactor))
				ch += c.Growth[b]
			}
		}
		kept = append(kept, n)
	}
	return iterations, kept
}

// Condense brings every learned group convolution to the stage of
// progress p, dropping inputs for each stage it passes. It reports whether
// any mask changed. Call it before each training Forward.
func (net *Net) Condense(p float64) bool {
	want := net.Cfg.Stage(p)
	if want <= net.reached {
		return false // the common case: no device round trip per step
	}
	changed := false
	for _, bk := range net.blocks {
		for _, ly := range bk.layers {
			for net.layerStage(ly) < want {
				net.dropInputs(ly)
				changed = true
			}
		}
	}
	net.reached = want
	return changed
}

// StageReached returns the condensing stage the layers have reached (they
// all move together).
func (net *Net) StageReached() int { return net.reached }

func (net *Net) layerStage(ly *layer) int {
	v := []float32{0}
	net.be.Download(v, net.s(ly.stage))
	return int(v[0])
}

// dropInputs performs one condensing step on a layer: for each group g of
// output channels (o mod G = g), inputs are ranked by the group's summed
// |W ⊙ mask|, ascending, and those at ranks [count, count+c/C) are masked
// out for the whole group. Already dropped inputs weigh 0 and rank first,
// which is why the window starts at count.
func (net *Net) dropInputs(ly *layer) {
	cfg := net.Cfg
	out, in, g := cfg.Bottleneck*ly.k, ly.c, cfg.Group1x1
	delta := in / cfg.CondenseFactor
	w, mask := make([]float32, out*in), make([]float32, out*in)
	net.be.Download(w, net.w(ly.w1))
	net.be.Download(mask, net.s(ly.mask))
	st := []float32{0, 0} // count, stage
	net.be.Download(st[:1], net.s(ly.count))
	net.be.Download(st[1:], net.s(ly.stage))
	count := int(st[0])

	importance := make([]float64, in)
	order := make([]int, in)
	for grp := range g {
		clear(importance)
		for o := grp; o < out; o += g {
			for j := range in {
				importance[j] += math.Abs(float64(w[o*in+j] * mask[o*in+j]))
			}
		}
		for j := range order {
			order[j] = j
		}
		// Ties (the dropped inputs' zeros) keep input order.
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(importance[a], importance[b]) })
		for _, j := range order[count : count+delta] {
			for o := grp; o < out; o += g {
				mask[o*in+j] = 0
			}
		}
	}
	net.be.Upload(net.s(ly.mask), mask)
	net.be.Upload(net.s(ly.count), []float32{float32(count + delta)})
	net.be.Upload(net.s(ly.stage), []float32{st[1] + 1})
}

// Lasso adds the group-lasso term's gradient to DW and returns the term,
// λ·Σ_layers Σ_g Σ_j sqrt(max(Σ_{o in g} (W⊙mask)[o,j]², 1e-6)), or 0 once
// the optimisation stage is reached or λ is 0.
func (net *Net) Lasso() float64 {
	cfg := net.Cfg
	if cfg.Lasso == 0 || net.StageReached() >= cfg.CondenseFactor-1 {
		return 0
	}
	var total float64
	for _, bk := range net.blocks {
		for _, ly := range bk.layers {
			out, in, g := cfg.Bottleneck*ly.k, ly.c, cfg.Group1x1
			w, mask, dw := make([]float32, out*in), make([]float32, out*in), make([]float32, out*in)
			net.be.Download(w, net.w(ly.w1))
			net.be.Download(mask, net.s(ly.mask))
			net.be.Download(dw, net.DW.At(ly.w1))
			for grp := range g {
				for j := range in {
					var ss float64
					for o := grp; o < out; o += g {
						v := float64(w[o*in+j] * mask[o*in+j])
						ss += v * v
					}
					norm := math.Sqrt(max(ss, 1e-6))
					total += norm
					if ss < 1e-6 {
						continue // the clamp is flat: no gradient
					}
					// d norm / d W[o,j] = (W⊙mask)[o,j]·mask[o,j] / norm
					for o := grp; o < out; o += g {
						dw[o*in+j] += cfg.Lasso * w[o*in+j] * mask[o*in+j] * mask[o*in+j] / float32(norm)
					}
				}
			}
			net.be.Upload(net.DW.At(ly.w1), dw)
		}
	}
	return float64(cfg.Lasso) * total
}
