package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
)

func TestStageSchedule(t *testing.T) {
	cfg := CondenseNet86() // C = 4: three condensing stages in the first half
	for _, tc := range []struct {
		p    float64
		want int
	}{{0, 0}, {0.16, 0}, {1.0 / 6, 1}, {0.3, 1}, {1.0 / 3, 2}, {0.49, 2}, {0.5, 3}, {0.99, 3}} {
		if got := cfg.Stage(tc.p); got != tc.want {
			t.Errorf("Stage(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

// tinyLGC is one learned group conv with 4 inputs, 8 outputs in G = 2
// interleaved groups and C = 4, so one input per group goes per stage.
func tinyLGC(t *testing.T) (*Net, *layer) {
	cfg := Config{Stages: []int{1}, Growth: []int{2}, Bottleneck: 4, Group1x1: 2, Group3x3: 2, CondenseFactor: 4, Classes: 3}
	net, err := NewNet(cfg, 1, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	return net, net.blocks[0].layers[0]
}

func TestCondensationHandExample(t *testing.T) {
	net, ly := tinyLGC(t)
	// Summed |w| per input: group 0 (outputs 0 2 4 6) 4 1 3 2, group 1
	// (outputs 1 3 5 7) 1 4 2 3; signs alternate to check the absolute value.
	sums := [2][4]float32{{4, 1, 3, 2}, {1, 4, 2, 3}}
	w := net.W.Host[ly.w1 : ly.w1+32]
	for o := range 8 {
		for j := range 4 {
			w[o*4+j] = sums[o%2][j] / 4 * float32(1-2*(o/2%2))
		}
	}
	kept := func() (g0, g1 []int) {
		m := net.S.Host[ly.mask : ly.mask+32]
		for j := range 4 {
			if m[0*4+j] == 1 {
				g0 = append(g0, j)
			}
			if m[1*4+j] == 1 {
				g1 = append(g1, j)
			}
		}
		return g0, g1
	}
	// Worked by hand: stage 1 drops the least important input of each group
	// (1 and 0); stage 2 ranks the dropped one first and drops the next (3
	// and 2); stage 3 drops the next again (2 and 3), leaving one each.
	for _, step := range []struct {
		p      float64
		g0, g1 []int
	}{
		{0.1, []int{0, 1, 2, 3}, []int{0, 1, 2, 3}},
		{0.2, []int{0, 2, 3}, []int{1, 2, 3}},
		{0.4, []int{0, 2}, []int{1, 3}},
		{0.6, []int{0}, []int{1}},
		{0.9, []int{0}, []int{1}},
	} {
		net.Condense(step.p)
		g0, g1 := kept()
		if !equalInts(g0, step.g0) || !equalInts(g1, step.g1) {
			t.Fatalf("progress %v: group 0 keeps %v, group 1 keeps %v; want %v and %v", step.p, g0, g1, step.g0, step.g1)
		}
	}
	// Every output of a group shares its group's mask.
	m := net.S.Host[ly.mask : ly.mask+32]
	for o := 2; o < 8; o++ {
		for j := range 4 {
			if m[o*4+j] != m[(o%2)*4+j] {
				t.Fatalf("mask[%d,%d] differs from its group's first output", o, j)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// On a real-sized configuration with weights that change between stages,
// masks only ever lose entries and end with exactly in/C inputs per group.
func TestMasksShrinkToOneCth(t *testing.T) {
	cfg := Config{Stages: []int{3, 2}, Growth: []int{8, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 10}
	net, err := NewNet(cfg, 2, cpu.New(2), 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	prev := append([]float32(nil), net.S.Host...)
	for _, p := range []float64{0.05, 0.2, 0.25, 0.4, 0.45, 0.55, 0.8} {
		for i := range net.W.Host {
			net.W.Host[i] += 0.1 * float32(rng.NormFloat64())
		}
		net.Condense(p)
		for _, bk := range net.blocks {
			for _, ly := range bk.layers {
				for i := ly.mask; i < ly.mask+4*ly.k*ly.c; i++ {
					if net.S.Host[i] > prev[i] {
						t.Fatalf("progress %v: a mask entry came back", p)
					}
				}
			}
		}
		prev = append(prev[:0], net.S.Host...)
	}
	for _, bk := range net.blocks {
		for _, ly := range bk.layers {
			out := 4 * ly.k
			for o := range out {
				n := 0
				for j := range ly.c {
					n += int(net.S.Host[ly.mask+o*ly.c+j])
				}
				if n != ly.c/cfg.CondenseFactor {
					t.Fatalf("layer with %d inputs: output %d keeps %d inputs, want %d", ly.c, o, n, ly.c/cfg.CondenseFactor)
				}
			}
		}
	}
	if net.StageReached() != 3 {
		t.Errorf("stage %d after the first half, want 3", net.StageReached())
	}
}

func TestLassoGradient(t *testing.T) {
	net, ly := tinyLGC(t)
	net.Cfg.Lasso = 0.3
	rng := rand.New(rand.NewPCG(4, 4))
	w := net.W.Host[ly.w1 : ly.w1+32]
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	net.S.Host[ly.mask+5] = 0 // a masked weight gets no gradient
	clear(net.DW.Host)
	net.Lasso()
	grad := append([]float32(nil), net.DW.Host[ly.w1:ly.w1+32]...)
	for i := range w {
		orig := w[i]
		const eps = 1e-3
		w[i] = orig + eps
		lp := net.Lasso()
		w[i] = orig - eps
		lm := net.Lasso()
		w[i] = orig
		num := (lp - lm) / (2 * eps)
		if math.Abs(float64(grad[i])-num) > 1e-3+1e-3*math.Abs(num) {
			t.Errorf("dLasso/dw[%d] = %v, finite difference %v", i, grad[i], num)
		}
	}
	if grad[5] != 0 {
		t.Errorf("masked weight got gradient %v", grad[5])
	}
	net.Condense(0.9)
	if got := net.Lasso(); got != 0 {
		t.Errorf("lasso = %v in the optimisation stage, want 0", got)
	}
}

// CondensingSteps gives the iterations a training run condenses at and
// the weights kept after each step: the same as a run's masks.
func TestCondensingSteps(t *testing.T) {
	cfg := smallConfig()
	const total = 12
	its, kept := cfg.CondensingSteps(total)
	if len(its) != cfg.CondenseFactor-1 || len(kept) != cfg.CondenseFactor {
		t.Fatalf("%d steps, %d kept counts for C = %d", len(its), len(kept), cfg.CondenseFactor)
	}
	net, err := NewNet(cfg, 2, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	masked := func() int {
		n := 0.0
		for _, x := range net.Tensors(false) {
			if strings.HasSuffix(x.Name, "._mask") {
				for _, v := range x.Data {
					n += float64(v)
				}
			}
		}
		return int(n)
	}
	if got := masked(); got != kept[0] {
		t.Errorf("before any step: %d weights kept, CondensingSteps says %d", got, kept[0])
	}
	step := 0
	for it := range total {
		if net.Condense(float64(it) / total) {
			if step >= len(its) || its[step] != it {
				t.Fatalf("a step at iteration %d; CondensingSteps says %v", it, its)
			}
			step++
			if got := masked(); got != kept[step] {
				t.Errorf("after step %d: %d weights kept, CondensingSteps says %d", step, got, kept[step])
			}
		}
	}
	if step != len(its) {
		t.Errorf("%d steps in %d iterations, CondensingSteps says %v", step, total, its)
	}
}
