package model

import (
	"math"
	"testing"
)

// The paper's table (condensenet.md): FLOPs exactly, params within 0.01M.
func TestCondensedCostMatchesPaper(t *testing.T) {
	for _, tc := range []struct {
		depth  int
		flops  float64 // millions, as printed
		params float64
	}{{50, 28.6, 0.21}, {74, 51.9, 0.40}, {86, 65.8, 0.52}, {98, 81.3, 0.64}, {110, 98.2, 0.79}, {122, 116.7, 0.94}} {
		cfg := CondenseNet(tc.depth)
		c := cfg.CondensedCost()
		if got := math.Round(float64(c.FLOPs)/1e5) / 10; got != tc.flops {
			t.Errorf("CondenseNet-%d: %.2fM FLOPs, paper %.1fM", tc.depth, float64(c.FLOPs)/1e6, tc.flops)
		}
		if got := float64(c.Params) / 1e6; math.Abs(got-tc.params) > 0.01 {
			t.Errorf("CondenseNet-%d: %.3fM params, table %.2fM", tc.depth, got, tc.params)
		}
	}
}

func TestTrainingCostExceedsCondensed(t *testing.T) {
	cfg := CondenseNet86()
	tr, co := cfg.TrainingCost(), cfg.CondensedCost()
	// The 1×1 convolutions dominate and shrink to G/C·1/G = 1/C = 1/4.
	if tr.FLOPs < 2*co.FLOPs || tr.Params < 2*co.Params {
		t.Errorf("training %+v vs condensed %+v: condensing should more than halve both", tr, co)
	}
}
