package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
)

// condensedMasks gives every learned group conv a random finished mask:
// each group of outputs keeps a random in/C of the inputs.
func condensedMasks(net *Net, rng *rand.Rand) {
	cfg := net.Cfg
	for _, bk := range net.blocks {
		for _, ly := range bk.layers {
			out, in, g := cfg.Bottleneck*ly.k, ly.c, cfg.Group1x1
			m := net.S.Host[ly.mask : ly.mask+out*in]
			clear(m)
			for grp := range g {
				for _, j := range rng.Perm(in)[:in/cfg.CondenseFactor] {
					for o := grp; o < out; o += g {
						m[o*in+j] = 1
					}
				}
			}
		}
	}
}

// randomCondensed returns a masked network of cfg for batch n with
// random finished masks and BatchNorms away from identity, and its
// conversion (keeping the whole classifier).
func randomCondensed(t *testing.T, cfg Config, n int, rng *rand.Rand) (*Net, *Architecture, []Named) {
	t.Helper()
	net, err := NewNet(cfg, n, cpu.New(2), 9)
	if err != nil {
		t.Fatal(err)
	}
	condensedMasks(net, rng)
	for _, p := range net.Params.params {
		if p.init == initOne || p.init == initZero {
			for i := range p.Size() {
				net.W.Host[p.Off+i] += 0.3 * float32(rng.NormFloat64())
			}
		}
	}
	for _, p := range net.State.params {
		if p.Name[len(p.Name)-4:] == "mean" || p.Name[len(p.Name)-3:] == "var" {
			for i := range p.Size() {
				net.S.Host[p.Off+i] = 0.5*net.S.Host[p.Off+i] + 0.2*float32(rng.Float64())
			}
		}
	}
	arch, tensors := convertKeeping(t, net)
	return net, arch, tensors
}

// randomImages returns n images of cfg's input size, channels last, of
// normal noise.
func randomImages(rng *rand.Rand, cfg Config, n int) []float32 {
	x := make([]float32, n*cfg.ImageFloats())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// logitsDiff returns the largest |got − want| and the largest |want|.
func logitsDiff(got, want []float32) (diff, top float64) {
	for i := range want {
		top = max(top, math.Abs(float64(want[i])))
		diff = max(diff, math.Abs(float64(got[i]-want[i])))
	}
	return diff, top
}

// convertKeeping converts net's tensors, keeping the whole classifier.
func convertKeeping(t *testing.T, net *Net) (*Architecture, []Named) {
	t.Helper()
	ts := map[string]Named{}
	for _, v := range net.Tensors(false) {
		ts[v.Name] = v
	}
	arch, tensors, err := Convert(net.Cfg, ts, ConvertOptions{KeepClassifier: true})
	if err != nil {
		t.Fatal(err)
	}
	return arch, tensors
}

func TestCondensedMatchesMasked(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		n   int
		// lane is the images each lane takes at a time, and split its
		// first block that takes them together.
		lane, split int
	}{
		{smallConfig(), 3, 1, 2}, // G = C = 4
		{Config{Stages: []int{2, 2}, Growth: []int{8, 8}, Bottleneck: 4, Group1x1: 2, Group3x3: 4, CondenseFactor: 4, Dropout: 0.2, Classes: 7}, 3, 1, 2}, // G != C, dropout
		{Config{Stages: []int{1, 2, 1}, Growth: []int{4, 8, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 2, CondenseFactor: 2, Classes: 10}, 3, 1, 3},
		// 36², an image at a time, then 18² and 9², two images together
		// on each lane, as the ImageNet network's last blocks run.
		{Config{Stages: []int{1, 2, 2}, Growth: []int{4, 8, 8}, Bottleneck: 4, Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 6, InputSize: 36}, 4, 2, 1},
	} {
		cfg, n := tc.cfg, tc.n
		rng := rand.New(rand.NewPCG(21, 22))
		net, arch, tensors := randomCondensed(t, cfg, n, rng)
		ts := map[string]Named{}
		for _, v := range net.Tensors(false) {
			ts[v.Name] = v
		}
		cn, err := NewCondensed(arch, tensors, n, cpu.New(2))
		if err != nil {
			t.Fatal(err)
		}
		images := randomImages(rng, cfg, n)
		want, got := make([]float32, n*cfg.Classes), make([]float32, n*cfg.Classes)
		net.Infer(want, images)
		cn.Forward(got, images)
		maxDiff, maxRef := logitsDiff(got, want)
		if maxDiff > 1e-5*maxRef {
			t.Errorf("G=%d C=%d: condensed logits differ from the masked net's by %.3g (max |logit| %.3g)", cfg.Group1x1, cfg.CondenseFactor, maxDiff, maxRef)
		}
		// An image at a time on each of two cores, or the whole batch on
		// one: the same bits.
		if len(cn.lanes) != 2 {
			t.Fatalf("%d lanes on two cores, want 2", len(cn.lanes))
		}
		split := tc.split
		if planarOf(cn.be) == nil {
			split = len(cfg.Stages) // through rows every block takes the lane's images together
		}
		if l := cn.lanes[0]; l.N != tc.lane || l.split != split {
			t.Errorf("%v: lanes take %d images, blocks from %d together; want %d, from %d", cfg.Stages, l.N, l.split, tc.lane, split)
		}
		if &cn.lanes[0].W.Host[0] != &cn.lanes[1].W.Host[0] {
			t.Errorf("G=%d C=%d: each lane holds a copy of the weights, want one shared", cfg.Group1x1, cfg.CondenseFactor)
		}
		whole, err := NewCondensed(arch, tensors, n, cpu.New(1))
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]float32, len(got))
		whole.Forward(batch, images)
		if !slices.Equal(batch, got) {
			t.Errorf("G=%d C=%d: logits %v a batch at a time, %v an image at a time", cfg.Group1x1, cfg.CondenseFactor, batch, got)
		}
		// With the classifier condensed the outputs change, as they should.
		arch2, tensors2, _ := Convert(cfg, ts, ConvertOptions{})
		if len(arch2.Classifier) != cfg.Width()/2 {
			t.Errorf("classifier keeps %d of %d features, want half", len(arch2.Classifier), cfg.Width())
		}
		if _, err := NewCondensed(arch2, tensors2, n, cpu.New(2)); err != nil {
			t.Error(err)
		}
	}
}

// A hand-checked conversion: 4 inputs, 8 outputs in G = 2 groups, C = 2.
func TestConvertGathersIndexAndWeights(t *testing.T) {
	cfg := Config{Stages: []int{1}, Growth: []int{2}, Bottleneck: 4, Group1x1: 2, Group3x3: 2, CondenseFactor: 2, Classes: 3}
	net, err := NewNet(cfg, 1, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	ly := net.blocks[0].layers[0]
	// Group 0 (outputs 0 2 4 6) keeps inputs 3 and 1; group 1 (1 3 5 7) keeps 0 and 2.
	m := net.S.Host[ly.mask : ly.mask+32]
	clear(m)
	for o := range 8 {
		for _, j := range [][]int{{1, 3}, {0, 2}}[o%2] {
			m[o*4+j] = 1
		}
	}
	w := net.W.Host[ly.w1 : ly.w1+32]
	for i := range w {
		w[i] = float32(i) // w[o][j] = 4o + j
	}
	bnw := net.W.Host[ly.n1.weight : ly.n1.weight+4]
	copy(bnw, []float32{10, 11, 12, 13})
	arch, tensors := convertKeeping(t, net)
	if !slices.Equal(arch.Layers[0], []int32{1, 3, 0, 2}) {
		t.Errorf("index = %v, want 1 3 0 2 (group 0's inputs, then group 1's)", arch.Layers[0])
	}
	byName := map[string]Named{}
	for _, v := range tensors {
		byName[v.Name] = v
	}
	pre := "features.denseblock_1.denselayer_1.conv_1."
	if got := byName[pre+"norm.weight"].Data; !slices.Equal(got, []float32{11, 13, 10, 12}) {
		t.Errorf("gathered BN weight = %v, want 11 13 10 12", got)
	}
	// New output n = g·4 + kk is old output g + 2·kk, at its group's inputs:
	// n=0: old 0 at 1,3 → 1 3; n=1: old 2 → 9 11; n=4: old 1 at 0,2 → 4 6; n=7: old 7 → 28 30.
	cw := byName[pre+"conv.weight"]
	if !slices.Equal(cw.Shape, []int{8, 2, 1, 1}) {
		t.Fatalf("conv weight shape %v, want 8 2 1 1", cw.Shape)
	}
	for _, c := range []struct {
		n, j int
		want float32
	}{{0, 0, 1}, {0, 1, 3}, {1, 0, 9}, {1, 1, 11}, {4, 0, 4}, {4, 1, 6}, {7, 0, 28}, {7, 1, 30}} {
		if got := cw.Data[c.n*2+c.j]; got != c.want {
			t.Errorf("condensed w[%d][%d] = %v, want %v", c.n, c.j, got, c.want)
		}
	}
}

func TestConvertRefusesUnfinished(t *testing.T) {
	net, err := NewNet(smallConfig(), 1, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	net.Condense(0.2) // one stage of three
	ts := map[string]Named{}
	for _, v := range net.Tensors(false) {
		ts[v.Name] = v
	}
	_, _, err = Convert(net.Cfg, ts, ConvertOptions{})
	if !errors.Is(err, ErrNotCondensed) {
		t.Fatalf("Convert after one stage = %v, want ErrNotCondensed", err)
	}
	arch, tensors, err := Convert(net.Cfg, ts, ConvertOptions{Force: true})
	if err != nil {
		t.Fatalf("Convert with Force: %v", err)
	}
	if _, err := NewCondensed(arch, tensors, 1, cpu.New(1)); err != nil {
		t.Fatal(err)
	}
}
