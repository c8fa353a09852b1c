package model

import (
	"fmt"
	"math/rand/v2"

	"github.com/condensenet/condensenet/engine"
)

// Net is the CondenseNet training network for a fixed batch size: every
// parameter, gradient, momentum and activation buffer is allocated by
// NewNet, and Forward, Backward and Update allocate nothing.
//
// Each dense block writes its layers' outputs into one channels-last buffer
// (P, Width), each layer reading the prefix written before it, so the
// concatenation costs nothing. A layer is
//
//	learned group conv: BN → ReLU → [dropout] → 1×1 conv (weight ⊙ mask)
//	then:               BN → ReLU → 3×3 conv, groups group_3x3
//
// and blocks are joined by 2×2 average pooling.
type Net struct {
	Cfg Config
	N   int // batch size
	be  engine.Backend

	Params *table         // trainable: conv, BN and linear weights and biases
	State  *table         // not trained: BN running statistics, LGC masks
	W      *engine.Tensor // (Params.size) parameters
	DW     *engine.Tensor // their gradients
	V      *engine.Tensor // SGD momentum
	S      *engine.Tensor // (State.size) state

	x       *engine.Tensor // (N, size, size, 3) input images, normalised
	dx      *engine.Tensor // its gradient (computed, unused)
	stem    engine.Conv
	stemW   int
	blocks  []*block
	bnLast  engine.BatchNorm
	last    normParams
	aLast   *engine.Tensor // (P, Width) after the last BN and ReLU
	daLast  *engine.Tensor
	feat    *engine.Tensor // (N, Width) pooled features
	dFeat   *engine.Tensor
	fcW     int            // classifier weight (classes, Width)
	fcB     int            // classifier bias (classes)
	logits  *engine.Tensor // (N, classes)
	probs   *engine.Tensor
	dLogits *engine.Tensor
	labels  []int32
	loss    *engine.Tensor // (1) mean cross-entropy of the last Forward
	step    uint64         // counts training forwards, to vary dropout masks
	reached int            // condensing stage reached: a host copy of the layers' _stage
}

type block struct {
	h, w, p   int // image size and rows P = N·H·W
	width     int // channels at the end of the block
	buf, dbuf *engine.Tensor
	// moments are buf's channel sums, taken as the channels are written
	// in training, for every BatchNorm that reads buf (nil: each sums its
	// own input).
	moments engine.Moments
	layers  []*layer
	// Backward scratch shared by the block's layers, sized for the widest.
	dA1, dH1, dA2, dW1m *engine.Tensor
	dD1                 *engine.Tensor // gradient after dropout (nil without dropout)
}

type normParams struct{ weight, bias, mean, vari int }

type layer struct {
	c, k         int             // input channels, growth
	first        engine.NormConv // BN1 → ReLU → 1×1 (without dropout)
	second       engine.NormConv // BN2 → ReLU → 3×3
	n1, n2       normParams
	w1, mask, w2 int            // offsets: W, S, W
	count, stage int            // offsets in S: inputs dropped per group, condensing stage reached
	w1m          *engine.Tensor // (4k, c) masked 1×1 weight
	h1           *engine.Tensor // (P, 4k) 1×1 conv output
	// With dropout, the first BatchNorm's output is stored for it.
	bn1   engine.BatchNorm
	conv1 engine.Conv
	a1    *engine.Tensor // (P, c) BN1+ReLU output
	d1    *engine.Tensor // (P, c) after dropout
	dmask *engine.Tensor // (P, c) dropout mask
}

// NewNet allocates the network for batch size n and initialises its
// parameters from seed as the paper describes.
func NewNet(cfg Config, n int, be engine.Backend, seed uint64) (*Net, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	net := &Net{Cfg: cfg, N: n, be: be, Params: &table{}, State: &table{}}
	norm := func(prefix string, c int) normParams {
		return normParams{
			weight: net.Params.add(prefix+".weight", initOne, c),
			bias:   net.Params.add(prefix+".bias", initZero, c),
			mean:   net.State.add(prefix+".running_mean", initZero, c),
			vari:   net.State.add(prefix+".running_var", initOne, c),
		}
	}
	ch := 2 * cfg.Growth[0]
	net.stemW = net.Params.add("features.init_conv.weight", initConv, ch, 3, 3, 3)
	sides := cfg.Sides()
	for b, layers := range cfg.Stages {
		k, h := cfg.Growth[b], sides[b]
		bk := &block{h: h, w: h, p: n * h * h, width: ch + layers*k}
		for l := range layers {
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", b+1, l+1)
			ly := &layer{c: ch, k: k}
			ly.n1 = norm(pre+"conv_1.norm", ch)
			ly.w1 = net.Params.add(pre+"conv_1.conv.weight", initConv, cfg.Bottleneck*k, ch, 1, 1)
			ly.mask = net.State.add(pre+"conv_1._mask", initOne, cfg.Bottleneck*k, ch, 1, 1)
			ly.count = net.State.add(pre+"conv_1._count", initZero, 1)
			ly.stage = net.State.add(pre+"conv_1._stage", initZero, 1)
			ly.n2 = norm(pre+"conv_2.norm", cfg.Bottleneck*k)
			ly.w2 = net.Params.add(pre+"conv_2.conv.weight", initConv, k, cfg.Bottleneck*k/cfg.Group3x3, 3, 3)
			bk.layers = append(bk.layers, ly)
			ch += k
		}
		net.blocks = append(net.blocks, bk)
	}
	net.last = norm("features.norm_last", ch)
	net.fcW = net.Params.add("classifier.weight", initLinear, cfg.Classes, ch)
	net.fcB = net.Params.add("classifier.bias", initZero, cfg.Classes)

	net.W, net.DW, net.V = be.Alloc(net.Params.size), be.Alloc(net.Params.size), be.Alloc(net.Params.size)
	net.S = be.Alloc(net.State.size)
	rng := rand.New(rand.NewPCG(seed, 0x636f6e64))
	w, s := make([]float32, net.Params.size), make([]float32, net.State.size)
	net.Params.initialise(w, rng)
	net.State.initialise(s, rng)
	be.Upload(net.W.V(), w)
	be.Upload(net.S.V(), s)
	net.allocActivations()
	return net, nil
}

func (net *Net) allocActivations() {
	be, cfg, n := net.be, net.Cfg, net.N
	net.x = be.Alloc(n * cfg.ImageFloats())
	net.dx = be.Alloc(n * cfg.ImageFloats())
	net.stem = be.NewConv(cfg.stemShape(n, net.blocks[0].width, false))
	keeper, _ := be.(engine.MomentKeeper)
	for _, bk := range net.blocks {
		bk.buf, bk.dbuf = be.Alloc(bk.p*bk.width), be.Alloc(bk.p*bk.width)
		if keeper != nil {
			bk.moments = keeper.NewMoments(bk.p, bk.width, bk.width)
		}
		maxC, k4 := 0, 0
		for _, ly := range bk.layers {
			k4 = cfg.Bottleneck * ly.k
			maxC = max(maxC, ly.c)
			// Both convolutions, and the second BatchNorm, overwrite
			// their input gradient, in a buffer shared by the block's
			// layers, instead of adding to it after it is cleared.
			n1 := engine.NormShape{P: bk.p, C: ly.c, LdIn: bk.width, LdOut: ly.c, ReLU: true, Moments: bk.moments}
			c1 := engine.ConvShape{N: n, H: bk.h, W: bk.w, C: ly.c, K: k4, R: 1, S: 1, Stride: 1, G: 1, LdIn: ly.c, LdOut: k4, OverwriteDIn: true}
			if cfg.Dropout > 0 {
				ly.bn1, ly.conv1 = be.NewBatchNorm(n1), be.NewConv(c1)
				ly.a1, ly.d1, ly.dmask = be.Alloc(bk.p*ly.c), be.Alloc(bk.p*ly.c), be.Alloc(bk.p*ly.c)
			} else {
				ly.first = be.NewNormConv(n1, c1)
			}
			ly.w1m = be.Alloc(k4 * ly.c)
			ly.h1 = be.Alloc(bk.p * k4)
			ly.second = be.NewNormConv(engine.NormShape{P: bk.p, C: k4, LdIn: k4, LdOut: k4, ReLU: true, OverwriteDIn: true},
				engine.ConvShape{N: n, H: bk.h, W: bk.w, C: k4, K: ly.k, R: 3, S: 3, Stride: 1, Pad: 1, G: cfg.Group3x3, LdIn: k4, LdOut: bk.width, OverwriteDIn: true})
		}
		bk.dA1, bk.dH1, bk.dA2 = be.Alloc(bk.p*maxC), be.Alloc(bk.p*k4), be.Alloc(bk.p*k4)
		bk.dW1m = be.Alloc(k4 * maxC)
		if cfg.Dropout > 0 {
			bk.dD1 = be.Alloc(bk.p * maxC)
		}
	}
	bl := net.blocks[len(net.blocks)-1]
	net.bnLast = be.NewBatchNorm(engine.NormShape{P: bl.p, C: bl.width, LdIn: bl.width, LdOut: bl.width, ReLU: true, Moments: bl.moments})
	net.aLast, net.daLast = be.Alloc(bl.p*bl.width), be.Alloc(bl.p*bl.width)
	net.feat, net.dFeat = be.Alloc(n*bl.width), be.Alloc(n*bl.width)
	net.logits, net.probs, net.dLogits = be.Alloc(n*cfg.Classes), be.Alloc(n*cfg.Classes), be.Alloc(n*cfg.Classes)
	net.loss = be.Alloc(1)
	net.labels = make([]int32, n)
}

func (net *Net) w(off int) engine.View { return net.W.At(off) }
func (net *Net) s(off int) engine.View { return net.S.At(off) }

// SetInput copies a batch of normalised images (N, size, size, 3), channels
// last, and its labels.
func (net *Net) SetInput(images []float32, labels []int32) {
	if len(images) != net.x.Len || len(labels) != net.N {
		panic(fmt.Sprintf("model: batch of %d values and %d labels, net takes %d and %d", len(images), len(labels), net.x.Len, net.N))
	}
	net.be.Upload(net.x.V(), images)
	copy(net.labels, labels)
}

// Forward runs the network on the input set by SetInput. In training mode
// BatchNorm uses batch statistics (and updates the running ones) and
// dropout is on; otherwise running statistics are used. Loss reads the
// resulting loss.
func (net *Net) Forward(train bool) {
	be, cfg := net.be, net.Cfg
	if train {
		net.step++
	}
	norm := func(bn engine.BatchNorm, out, in engine.View, p normParams) {
		if train {
			bn.ForwardTrain(out, in, net.w(p.weight), net.w(p.bias), net.s(p.mean), net.s(p.vari))
		} else {
			bn.ForwardInfer(out, in, net.w(p.weight), net.w(p.bias), net.s(p.mean), net.s(p.vari))
		}
	}
	// sums takes the statistics of channels [c0, c1) of a block's buffer,
	// just written, for the BatchNorms that will read them.
	sums := func(bk *block, c0, c1 int) {
		if train && bk.moments != nil {
			bk.moments.Add(bk.buf.V(), c0, c1)
		}
	}
	net.stem.Forward(net.blocks[0].buf.V(), net.x.V(), net.w(net.stemW))
	for b, bk := range net.blocks {
		sums(bk, 0, bk.layers[0].c) // from the stem or the pooling
		for l, ly := range bk.layers {
			k4 := cfg.Bottleneck * ly.k
			be.MaskForward(ly.w1m.V(), net.w(ly.w1), net.s(ly.mask), k4*ly.c)
			if ly.first != nil {
				p := ly.n1
				ly.first.Forward(ly.h1.V(), bk.buf.V(), net.w(p.weight), net.w(p.bias), net.s(p.mean), net.s(p.vari), ly.w1m.V(), train)
			} else {
				norm(ly.bn1, ly.a1.V(), bk.buf.V(), ly.n1)
				in1 := ly.a1
				if train {
					be.DropoutMask(ly.dmask.V(), bk.p*ly.c, cfg.Dropout, net.step<<16|uint64(b)<<8|uint64(l))
					be.DropoutForward(ly.d1.V(), ly.a1.V(), ly.dmask.V(), bk.p, ly.c, ly.c, ly.c)
					in1 = ly.d1
				}
				ly.conv1.Forward(ly.h1.V(), in1.V(), ly.w1m.V())
			}
			p := ly.n2
			ly.second.Forward(bk.buf.At(ly.c), ly.h1.V(), net.w(p.weight), net.w(p.bias), net.s(p.mean), net.s(p.vari), net.w(ly.w2), train)
			sums(bk, ly.c, ly.c+ly.k)
		}
		if b+1 < len(net.blocks) {
			nb := net.blocks[b+1]
			be.AvgPool2Forward(nb.buf.V(), bk.buf.V(), net.N, bk.h, bk.w, bk.width, bk.width, nb.width)
		}
	}
	bl := net.blocks[len(net.blocks)-1]
	norm(net.bnLast, net.aLast.V(), bl.buf.V(), net.last)
	be.GlobalAvgPoolForward(net.feat.V(), net.aLast.V(), net.N, bl.h*bl.w, bl.width, bl.width)
	be.LinearForward(net.logits.V(), net.feat.V(), net.w(net.fcW), net.w(net.fcB), net.N, bl.width, cfg.Classes)
	be.SoftmaxCrossEntropyForward(net.loss.V(), net.probs.V(), net.logits.V(), net.labels, net.N, cfg.Classes)
}

// ZeroGrad clears the parameter gradients.
func (net *Net) ZeroGrad() { net.be.Zero(net.DW.V(), net.DW.Len) }

// Backward accumulates the gradient of Loss into DW, in the reverse order
// of Forward, which must have run in training mode.
func (net *Net) Backward() {
	be, cfg := net.be, net.Cfg
	bl := net.blocks[len(net.blocks)-1]
	be.Zero(net.dLogits.V(), net.dLogits.Len)
	be.SoftmaxCrossEntropyBackward(net.dLogits.V(), net.probs.V(), net.labels, net.N, cfg.Classes)
	be.Zero(net.dFeat.V(), net.dFeat.Len)
	be.LinearBackward(net.dFeat.V(), net.DW.At(net.fcW), net.DW.At(net.fcB), net.dLogits.V(), net.feat.V(), net.w(net.fcW), net.N, bl.width, cfg.Classes)
	be.Zero(net.daLast.V(), net.daLast.Len)
	be.GlobalAvgPoolBackward(net.daLast.V(), net.dFeat.V(), net.N, bl.h*bl.w, bl.width, bl.width)
	be.Zero(bl.dbuf.V(), bl.dbuf.Len)
	p := net.last
	net.bnLast.Backward(bl.dbuf.V(), net.DW.At(p.weight), net.DW.At(p.bias), net.daLast.V(), bl.buf.V(), net.aLast.V(), net.w(p.weight))

	// settle completes the gradient of channels [c0, c1) of a block's
	// buffer, where the BatchNorms reading them left part of it to the
	// block's moments, before it is read.
	settle := func(bk *block, c0, c1 int) {
		if bk.moments != nil {
			bk.moments.Settle(bk.dbuf.V(), bk.buf.V(), c0, c1)
		}
	}
	for b := len(net.blocks) - 1; b >= 0; b-- {
		bk := net.blocks[b]
		if b+1 < len(net.blocks) {
			nb := net.blocks[b+1]
			settle(nb, 0, nb.layers[0].c)
			be.Zero(bk.dbuf.V(), bk.dbuf.Len)
			be.AvgPool2Backward(bk.dbuf.V(), nb.dbuf.V(), net.N, bk.h, bk.w, bk.width, bk.width, nb.width)
		}
		for l := len(bk.layers) - 1; l >= 0; l-- {
			ly := bk.layers[l]
			k4 := cfg.Bottleneck * ly.k
			// forward: buf[:, c:c+k] = conv2(relu(bn2(h1)))
			p := ly.n2
			settle(bk, ly.c, ly.c+ly.k)
			ly.second.Backward(bk.dH1.V(), net.DW.At(p.weight), net.DW.At(p.bias), net.DW.At(ly.w2), bk.dA2.V(), bk.dbuf.At(ly.c), ly.h1.V(), net.w(p.weight), net.w(ly.w2))
			// forward: h1 = conv1(relu(bn1(buf[:, :c])) [⊙ dropout mask], w1 ⊙ mask);
			// the gradient at buf adds to the block buffer's, where every
			// later layer's already is.
			p = ly.n1
			be.Zero(bk.dW1m.V(), k4*ly.c)
			if ly.first != nil {
				ly.first.Backward(bk.dbuf.V(), net.DW.At(p.weight), net.DW.At(p.bias), bk.dW1m.V(), bk.dA1.V(), bk.dH1.V(), bk.buf.V(), net.w(p.weight), ly.w1m.V())
			} else {
				ly.conv1.Backward(bk.dD1.V(), bk.dW1m.V(), bk.dH1.V(), ly.d1.V(), ly.w1m.V())
				be.Zero(bk.dA1.V(), bk.p*ly.c)
				be.DropoutBackward(bk.dA1.V(), bk.dD1.V(), ly.dmask.V(), bk.p, ly.c, ly.c, ly.c)
				ly.bn1.Backward(bk.dbuf.V(), net.DW.At(p.weight), net.DW.At(p.bias), bk.dA1.V(), bk.buf.V(), ly.a1.V(), net.w(p.weight))
			}
			be.MaskBackward(net.DW.At(ly.w1), bk.dW1m.V(), net.s(ly.mask), k4*ly.c)
		}
	}
	settle(net.blocks[0], 0, net.blocks[0].layers[0].c)
	be.Zero(net.dx.V(), net.dx.Len)
	net.stem.Backward(net.dx.V(), net.DW.At(net.stemW), net.blocks[0].dbuf.V(), net.x.V(), net.w(net.stemW))
}

// Update takes one SGD step with Nesterov momentum and weight decay on
// every parameter.
func (net *Net) Update(lr, momentum, weightDecay float32) {
	net.be.SGDNesterov(net.W.V(), net.DW.V(), net.V.V(), net.W.Len, lr, momentum, weightDecay)
}

// Loss downloads the mean cross-entropy of the last Forward; on a device
// it waits for the queued work.
func (net *Net) Loss() float64 {
	var l [1]float32
	net.be.Download(l[:], net.loss.V())
	return float64(l[0])
}

// Logits downloads the last Forward's logits (N, classes).
func (net *Net) Logits(dst []float32) { net.be.Download(dst, net.logits.V()) }

// ParamList returns the trainable params, in slab order.
func (net *Net) ParamList() []Param { return net.Params.params }

// StateList returns the BN statistics and masks, in slab order.
func (net *Net) StateList() []Param { return net.State.params }

// FLOPs returns the forward pass's floating-point operations for the whole
// batch, counting 2 per multiply-add of every convolution and the classifier
// (the work the GEMMs do; BN, pooling and ReLU are not counted). A training
// step does about three times this.
func (net *Net) FLOPs() int64 {
	cfg, n := net.Cfg, int64(net.N)
	h0 := int64(net.blocks[0].h)
	f := 2 * n * h0 * h0 * 27 * int64(2*cfg.Growth[0])
	for _, bk := range net.blocks {
		for _, ly := range bk.layers {
			k4 := int64(cfg.Bottleneck * ly.k)
			f += 2 * int64(bk.p) * int64(ly.c) * k4
			f += 2 * int64(bk.p) * int64(ly.k) * k4 / int64(cfg.Group3x3) * 9
		}
	}
	return f + 2*n*int64(cfg.Width()*cfg.Classes)
}

// MomentumPrefix names the SGD momentum buffers in checkpoints, one per
// parameter: optimizer.momentum.<parameter name>.
const MomentumPrefix = "optimizer.momentum."

// Tensors returns copies of the parameters and state (BN statistics,
// masks, condensation counters), and the momentum buffers if momentum is
// set, under their PyTorch names.
func (net *Net) Tensors(momentum bool) []Named {
	var out []Named
	add := func(t *engine.Tensor, params []Param, prefix string) {
		for _, p := range params {
			v := make([]float32, p.Size())
			net.be.Download(v, t.At(p.Off))
			out = append(out, Named{Name: prefix + p.Name, Shape: p.Shape, Data: v})
		}
	}
	add(net.W, net.Params.params, "")
	add(net.S, net.State.params, "")
	if momentum {
		add(net.V, net.Params.params, MomentumPrefix)
	}
	return out
}

// LoadTensors sets parameters and state from t, and momentum buffers too if
// momentum is set. It returns a *FormatError naming what is missing or
// misshapen, and changes nothing in that case.
func (net *Net) LoadTensors(t map[string]Named, momentum bool) error {
	if err := checkNames(t, net.Params.params, ""); err != nil {
		return err
	}
	if err := checkNames(t, net.State.params, ""); err != nil {
		return err
	}
	if momentum {
		if err := checkNames(t, net.Params.params, MomentumPrefix); err != nil {
			return err
		}
	}
	set := func(dst *engine.Tensor, params []Param, prefix string) {
		for _, p := range params {
			net.be.Upload(dst.At(p.Off), t[prefix+p.Name].Data)
		}
	}
	set(net.W, net.Params.params, "")
	set(net.S, net.State.params, "")
	if momentum {
		set(net.V, net.Params.params, MomentumPrefix)
	}
	net.reached = net.layerStage(net.blocks[0].layers[0])
	return nil
}

// Step returns the number of training forwards so far, which seeds dropout.
func (net *Net) Step() uint64 { return net.step }

// SetStep restores the training-forward count after loading a checkpoint.
func (net *Net) SetStep(step uint64) { net.step = step }

// RandomBatch returns n images (N, size, size, 3) of standard normal
// values and n uniform labels below classes, the same for the same seed:
// work for benchmarks and tests that need no data set.
func RandomBatch(n, size, classes int, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images := make([]float32, n*size*size*3)
	for i := range images {
		images[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(classes))
	}
	return images, labels
}
