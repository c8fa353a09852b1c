// Package model is CondenseNet: its configuration, the training network
// with learned group convolutions, and the parameter table that names every
// tensor as the official PyTorch implementation does. It runs on any
// engine.Backend and never names one.
package model

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/imageprep"
)

// Config is a CondenseNet architecture: the CIFAR form (32×32 inputs, a
// stride-1 stem) unless InputSize and StemStride say otherwise.
type Config struct {
	Stages         []int   `json:"stages"`          // layers per dense block, e.g. 14-14-14
	Growth         []int   `json:"growth"`          // growth rate per block, e.g. 8-16-32
	Bottleneck     int     `json:"bottleneck"`      // 1×1 conv outputs = Bottleneck·growth (4)
	Group1x1       int     `json:"group_1x1"`       // G: groups of a learned group conv (4)
	Group3x3       int     `json:"group_3x3"`       // groups of the 3×3 conv (4)
	CondenseFactor int     `json:"condense_factor"` // C: each group keeps 1/C of its inputs (4)
	Dropout        float32 `json:"dropout"`         // before each learned group conv (0)
	Lasso          float32 `json:"group_lasso"`     // group-lasso weight λ until the last condensing stage (0)
	Classes        int     `json:"classes"`         // 10 for CIFAR-10
	// InputSize is the side of the square input images (0: 32) and
	// StemStride the first convolution's stride (0: 1); the ImageNet form
	// takes 224 × 224 with a stride-2 stem.
	InputSize  int `json:"input_size,omitempty"`
	StemStride int `json:"stem_stride,omitempty"`
}

// Input returns the side of the square input images.
func (c *Config) Input() int { return cmp.Or(c.InputSize, 32) }

// Stride returns the stem's stride.
func (c *Config) Stride() int { return cmp.Or(c.StemStride, 1) }

// Form returns how a picture becomes this network's input: the ImageNet
// form (a strided stem) takes the centre of the picture resized on its
// short side, as the official code evaluates; the CIFAR form the whole
// picture.
func (c *Config) Form() imageprep.Form {
	if c.Stride() > 1 {
		return imageprep.CentreCrop
	}
	return imageprep.Squash
}

// ImageFloats returns the floats of one input image, 3 × Input()².
func (c *Config) ImageFloats() int { return 3 * c.Input() * c.Input() }

// stemShape is the first convolution, for batch n, writing rows ldOut
// apart.
func (c *Config) stemShape(n, ldOut int, fixed bool) engine.ConvShape {
	return engine.ConvShape{N: n, H: c.Input(), W: c.Input(), C: 3, K: 2 * c.Growth[0], R: 3, S: 3,
		Stride: c.Stride(), Pad: 1, G: 1, LdIn: 3, LdOut: ldOut, Fixed: fixed}
}

// Sides returns the side of each block's feature maps: the stem's output,
// halved by each transition.
func (c *Config) Sides() []int {
	h := (c.Input()-1)/c.Stride() + 1 // a 3×3 convolution padded by 1
	sides := make([]int, len(c.Stages))
	for b := range sides {
		sides[b] = h
		h /= 2
	}
	return sides
}

// CondenseNet86 is the paper's CIFAR-10 network.
func CondenseNet86() Config { return CondenseNet(86) }

// CondenseNet returns CondenseNet-depth for CIFAR-10: three blocks of
// (depth−2)/6 layers, growth 8-16-32, G = C = 4. The paper's table has
// depths 50, 74, 86, 98, 110 and 122.
func CondenseNet(depth int) Config {
	n := (depth - 2) / 6
	return Config{Stages: []int{n, n, n}, Growth: []int{8, 16, 32}, Bottleneck: 4,
		Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 10}
}

// ImageNetCondenseNet returns the paper's ImageNet network with G = C =
// groups (4 or 8): a stride-2 stem on 224 × 224 inputs, blocks of 4-6-8-10-8
// layers with growth 8-16-32-64-128, 1000 classes.
func ImageNetCondenseNet(groups int) Config {
	return Config{Stages: []int{4, 6, 8, 10, 8}, Growth: []int{8, 16, 32, 64, 128}, Bottleneck: 4,
		Group1x1: groups, Group3x3: groups, CondenseFactor: groups, Classes: 1000, InputSize: 224, StemStride: 2}
}

// Check reports every inconsistency, naming the field or layer and numbers.
func (c *Config) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Stages) == 0 || len(c.Stages) != len(c.Growth) {
		bad("stages %v and growth %v: want the same number (≥ 1) of blocks", c.Stages, c.Growth)
		return errors.Join(errs...)
	}
	for name, v := range map[string]int{"bottleneck": c.Bottleneck, "group_1x1": c.Group1x1,
		"group_3x3": c.Group3x3, "condense_factor": c.CondenseFactor, "classes": c.Classes} {
		if v < 1 {
			bad("%s = %d: want ≥ 1", name, v)
		}
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		bad("dropout = %v: want 0 ≤ dropout < 1", c.Dropout)
	}
	if c.Lasso < 0 {
		bad("group_lasso = %v: want ≥ 0", c.Lasso)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	ch := 2 * c.Growth[0]
	for b, n := range c.Stages {
		k := c.Growth[b]
		if n < 1 || k < 1 {
			bad("block %d: stages %d, growth %d: want ≥ 1", b+1, n, k)
			continue
		}
		if (c.Bottleneck*k)%c.Group1x1 != 0 || (c.Bottleneck*k)%c.Group3x3 != 0 || k%c.Group3x3 != 0 || (c.Bottleneck*k)%c.CondenseFactor != 0 {
			bad("block %d: bottleneck·growth = %d must be divisible by group_1x1 %d, group_3x3 %d and condense_factor %d, and growth %d by group_3x3",
				b+1, c.Bottleneck*k, c.Group1x1, c.Group3x3, c.CondenseFactor, k)
		}
		for l := range n {
			if ch%c.CondenseFactor != 0 {
				bad("block %d layer %d: %d input channels not divisible by condense_factor %d", b+1, l+1, ch, c.CondenseFactor)
			}
			ch += k
		}
	}
	if c.InputSize < 0 || c.InputSize > 1024 || c.StemStride < 0 || c.StemStride > 4 {
		bad("input_size %d, stem_stride %d: want 0 (32) to 1024, and 0 (1) to 4", c.InputSize, c.StemStride)
	} else if sides := c.Sides(); sides[len(sides)-1] < 1 {
		bad("stages %v: %d×%d inputs and a stem of stride %d allow at most %d blocks (each transition halves the image)",
			c.Stages, c.Input(), c.Input(), c.Stride(), len(c.Stages)-slices.Index(sides, 0))
	}
	return errors.Join(errs...)
}

// Width returns the channel count after the last block.
func (c *Config) Width() int {
	ch := 2 * c.Growth[0]
	for b, n := range c.Stages {
		ch += n * c.Growth[b]
	}
	return ch
}
