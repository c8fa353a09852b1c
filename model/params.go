package model

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// A Param is one named tensor of the network, in a slab shared with the
// others of its kind. Names follow the official PyTorch implementation
// (features.denseblock_1.denselayer_1.conv_1.norm.weight, ...), so
// checkpoints can be loaded there with a few lines.
type Param struct {
	Name  string
	Shape []int // PyTorch's shape: conv weights (K, C/G, R, S)
	Off   int   // offset in the slab
	init  initKind
}

// Size returns the number of elements.
func (p *Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

type initKind int

const (
	initConv   initKind = iota // normal(0, sqrt(2/(R·S·K)))
	initOne                    // BN weight, running variance, mask
	initZero                   // BN bias, running mean, linear bias
	initLinear                 // uniform(±1/sqrt(fan_in)), PyTorch's default
)

// table is an ordered list of params laid out in one slab.
type table struct {
	params []Param
	size   int
}

func (t *table) add(name string, init initKind, shape ...int) int {
	p := Param{Name: name, Shape: shape, Off: t.size, init: init}
	t.params = append(t.params, p)
	t.size += p.Size()
	return p.Off
}

// initialise fills slab per each param's rule, drawing from rng in table order.
func (t *table) initialise(slab []float32, rng *rand.Rand) {
	for _, p := range t.params {
		v := slab[p.Off : p.Off+p.Size()]
		switch p.init {
		case initConv:
			// Kaiming normal over fan-out: the paper's (and DenseNet's) init.
			std := math.Sqrt(2 / float64(p.Shape[0]*p.Shape[2]*p.Shape[3]))
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		case initOne:
			for i := range v {
				v[i] = 1
			}
		case initZero:
			clear(v)
		case initLinear:
			bound := 1 / math.Sqrt(float64(p.Shape[1]))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * bound)
			}
		default:
			panic(fmt.Sprintf("model: param %s has no init", p.Name))
		}
	}
}
