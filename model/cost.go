package model

// Counting FLOPs and parameters by the paper's rules (condensenet.md):
// multiply-adds of convolutions (in·out·kh·kw·oh·ow/groups) and of the
// linear layer (its weights plus biases); one op per ReLU element; kh·kw
// per output element of average pooling; none for BatchNorm, index-select
// or the shuffle. Parameters are convolution and linear weights and
// biases and BatchNorm weights and biases.

// A Cost is a network's size under those rules.
type Cost struct {
	FLOPs  int64 `json:"flops"`
	Params int64 `json:"params"`
}

// CondensedCost is the cost of the condensed network: each learned group
// convolution keeps in·G/C selected inputs in G groups, and the classifier
// half of its inputs. It reproduces the paper's FLOPs column exactly.
func (c *Config) CondensedCost() Cost { return c.cost(true) }

// TrainingCost is the cost of the training network, whose 1×1
// convolutions are dense (masked, not pruned).
func (c *Config) TrainingCost() Cost { return c.cost(false) }

func (c *Config) cost(condensed bool) Cost {
	var f, p int64
	ch := int64(2 * c.Growth[0])
	sides := c.Sides()
	h := int64(sides[0])
	f += 3 * ch * 9 * h * h // stem
	p += 3 * ch * 9
	for b, layers := range c.Stages {
		k4, k := int64(c.Bottleneck*c.Growth[b]), int64(c.Growth[b])
		h = int64(sides[b])
		hw := h * h
		for range layers {
			in, groups := ch, int64(1)
			if condensed {
				in, groups = ch*int64(c.Group1x1)/int64(c.CondenseFactor), int64(c.Group1x1)
			}
			p += 2 * in                              // BN on the (selected) inputs
			f += in * hw                             // ReLU
			f += in * k4 * hw / groups               // 1×1 conv
			p += in * k4 / groups                    //
			p += 2 * k4                              // BN
			f += k4 * hw                             // ReLU
			f += k4 * k * 9 * hw / int64(c.Group3x3) // 3×3 conv
			p += k4 * k * 9 / int64(c.Group3x3)
			ch += k
		}
		if b+1 < len(c.Stages) {
			f += 4 * ch * (h / 2) * (h / 2) // 2×2 average pool
		}
	}
	p += 2 * ch     // last BN
	f += ch * h * h // ReLU
	f += h * h * ch // global average pool: h·h per output
	in := ch
	if condensed {
		in = ch / 2
	}
	classes := int64(c.Classes)
	f += in*classes + classes
	p += in*classes + classes
	return Cost{FLOPs: f, Params: p}
}
