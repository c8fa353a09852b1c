package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/condensenet/condensenet/engine"
)

// Int8 inference of the condensed network (static post-training
// quantisation). Each dense layer's two convolutions run in int8: their
// inputs are quantised to uint8 (both follow a ReLU, so zero points are
// 0) with one scale per tensor, calibrated on training images; their
// weights are int8, symmetric, with a scale per output channel; the
// second BatchNorm is folded into the 1×1 convolution before its weights
// are quantised; the 3×3 convolution's output is quantised to int8 (one
// scale per layer) and kept as float32 in the block's features. The stem,
// the first BatchNorm of each layer, the pools and the classifier stay
// float32. The export writes the same network as QuantizeLinear and
// DequantizeLinear nodes around each convolution.

// CalibrationMethod is how Calibrate chooses activation scales: the
// largest value seen over the calibration images.
const CalibrationMethod = "max"

// Int8Scales are the calibrated activation scales: a quantum per tensor,
// the value of one step of its integer.
type Int8Scales struct {
	Method string            `json:"method"`
	Images int               `json:"images"` // calibration images
	Layers []Int8LayerScales `json:"layers"`
}

// Int8LayerScales are a dense layer's activation quanta.
type Int8LayerScales struct {
	Input1x1  float32 `json:"input_1x1"`  // the 1×1 convolution's input, after BatchNorm and ReLU (uint8)
	Input3x3  float32 `json:"input_3x3"`  // the 3×3 convolution's input, after BatchNorm and ReLU (uint8)
	Output3x3 float32 `json:"output_3x3"` // the 3×3 convolution's output (int8)
}

// Int8Layer is a dense layer's int8 form, as the engine runs it and the
// export writes it.
type Int8Layer struct {
	Int8LayerScales
	// Conv1 is the 1×1 convolution with the second BatchNorm folded in:
	// integer weights (K, C/G) and their per-output-channel scales; Bias1
	// is the BatchNorm's shift, in the convolution's output order, in
	// int32 steps of Input1x1·Conv1.Scale[k] (as QDQ models store biases).
	Conv1, Conv2 QuantisedWeights
	Bias1        []int32
}

// QuantisedWeights are a convolution's int8 weights, stored as float32
// integers in [-127, 127] in PyTorch's (K, C/G, R, S) order, with the
// scale of each output channel.
type QuantisedWeights struct {
	Q     []float32
	Scale []float32
}

// quantiseWeights quantises w, rows of k output channels scaled by mul
// (nil: 1), symmetrically per row.
func quantiseWeights(w []float32, k int, mul []float64) QuantisedWeights {
	q := QuantisedWeights{Q: make([]float32, len(w)), Scale: make([]float32, k)}
	n := len(w) / k
	for o := range k {
		m := 1.0
		if mul != nil {
			m = mul[o]
		}
		top := 0.0
		for _, v := range w[o*n : (o+1)*n] {
			top = max(top, math.Abs(float64(v)*m))
		}
		q.Scale[o] = quantum(top, 127)
		for i, v := range w[o*n : (o+1)*n] {
			q.Q[o*n+i] = float32(max(-127, min(127, math.RoundToEven(float64(v)*m/float64(q.Scale[o])))))
		}
	}
	return q
}

// quantum is the step that maps [0, top] onto [0, steps] (1 for a tensor
// that is always 0).
func quantum(top float64, steps float64) float32 {
	if top == 0 || math.IsNaN(top) || math.IsInf(top, 0) {
		return 1
	}
	return float32(top / steps)
}

// Int8Layers returns each dense layer's int8 form under scales.
func Int8Layers(arch *Architecture, tensors []Named, scales *Int8Scales) ([]Int8Layer, error) {
	cfg := arch.Config
	byName := map[string]Named{}
	for _, v := range tensors {
		byName[v.Name] = v
	}
	total := 0
	for _, n := range cfg.Stages {
		total += n
	}
	if scales == nil {
		return nil, &FormatError{"int8: no scales"}
	}
	if len(scales.Layers) != total {
		return nil, &FormatError{fmt.Sprintf("int8 scales: %d layers for a network of %d", len(scales.Layers), total)}
	}
	var out []Int8Layer
	li := 0
	for b, layers := range cfg.Stages {
		k4 := cfg.Bottleneck * cfg.Growth[b]
		for l := range layers {
			s := scales.Layers[li]
			for _, v := range []float32{s.Input1x1, s.Input3x3, s.Output3x3} {
				if !(v > 0) || math.IsInf(float64(v), 0) {
					return nil, &FormatError{fmt.Sprintf("int8 scales: layer %d has a quantum of %v", li+1, v)}
				}
			}
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", b+1, l+1)
			w1, w2 := byName[pre+"conv_1.conv.weight"], byName[pre+"conv_2.conv.weight"]
			if len(w1.Data) == 0 || len(w2.Data) == 0 || len(w1.Data)%k4 != 0 {
				return nil, &FormatError{fmt.Sprintf("int8: %s has no weights of %d outputs", pre, k4)}
			}
			// The second BatchNorm, read through the shuffle, per 1×1 output.
			bn2 := foldNorm(byName, pre+"conv_2.norm", shuffleIndex(k4, cfg.Group1x1))
			mul, shift := make([]float64, k4), make([]float64, k4)
			for j, o := range bn2.Index {
				mul[o], shift[o] = float64(bn2.Scale[j]), float64(bn2.Shift[j])
			}
			q := Int8Layer{Int8LayerScales: s, Conv1: quantiseWeights(w1.Data, k4, mul), Bias1: make([]int32, k4),
				Conv2: quantiseWeights(w2.Data, cfg.Growth[b], nil)}
			for o := range k4 {
				step := float64(s.Input1x1) * float64(q.Conv1.Scale[o])
				q.Bias1[o] = int32(max(math.MinInt32, min(math.MaxInt32, math.RoundToEven(shift[o]/step))))
			}
			out = append(out, q)
			li++
		}
	}
	return out, nil
}

// NewCondensedInt8 builds the condensed network's int8 form for batch n
// on be, which must run int8 convolutions in pairs (the CPU).
func NewCondensedInt8(arch *Architecture, tensors []Named, scales *Int8Scales, n int, be engine.Backend) (*Condensed, error) {
	if _, ok := be.(engine.Int8Pairer); !ok {
		return nil, fmt.Errorf("model: the int8 network runs on the CPU, not on %s", be.Name())
	}
	q, err := Int8Layers(arch, tensors, scales)
	if err != nil {
		return nil, err
	}
	return newLanes(arch, tensors, q, n, be)
}

// int8Convs sets ly's convolutions to int8: the first reads its input
// through the first BatchNorm and ReLU into uint8 steps of Input1x1 and
// writes the second's uint8 input (as floats); the second reads that
// through the shuffle and writes int8 steps of Output3x3, dequantised.
func (ly *clayer) int8Convs(q Int8Layer) {
	a := ly.in1
	in1 := &engine.Affine{Index: a.Index, Scale: make([]float32, len(a.Scale)), Shift: make([]float32, len(a.Shift)), ReLU: true}
	for j := range a.Scale {
		in1.Scale[j] = float32(float64(a.Scale[j]) / float64(q.Input1x1))
		in1.Shift[j] = float32(float64(a.Shift[j]) / float64(q.Input1x1))
	}
	k4 := len(q.Bias1)
	rq1 := &engine.Requant{Scale: make([]float32, k4), Shift: make([]float32, k4), Lo: 0, Hi: 255, Step: 1}
	for o := range k4 {
		rq1.Scale[o] = float32(float64(q.Input1x1) * float64(q.Conv1.Scale[o]) / float64(q.Input3x3))
		rq1.Shift[o] = float32(float64(q.Bias1[o]) * float64(q.Input1x1) * float64(q.Conv1.Scale[o]) / float64(q.Input3x3))
	}
	idx := ly.in2.Index
	in2 := &engine.Affine{Index: idx, Scale: slices.Repeat([]float32{1}, len(idx)), Shift: make([]float32, len(idx))}
	rq2 := &engine.Requant{Scale: make([]float32, ly.k), Shift: make([]float32, ly.k), Lo: -128, Hi: 127, Step: q.Output3x3}
	for k := range ly.k {
		rq2.Scale[k] = float32(float64(q.Input3x3) * float64(q.Conv2.Scale[k]) / float64(q.Output3x3))
	}
	ly.in1, ly.in2, ly.rq1, ly.rq2 = in1, in2, rq1, rq2
}

// Calibrate runs the float condensed network over images (the
// calibration set, normalised and channels last) n at a time on be and
// returns the activation quanta that CalibrationMethod gives.
func Calibrate(arch *Architecture, tensors []Named, images []float32, n int, be engine.Backend) (*Int8Scales, error) {
	c, err := NewCalibrator(arch, tensors, n, be)
	if err != nil {
		return nil, err
	}
	size := arch.Config.ImageFloats()
	if len(images) == 0 || len(images)%size != 0 {
		return nil, fmt.Errorf("model: calibration needs whole images of %d floats, not %d floats", size, len(images))
	}
	batch := make([]float32, n*size)
	for first := 0; first < len(images)/size; first += n {
		real := min(n, len(images)/size-first)
		clear(batch)
		copy(batch, images[first*size:(first+real)*size])
		c.Observe(batch, real)
	}
	return c.Scales(), nil
}

// A Calibrator measures the ranges of the int8 form's activations on the
// float condensed network, a batch at a time, so that a calibration set
// need not be in memory at once.
type Calibrator struct {
	m       *Condensed
	tops    [][3]float64 // per layer: the 1×1 input's, the 3×3 input's and output's largest magnitudes
	images  int
	feat, h []float32 // a block's features and a 1×1 output, downloaded
}

// NewCalibrator returns a Calibrator of batches of n images on be.
func NewCalibrator(arch *Architecture, tensors []Named, n int, be engine.Backend) (*Calibrator, error) {
	m, err := newCondensedRows(arch, tensors, n, be)
	if err != nil {
		return nil, err
	}
	c := &Calibrator{m: m, h: make([]float32, m.h.Len)}
	for _, bk := range m.blocks {
		c.feat = make([]float32, max(len(c.feat), bk.p*bk.width))
		for range bk.layers {
			c.tops = append(c.tops, [3]float64{})
		}
	}
	return c, nil
}

// Observe runs a batch of n images (normalised, channels last), of which
// the first real count, and raises each layer's largest values.
func (c *Calibrator) Observe(images []float32, real int) {
	m, be := c.m, c.m.be
	c.images += real
	be.Upload(m.x.V(), images)
	m.stem.Forward(m.blocks[0].buf.V(), m.x.V(), m.w(m.stemW))
	li := 0
	for b, bk := range m.blocks {
		feat := c.feat[:bk.p*bk.width]
		pixels := real * bk.h * bk.w
		for _, ly := range bk.layers {
			top := &c.tops[li]
			be.Download(feat, bk.buf.V())
			top[0] = max(top[0], affineTop(feat, ly.in1, pixels, bk.width))
			ly.conv1.Forward(m.h.V(), bk.buf.V(), m.w(ly.w1))
			k4 := len(ly.in2.Index)
			h := c.h[:bk.p*k4]
			be.Download(h, m.h.V())
			top[1] = max(top[1], affineTop(h, ly.in2, pixels, k4))
			ly.conv2.Forward(bk.buf.At(ly.c), m.h.V(), m.w(ly.w2))
			be.Download(feat, bk.buf.V())
			for p := range pixels {
				for _, v := range feat[p*bk.width+ly.c : p*bk.width+ly.c+ly.k] {
					top[2] = max(top[2], math.Abs(float64(v)))
				}
			}
			li++
		}
		if b+1 < len(m.blocks) {
			nb := m.blocks[b+1]
			be.AvgPool2Forward(nb.buf.V(), bk.buf.V(), m.N, bk.h, bk.w, bk.width, bk.width, nb.width)
		}
	}
}

// Scales returns the quanta of what was observed.
func (c *Calibrator) Scales() *Int8Scales {
	s := &Int8Scales{Method: CalibrationMethod, Images: c.images}
	for _, t := range c.tops {
		s.Layers = append(s.Layers, Int8LayerScales{Input1x1: quantum(t[0], 255), Input3x3: quantum(t[1], 255), Output3x3: quantum(t[2], 127)})
	}
	return s
}

// affineTop is the largest output of a over the first p rows of x.
func affineTop(x []float32, a *engine.Affine, p, ld int) float64 {
	top := 0.0
	for r := range p {
		row := x[r*ld:]
		for j := range a.Scale {
			top = max(top, float64(float32(row[a.Source(j)]*a.Scale[j])+a.Shift[j]))
		}
	}
	return top
}
