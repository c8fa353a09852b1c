package timing

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
)

// A training step through the timing backend computes what it does
// without it, and books every operation under a kind, the convolutions'
// and classifier's FLOPs adding up to the network's.
func TestTimedStep(t *testing.T) {
	cfg := model.CondenseNet(20)
	cfg.Stages, cfg.Growth = []int{1, 1, 1}, []int{4, 4, 4}
	run := func(timed bool) ([]float32, *Backend, *model.Net) {
		var tb *Backend
		be := cpu.New(2)
		net, err := model.NewNet(cfg, 4, be, 1)
		if timed {
			tb = New(be)
			net, err = model.NewNet(cfg, 4, tb, 1)
		}
		if err != nil {
			t.Fatal(err)
		}
		if tb != nil {
			tb.Reset() // building the network zeroed its buffers
		}
		images, labels := model.RandomBatch(4, 32, cfg.Classes, 1)
		net.SetInput(images, labels)
		net.Forward(true)
		net.ZeroGrad()
		net.Backward()
		net.Update(0.1, 0.9, 1e-4)
		logits := make([]float32, 4*cfg.Classes)
		net.Logits(logits)
		return logits, tb, net
	}
	want, _, _ := run(false)
	got, tb, net := run(true)
	if !slices.Equal(got, want) {
		t.Fatal("timing changed the results")
	}
	kinds := tb.Kinds()
	var flops, seconds float64
	names := map[string]bool{}
	for i, k := range kinds {
		flops += k.FLOPs
		seconds += k.Seconds
		names[k.Name] = true
		if i > 0 && k.Seconds > kinds[i-1].Seconds {
			t.Errorf("kinds not in order of time: %v", kinds)
		}
	}
	for _, want := range []string{"batchnorm+relu+conv 3×3 G=4 forward", "batchnorm+relu+conv 1×1 backward", "batchnorm+relu forward", "SGD update", "pooling forward", "classifier forward", "upload", "download"} {
		if !names[want] {
			t.Errorf("no %q among %v", want, kinds)
		}
	}
	if w := 3 * float64(net.FLOPs()); flops != w || seconds <= 0 {
		t.Errorf("booked %g FLOPs in %g s; the step has %g", flops, seconds, w)
	}
}

// A condensed network split between cores books, through the cores'
// timers, the calls and FLOPs it books on one core, and its results are
// the same.
func TestTimedSplit(t *testing.T) {
	cfg := model.CondenseNet(20)
	cfg.Stages, cfg.Growth = []int{1, 1, 1}, []int{4, 4, 4}
	net, err := model.NewNet(cfg, 3, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	arch, tensors, err := net.ConvertCurrent()
	if err != nil {
		t.Fatal(err)
	}
	images, _ := model.RandomBatch(3, 32, cfg.Classes, 1)
	run := func(workers int) ([]float32, *Backend) {
		tb := New(cpu.New(workers))
		cn, err := model.NewCondensed(arch, tensors, 3, tb)
		if err != nil {
			t.Fatal(err)
		}
		tb.Reset()
		logits := make([]float32, 3*cfg.Classes)
		cn.Forward(logits, images)
		return logits, tb
	}
	want, one := run(1)
	got, two := run(2)
	if len(two.splits) != 1 || len(two.splits[0]) != 2 || len(one.splits) != 0 {
		t.Fatalf("%d and %d splits timed, want 0 and one of 2", len(one.splits), len(two.splits))
	}
	if !slices.Equal(got, want) {
		t.Fatal("splitting changed the results")
	}
	// Each convolution runs once per image on the cores, and on one core
	// too where the network is in planes (the CIFAR form's planes are
	// whole chunks, which a network in planes takes an image at a time:
	// see model.anImageAtATime), else once on the batch; the classifier
	// runs once on the batch either way; the FLOPs are the same.
	count := func(kinds []Kind) (convs, classifier int, flops float64) {
		for _, k := range kinds {
			flops += k.FLOPs
			switch {
			case strings.HasPrefix(k.Name, "conv "):
				convs += k.Calls
			case k.Name == "classifier forward":
				classifier += k.Calls
			}
		}
		return convs, classifier, flops
	}
	v1, l1, f1 := count(one.Kinds())
	v2, l2, f2 := count(two.Kinds())
	perImage := 1 + 2*(cfg.Stages[0]+cfg.Stages[1]+cfg.Stages[2]) // the stem and each layer's two
	oneCore := 3 * perImage
	if !cpu.New(1).Planar() {
		oneCore = perImage
	}
	if f1 != f2 || f1 == 0 || v1 != oneCore || v2 != 3*perImage || l1 != 1 || l2 != 1 {
		t.Errorf("split: %d convolutions, %d classifiers, %g FLOPs; one core: %d, %d, %g (want %d convolutions split and %d on one core, one classifier each, and the same FLOPs)", v2, l2, f2, v1, l1, f1, 3*perImage, oneCore)
	}
}

// A network split between cores books the seconds of its own cores
// divided by their count, however many other networks split the same
// backend (the int8 benchmark's calibration network did, which halved
// what --layers reported).
func TestTimedSecondSplit(t *testing.T) {
	cfg := model.CondenseNet(20)
	cfg.Stages, cfg.Growth = []int{1, 1, 1}, []int{4, 4, 4}
	net, err := model.NewNet(cfg, 3, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	arch, tensors, err := net.ConvertCurrent()
	if err != nil {
		t.Fatal(err)
	}
	tb := New(cpu.New(2))
	var cn *model.Condensed
	for range 2 { // the first is never run
		if cn, err = model.NewCondensed(arch, tensors, 3, tb); err != nil {
			t.Fatal(err)
		}
	}
	tb.Reset()
	images, _ := model.RandomBatch(3, 32, cfg.Classes, 1)
	cn.Forward(make([]float32, 3*cfg.Classes), images)
	var lanes, booked, whole float64 // whole: what the batch's own backend booked besides (the classifier)
	for _, core := range tb.splits[1] {
		for _, k := range core.kinds {
			lanes += k.Seconds
		}
	}
	for _, k := range tb.Kinds() {
		booked += k.Seconds
	}
	for _, k := range tb.kinds {
		whole += k.Seconds
	}
	if len(tb.splits) != 2 || lanes <= 0 || math.Abs(booked-whole-lanes/2) > 1e-9*lanes {
		t.Errorf("%d splits; booked %g s of lanes that took %g s (want half)", len(tb.splits), booked-whole, lanes)
	}
}
