package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Converting a trained network into a condensed one (condensenet.md,
// "Condensing"): each learned group convolution becomes index-select →
// BatchNorm on the selected channels → ReLU → 1×1 convolution with G
// groups → channel shuffle; the classifier keeps half of its inputs.

// ErrNotCondensed means a network's masks have not reached in/C inputs per
// group: its training stopped before the end of the condensing stages.
var ErrNotCondensed = errors.New("model: condensation has not finished")

// An Architecture is the condensed network's structure beyond its Config:
// which channels each layer and the classifier select.
type Architecture struct {
	Config Config `json:"config"`
	// Layers holds each learned group convolution's selected input
	// channels, block by block: for group g, its kept inputs in ascending
	// order, groups concatenated.
	Layers [][]int32 `json:"layers"`
	// Classifier holds the classifier's kept input features, ascending.
	Classifier []int32 `json:"classifier"`
}

// ConvertOptions adjust Convert.
type ConvertOptions struct {
	// KeepClassifier keeps all of the classifier's inputs: the conversion is
	// then exact (used to check it).
	KeepClassifier bool
	// Force converts a network whose condensation has not finished by
	// keeping, in each group, the in/C most important of its kept inputs.
	Force bool
}

// Convert condenses trained tensors (as Net.Tensors writes them) of the
// network cfg. It returns the condensed network's architecture and tensors
// under PyTorch names: each layer's conv_1.norm.* gathered at the selected
// channels and conv_1.conv.weight of shape (4k, in/C, 1, 1); the classifier
// as classifier.linear.weight and .bias. It returns an error wrapping
// ErrNotCondensed, naming the layer, if a mask is not at in/C per group.
func Convert(cfg Config, t map[string]Named, opts ConvertOptions) (*Architecture, []Named, error) {
	get := func(name string) ([]float32, error) {
		v, ok := t[name]
		if !ok {
			return nil, &FormatError{"missing tensor " + name}
		}
		return v.Data, nil
	}
	arch := &Architecture{Config: cfg}
	var out []Named
	copyAs := func(name string) error {
		v, ok := t[name]
		if !ok {
			return &FormatError{"missing tensor " + name}
		}
		out = append(out, Named{Name: name, Shape: v.Shape, Data: v.Data})
		return nil
	}
	if err := copyAs("features.init_conv.weight"); err != nil {
		return nil, nil, err
	}
	ch := 2 * cfg.Growth[0]
	for b, layers := range cfg.Stages {
		k := cfg.Growth[b]
		o := cfg.Bottleneck * k
		for l := range layers {
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", b+1, l+1)
			w, err := get(pre + "conv_1.conv.weight")
			if err != nil {
				return nil, nil, err
			}
			mask, err := get(pre + "conv_1._mask")
			if err != nil {
				return nil, nil, err
			}
			kept, err := keptInputs(cfg, w, mask, o, ch, opts.Force)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", pre+"conv_1", err)
			}
			g := cfg.Group1x1
			var index []int32
			for _, ks := range kept {
				index = append(index, ks...)
			}
			arch.Layers = append(arch.Layers, index)
			for _, p := range []string{"weight", "bias", "running_mean", "running_var"} {
				v, err := get(pre + "conv_1.norm." + p)
				if err != nil {
					return nil, nil, err
				}
				out = append(out, Named{Name: pre + "conv_1.norm." + p, Shape: []int{len(index)}, Data: gather(v, index)})
			}
			// New output kk + grp·(o/G) is old output grp + kk·G; its weights
			// are the old ones at the group's kept inputs.
			per := ch / cfg.CondenseFactor
			cw := make([]float32, o*per)
			for grp := range g {
				for kk := range o / g {
					old := grp + kk*g
					for j, in := range kept[grp] {
						cw[(grp*(o/g)+kk)*per+j] = w[old*ch+int(in)]
					}
				}
			}
			out = append(out, Named{Name: pre + "conv_1.conv.weight", Shape: []int{o, per, 1, 1}, Data: cw})
			for _, name := range []string{"conv_2.norm.weight", "conv_2.norm.bias", "conv_2.norm.running_mean", "conv_2.norm.running_var", "conv_2.conv.weight"} {
				if err := copyAs(pre + name); err != nil {
					return nil, nil, err
				}
			}
			ch += k
		}
	}
	for _, p := range []string{"weight", "bias", "running_mean", "running_var"} {
		if err := copyAs("features.norm_last." + p); err != nil {
			return nil, nil, err
		}
	}
	fw, err := get("classifier.weight")
	if err != nil {
		return nil, nil, err
	}
	fb, err := get("classifier.bias")
	if err != nil {
		return nil, nil, err
	}
	arch.Classifier = classifierInputs(fw, cfg.Classes, ch, opts.KeepClassifier)
	lw := make([]float32, cfg.Classes*len(arch.Classifier))
	for c := range cfg.Classes {
		for j, in := range arch.Classifier {
			lw[c*len(arch.Classifier)+j] = fw[c*ch+int(in)]
		}
	}
	out = append(out,
		Named{Name: "classifier.linear.weight", Shape: []int{cfg.Classes, len(arch.Classifier)}, Data: lw},
		Named{Name: "classifier.linear.bias", Shape: []int{cfg.Classes}, Data: slices.Clone(fb)})
	return arch, out, nil
}

// keptInputs returns, per group of output channels (o mod G), the inputs
// its mask keeps, ascending. All outputs of a group must share one mask
// with exactly in/C inputs, unless force picks the in/C most important.
func keptInputs(cfg Config, w, mask []float32, out, in int, force bool) ([][]int32, error) {
	g, per := cfg.Group1x1, in/cfg.CondenseFactor
	kept := make([][]int32, g)
	for grp := range g {
		for j := range in {
			if mask[grp*in+j] != 0 {
				kept[grp] = append(kept[grp], int32(j))
			}
		}
		for o := grp + g; o < out; o += g {
			for j := range in {
				if (mask[o*in+j] != 0) != (mask[grp*in+j] != 0) {
					return nil, fmt.Errorf("%w: outputs %d and %d of group %d have different masks", ErrNotCondensed, grp, o, grp)
				}
			}
		}
		if len(kept[grp]) == per {
			continue
		}
		if !force || len(kept[grp]) < per {
			return nil, fmt.Errorf("%w: group %d keeps %d of %d inputs, a condensed group keeps %d (in/C)", ErrNotCondensed, grp, len(kept[grp]), in, per)
		}
		// Keep the group's most important inputs, as one more condensing
		// step would.
		imp := func(j int32) float64 {
			var s float64
			for o := grp; o < out; o += g {
				s += math.Abs(float64(w[o*in+int(j)]))
			}
			return s
		}
		sort.SliceStable(kept[grp], func(a, b int) bool { return imp(kept[grp][a]) > imp(kept[grp][b]) })
		kept[grp] = kept[grp][:per]
		slices.Sort(kept[grp])
	}
	return kept, nil
}

// classifierInputs returns the half of the classifier's inputs with the
// largest Σ over classes of |weight|, ascending (or all of them).
func classifierInputs(w []float32, classes, in int, all bool) []int32 {
	idx := make([]int32, in)
	for j := range idx {
		idx[j] = int32(j)
	}
	if all {
		return idx
	}
	imp := make([]float64, in)
	for c := range classes {
		for j := range in {
			imp[j] += math.Abs(float64(w[c*in+j]))
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return imp[idx[a]] > imp[idx[b]] })
	idx = idx[:in/2]
	slices.Sort(idx)
	return idx
}

func gather(v []float32, index []int32) []float32 {
	out := make([]float32, len(index))
	for i, j := range index {
		out[i] = v[j]
	}
	return out
}

// ConvertCurrent condenses the network's current weights, finishing its
// masks first as the rest of training would (the least important inputs
// dropped): from a fresh network, a condensed one of the real shapes and
// work, for benchmarks.
func (n *Net) ConvertCurrent() (*Architecture, []Named, error) {
	n.Condense(0.99)
	ts := map[string]Named{}
	for _, t := range n.Tensors(false) {
		ts[t.Name] = t
	}
	return Convert(n.Cfg, ts, ConvertOptions{})
}
