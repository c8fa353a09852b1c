package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
)

// The int8 network computes what the float one does within its
// quantisation's error, the same bits an image at a time on two cores
// as a batch on one; its weights are int8 integers that reproduce the
// float (BatchNorm-folded) weights within half a step.
func TestCondensedInt8(t *testing.T) {
	for _, cfg := range []Config{
		smallConfig(),
		{Stages: []int{1, 2, 1}, Growth: []int{4, 8, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 2, CondenseFactor: 2, Classes: 10},
		// 36², an image at a time; 18² and 9², two images together a lane
		{Stages: []int{1, 2, 2}, Growth: []int{4, 8, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 6, InputSize: 36},
	} {
		rng := rand.New(rand.NewPCG(31, 32))
		const n = 4
		_, arch, tensors := randomCondensed(t, cfg, n, rng)
		var calib []float32
		for range 4 {
			calib = append(calib, randomImages(rng, cfg, n)...)
		}
		scales, err := Calibrate(arch, tensors, calib, 3, cpu.New(2)) // 16 images, a last batch of 1
		if err != nil {
			t.Fatal(err)
		}
		if scales.Images != 16 || len(scales.Layers) != 5 && len(scales.Layers) != 4 {
			t.Fatalf("scales of %d images, %d layers", scales.Images, len(scales.Layers))
		}
		layers, err := Int8Layers(arch, tensors, scales)
		if err != nil {
			t.Fatal(err)
		}
		w1 := tensorByName(tensors, "features.denseblock_1.denselayer_1.conv_1.conv.weight")
		q := layers[0].Conv1
		for i, v := range q.Q {
			if v != float32(int8(v)) || v < -127 {
				t.Fatalf("weight %d: %v is not an int8", i, v)
			}
			if w1[i] == 0 && v != 0 {
				t.Fatalf("weight %d: %v for 0", i, v)
			}
		}
		fl, err := NewCondensed(arch, tensors, n, cpu.New(2))
		if err != nil {
			t.Fatal(err)
		}
		i8, err := NewCondensedInt8(arch, tensors, scales, n, cpu.New(2))
		if err != nil {
			t.Fatal(err)
		}
		images := randomImages(rng, cfg, n)
		want, got := make([]float32, n*cfg.Classes), make([]float32, n*cfg.Classes)
		fl.Forward(want, images)
		i8.Forward(got, images)
		diff, top := logitsDiff(got, want)
		if diff > 0.05*top || diff == 0 {
			t.Errorf("%v: int8 logits differ from float32 ones by %.3g (largest |logit| %.3g)", cfg.Stages, diff, top)
		}
		whole, err := NewCondensedInt8(arch, tensors, scales, n, cpu.New(1))
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]float32, len(got))
		whole.Forward(batch, images)
		if !slices.Equal(batch, got) {
			t.Errorf("%v: int8 logits %v a batch at a time, %v an image at a time", cfg.Stages, batch, got)
		}
		t.Logf("%v: int8 against float32 logits: largest difference %.3g of %.3g", cfg.Stages, diff, top)
	}
}

func tensorByName(ts []Named, name string) []float32 {
	for _, v := range ts {
		if v.Name == name {
			return v.Data
		}
	}
	return nil
}

// Scales that do not fit the network, or that are not positive, are refused.
func TestInt8ScalesChecked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	_, arch, tensors := randomCondensed(t, smallConfig(), 1, rng)
	good := &Int8Scales{Layers: make([]Int8LayerScales, 5)}
	for i := range good.Layers {
		good.Layers[i] = Int8LayerScales{0.1, 0.1, 0.1}
	}
	if _, err := Int8Layers(arch, tensors, good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*Int8Scales{nil, {Layers: good.Layers[:4]}, {Layers: append(slices.Clone(good.Layers[:4]), Int8LayerScales{0.1, 0, 0.1})},
		{Layers: append(slices.Clone(good.Layers[:4]), Int8LayerScales{0.1, float32(math.NaN()), 0.1})}} {
		if _, err := Int8Layers(arch, tensors, bad); err == nil {
			t.Errorf("scales %+v accepted", bad)
		}
	}
}

// After its first call, inference allocates nearly nothing, float32 (on
// AVX-512, where its convolutions of planes have their own lowerings) or
// int8: closures made per layer and call cost int8 inference a tenth of
// its time in garbage collection before its layers ran their ranges as
// methods (see cpu's each).
func TestInferenceAllocatesLittle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 8
	_, arch, tensors := randomCondensed(t, smallConfig(), n, rng)
	_, images := randomBatch(rng, n)
	scales, err := Calibrate(arch, tensors, images, n, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := NewCondensed(arch, tensors, n, cpu.New(2))
	i8, _ := NewCondensedInt8(arch, tensors, scales, n, cpu.New(2))
	logits := make([]float32, n*5)
	nets := map[string]*Condensed{"float32": fl, "int8": i8}
	if !strings.Contains(cpu.Kernels(), "AVX-512") {
		// Without AVX-512 the float32 convolutions of planes go through
		// rows, whose lowerings still make closures per call.
		delete(nets, "float32")
	}
	for name, net := range nets {
		net.Forward(logits, images)
		allocs := testing.AllocsPerRun(5, func() { net.Forward(logits, images) })
		// Per image a handful (the stem, pools and classifier's ranges),
		// none per dense layer: 455 a batch of 64 for CondenseNet-86's 42
		// layers, where it was 8,582 (float32) and 13,959 (int8).
		if allocs > 8*n {
			t.Errorf("%s: %.0f allocations a batch of %d", name, allocs, n)
		}
	}
}
