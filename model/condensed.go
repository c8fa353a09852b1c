package model

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/condensenet/condensenet/engine"
)

// Condensed is the condensed network for inference with a fixed batch
// size. Its learned group convolutions are real grouped convolutions over
// the selected channels, so it does a quarter of the masked network's
// 1×1 work (with G = C = 4).
type Condensed struct {
	Arch *Architecture
	N    int
	be   engine.Backend

	W     *engine.Tensor // all weights and BN statistics, one slab
	table *table

	x      *engine.Tensor // (N, size, size, 3)
	stem   engine.Conv
	stemW  int
	blocks []*cblock
	bnLast engine.BatchNorm
	last   normParams
	aLast  *engine.Tensor
	feat   *engine.Tensor // (N, width)
	sel    *engine.Tensor // (N, width/2) selected features
	fcW    int
	fcB    int
	logits *engine.Tensor
	// Scratch shared by every layer, sized for the widest.
	h *engine.Tensor
	// planes, if set, is the backend's planes: the blocks' features, and
	// what passes between a layer's convolutions, are planes (channel c of
	// pixel p at c·P + p), which the convolutions read and write without
	// transposes; the last BatchNorm, pooling and the classifier's
	// selection then take the selected planes in one pass (lastSel).
	planes  engine.Planar
	lastSel *engine.Affine
	// lanes, if set, are batch-1 networks, one per core, that do the work
	// instead (see NewCondensed); a lane hands its features over through
	// handover.
	lanes    []*Condensed
	handover []float32
	// The blocks before split take as many images at a time as the first
	// (one, or all N), the rest all N (see cblock.n).
	split int
}

// planarOf returns be's planes, if it has them.
func planarOf(be engine.Backend) engine.Planar {
	if p, ok := be.(engine.Planar); ok && p.Planar() {
		return p
	}
	return nil
}

type cblock struct {
	h, w, p, width int
	// n is the images its layers take at a time: in planes, one where an
	// image's planes are large (anImageAtATime), so that they stay in
	// cache through the block, else the batch.
	n int
	// ld is how far apart the block's planes are: p rounded up to a
	// cache line and one line more, so that the same pixel of successive
	// planes falls in different sets of the L1 cache. With planes of
	// 1024 floats, 4 KB apart, a 1×1 convolution reading one pixel of
	// each of its channels had them all in one set; the int8 network's
	// quantising ran at half speed.
	ld     int
	buf    *engine.Tensor
	layers []*clayer
}

// planeStride is the ld of planes of p floats (see cblock).
func planeStride(p int) int { return (p+15)/16*16 + 16 }

// laneChunk is the pixels of a plane that the CPU's 1×1 kernels take at a
// time (two AVX-512 vectors).
const laneChunk = 32

// anImageAtATime reports whether a block of hw pixels an image runs an
// image at a time in a network of several images in planes (see
// cblock.n): unless an image's planes are small and end in a part-filled
// chunk. On the ImageNet network the blocks at 28², 14² and 7² then run
// four images together, which measured 1.10x the images/s at batch 16:
// at 7², 49 pixels fill two chunks to 77%, four images' 196 seven to
// 88%, and each layer's weights (1 MB in the last block) are read once
// for the four. The CIFAR networks' 32², 16² and 8² are whole chunks, and
// ran 3-5% slower four images together.
func anImageAtATime(hw int) bool { return hw%laneChunk == 0 || hw > 1024 }

// laneImages returns the images a lane takes at a time, for batch n on
// lanes cores: the most, up to four, that give every lane the same
// number of turns (at batch 12 on two cores four would leave one core
// idle for a third of the batch), or 1 where no block of arch would run
// them together.
func laneImages(arch *Architecture, n, lanes int) int {
	together := false
	for _, side := range arch.Config.Sides() {
		together = together || !anImageAtATime(side*side)
	}
	for per := 4; per > 1 && together; per-- {
		if n%(per*lanes) == 0 {
			return per
		}
	}
	return 1
}

type clayer struct {
	c, k   int
	index  []int32        // selected input channels
	norm1  string         // the first BatchNorm's tensors' prefix
	in1    *engine.Affine // the selection, that BatchNorm and ReLU, folded into conv1
	norm2  string         // the second BatchNorm's tensors' prefix
	in2    *engine.Affine // that BatchNorm, ReLU and shuffle, folded into conv2
	conv1  engine.Conv    // 1×1, G groups
	conv2  engine.Conv    // 3×3, group_3x3 groups
	w1, w2 int
	// rq1 and rq2, if set, make the convolutions int8 (see int8Convs),
	// which then run as one pair instead of conv1 and conv2.
	rq1, rq2 *engine.Requant
	pair     engine.Int8Pair
}

// NewCondensed builds the condensed network for batch size n from its
// architecture and tensors (as Convert returns them). On a backend that
// splits into cores (engine.Splitter) a batch runs as one image at a time
// on each core (up to four in blocks of small planes, see laneImages): on
// CondenseNet-86 at batch 64 that measured 1.5x the images/s of the whole
// batch's layers split between two cores. Each image's logits are the
// same either way.
func NewCondensed(arch *Architecture, tensors []Named, n int, be engine.Backend) (*Condensed, error) {
	return newLanes(arch, tensors, nil, n, be)
}

// newLanes builds the network, float32 or (with q) int8, as NewCondensed
// says.
func newLanes(arch *Architecture, tensors []Named, q []Int8Layer, n int, be engine.Backend) (*Condensed, error) {
	var cores []engine.Backend
	if s, ok := be.(engine.Splitter); ok && n > 1 {
		cores = s.Split()
	}
	if cores == nil {
		return newCondensedOn(arch, tensors, q, n, be, planarOf(be))
	}
	per := laneImages(arch, n, len(cores))
	first, err := newCondensedOn(arch, tensors, q, per, cores[0], planarOf(cores[0]))
	if err != nil {
		return nil, err
	}
	m := &Condensed{Arch: arch, N: n, be: be, lanes: []*Condensed{first}}
	for _, core := range cores[1:] {
		m.lanes = append(m.lanes, first.Share(per, core))
	}
	// The lanes leave each image's selected features here, and the
	// classifier takes the whole batch at once: one pass over its weights
	// (4 MB on the ImageNet network) instead of one per image.
	m.sel = be.Alloc(n * len(arch.Classifier))
	m.logits = be.Alloc(n * arch.Config.Classes)
	for _, lane := range m.lanes {
		lane.handover = make([]float32, per*len(arch.Classifier))
	}
	return m, nil
}

// Share returns the network for batch n on be reading m's weights, not a
// copy of them: be must reach the memory of m's backend, as the cores
// that a CPU backend's Split returns do (they share the weights'
// arrangements too). The two may run at the same time.
func (m *Condensed) Share(n int, be engine.Backend) *Condensed {
	if m.lanes != nil {
		m = m.lanes[0]
	}
	c := &Condensed{Arch: m.Arch, N: n, be: be, W: m.W, table: m.table, stemW: m.stemW, last: m.last, lastSel: m.lastSel, fcW: m.fcW, fcB: m.fcB}
	if m.planes != nil {
		c.planes = planarOf(be)
	}
	for _, bk := range m.blocks {
		nb := &cblock{h: bk.h, w: bk.w, width: bk.width}
		for _, ly := range bk.layers {
			l := *ly // the weights' offsets and folded BatchNorms; alloc makes its convolutions
			nb.layers = append(nb.layers, &l)
		}
		c.blocks = append(c.blocks, nb)
	}
	c.alloc()
	return c
}

// newCondensedRows builds the float network on be alone with its features
// in rows, as Calibrator reads them.
func newCondensedRows(arch *Architecture, tensors []Named, n int, be engine.Backend) (*Condensed, error) {
	return newCondensedOn(arch, tensors, nil, n, be, nil)
}

// newCondensedOn builds the network on be alone, int8 when q is set, in
// planes when planes is set.
func newCondensedOn(arch *Architecture, tensors []Named, q []Int8Layer, n int, be engine.Backend, planes engine.Planar) (*Condensed, error) {
	cfg := arch.Config
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &Condensed{Arch: arch, N: n, be: be, table: &table{}, planes: planes}
	t := m.table
	// BN statistics sit with the weights: nothing here is trained.
	norm := func(prefix string, c int) normParams {
		return normParams{
			weight: t.add(prefix+".weight", initOne, c), bias: t.add(prefix+".bias", initZero, c),
			mean: t.add(prefix+".running_mean", initZero, c), vari: t.add(prefix+".running_var", initOne, c),
		}
	}
	ch := 2 * cfg.Growth[0]
	m.stemW = t.add("features.init_conv.weight", initConv, ch, 3, 3, 3)
	li, sides := 0, cfg.Sides()
	for b, layers := range cfg.Stages {
		k, h := cfg.Growth[b], sides[b]
		bk := &cblock{h: h, w: h, width: ch + layers*k}
		for l := range layers {
			if li >= len(arch.Layers) || len(arch.Layers[li]) != ch*cfg.Group1x1/cfg.CondenseFactor {
				return nil, &FormatError{fmt.Sprintf("architecture: layer %d of block %d needs %d selected channels", l+1, b+1, ch*cfg.Group1x1/cfg.CondenseFactor)}
			}
			for _, j := range arch.Layers[li] {
				if j < 0 || int(j) >= ch {
					return nil, &FormatError{fmt.Sprintf("architecture: layer %d of block %d selects channel %d of %d", l+1, b+1, j, ch)}
				}
			}
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", b+1, l+1)
			sel := len(arch.Layers[li])
			ly := &clayer{c: ch, k: k, index: arch.Layers[li]}
			ly.norm1 = pre + "conv_1.norm"
			norm(ly.norm1, sel) // checked by name and shape; folded into conv1 below
			ly.w1 = t.add(pre+"conv_1.conv.weight", initConv, cfg.Bottleneck*k, ch/cfg.CondenseFactor, 1, 1)
			ly.norm2 = pre + "conv_2.norm"
			norm(ly.norm2, cfg.Bottleneck*k) // checked by name and shape; folded into conv2 below
			ly.w2 = t.add(pre+"conv_2.conv.weight", initConv, k, cfg.Bottleneck*k/cfg.Group3x3, 3, 3)
			bk.layers = append(bk.layers, ly)
			ch += k
			li++
		}
		m.blocks = append(m.blocks, bk)
	}
	for _, j := range arch.Classifier {
		if j < 0 || int(j) >= ch {
			return nil, &FormatError{fmt.Sprintf("architecture: classifier selects feature %d of %d", j, ch)}
		}
	}
	m.last = norm("features.norm_last", ch)
	m.fcW = t.add("classifier.linear.weight", initLinear, cfg.Classes, len(arch.Classifier))
	m.fcB = t.add("classifier.linear.bias", initZero, cfg.Classes)

	byName := map[string]Named{}
	for _, v := range tensors {
		byName[v.Name] = v
	}
	if err := checkNames(byName, t.params, ""); err != nil {
		return nil, err
	}
	if planes != nil {
		whole := foldNorm(byName, "features.norm_last", nil) // of every channel; the classifier reads some
		m.lastSel = &engine.Affine{Index: arch.Classifier, ReLU: true}
		for _, j := range arch.Classifier {
			m.lastSel.Scale, m.lastSel.Shift = append(m.lastSel.Scale, whole.Scale[j]), append(m.lastSel.Shift, whole.Shift[j])
		}
	}
	data := map[int][]float32{} // int8 weights, by offset, in place of the float ones
	li = 0
	for _, bk := range m.blocks {
		for _, ly := range bk.layers {
			ly.in1 = foldNorm(byName, ly.norm1, ly.index)
			ly.in2 = foldNorm(byName, ly.norm2, shuffleIndex(cfg.Bottleneck*ly.k, cfg.Group1x1))
			if q != nil {
				ly.int8Convs(q[li])
				data[ly.w1], data[ly.w2] = q[li].Conv1.Q, q[li].Conv2.Q
			}
			li++
		}
	}
	m.W = be.Alloc(t.size)
	for _, p := range t.params {
		v, ok := data[p.Off]
		if !ok {
			v = byName[p.Name].Data
		}
		be.Upload(m.W.At(p.Off), v)
	}
	m.alloc()
	return m, nil
}

func (m *Condensed) alloc() {
	be, cfg, n := m.be, m.Arch.Config, m.N
	m.x = be.Alloc(n * cfg.ImageFloats())
	m.split = len(m.blocks)
	for b, bk := range m.blocks {
		bk.n = n
		if m.planes != nil && anImageAtATime(bk.h*bk.w) {
			bk.n = 1
		}
		if bk.n != m.blocks[0].n {
			m.split = min(m.split, b)
		}
		bk.p = bk.n * bk.h * bk.w
		bk.ld = bk.p // rows: unused
		if m.planes != nil {
			bk.ld = planeStride(bk.p)
		}
	}
	stem := cfg.stemShape(m.blocks[0].n, m.blocks[0].width, true)
	if m.planes != nil {
		stem.OutPlanes, stem.LdOut = true, m.blocks[0].ld
	}
	m.stem = be.NewConv(stem)
	maxK4 := 0
	for _, bk := range m.blocks {
		bk.buf = be.Alloc(bk.ld * bk.width)
		for _, ly := range bk.layers {
			k4, sel := cfg.Bottleneck*ly.k, len(ly.index)
			maxK4 = max(maxK4, bk.ld*k4)
			// The index-select and first BatchNorm are fused into the 1×1
			// convolution's read, and the shuffle and second BatchNorm
			// into the 3×3 convolution's. Rows are pixels, their channels
			// (ld) apart, or planes, channels, their pixels (P) apart.
			c1 := engine.ConvShape{N: bk.n, H: bk.h, W: bk.w, C: sel, K: k4, R: 1, S: 1, Stride: 1, G: cfg.Group1x1, LdIn: bk.width, LdOut: k4, Fixed: true, Input: ly.in1, Int8: ly.rq1}
			c2 := engine.ConvShape{N: bk.n, H: bk.h, W: bk.w, C: k4, K: ly.k, R: 3, S: 3, Stride: 1, Pad: 1, G: cfg.Group3x3, LdIn: k4, LdOut: bk.width, Fixed: true, Input: ly.in2, Int8: ly.rq2}
			if m.planes != nil {
				c1.InPlanes, c1.OutPlanes, c1.LdIn, c1.LdOut = true, true, bk.ld, bk.ld
				c2.InPlanes, c2.OutPlanes, c2.LdIn, c2.LdOut = true, true, bk.ld, bk.ld
			}
			if ly.rq1 != nil {
				ly.pair = be.(engine.Int8Pairer).NewInt8Pair(c1, c2) // NewCondensedInt8 checked
				continue
			}
			ly.conv1, ly.conv2 = be.NewConv(c1), be.NewConv(c2)
		}
	}
	m.h = be.Alloc(maxK4)
	if bl := m.blocks[len(m.blocks)-1]; m.planes == nil {
		m.bnLast = be.NewBatchNorm(engine.NormShape{P: bl.p, C: bl.width, LdIn: bl.width, LdOut: bl.width, ReLU: true})
		m.aLast = be.Alloc(bl.p * bl.width)
		m.feat = be.Alloc(n * bl.width)
	}
	m.sel = be.Alloc(n * len(m.Arch.Classifier))
	m.logits = be.Alloc(n * cfg.Classes)
}

func (m *Condensed) w(off int) engine.View { return m.W.At(off) }

func (m *Condensed) norm(bn engine.BatchNorm, out, in engine.View, p normParams) {
	bn.ForwardInfer(out, in, m.w(p.weight), m.w(p.bias), m.w(p.mean), m.w(p.vari))
}

// Forward computes logits (N, classes) for images (N, size, size, 3),
// normalised and channels last, into logits.
func (m *Condensed) Forward(logits, images []float32) {
	if m.lanes != nil {
		m.forwardLanes(images)
	} else {
		m.features(images)
	}
	m.classify(logits)
}

// classify computes the logits of the selected features in sel, with the
// weights of m or, if it has lanes, of theirs (they share one copy).
func (m *Condensed) classify(logits []float32) {
	w := m
	if m.lanes != nil {
		w = m.lanes[0]
	}
	sel, k := len(m.Arch.Classifier), m.Arch.Config.Classes
	m.be.LinearForward(m.logits.V(), m.sel.V(), w.w(w.fcW), w.w(w.fcB), m.N, sel, k)
	m.be.Download(logits, m.logits.V())
}

// features runs the network up to the classifier's selected features,
// which it leaves in sel.
func (m *Condensed) features(images []float32) {
	m.be.Upload(m.x.V(), images)
	for i := 0; i < m.N; i += m.blocks[0].n {
		m.stem.Forward(m.blocks[0].buf.V(), m.x.At(i*m.Arch.Config.ImageFloats()), m.w(m.stemW))
		for b := range m.split {
			m.block(b, i)
		}
	}
	for b := m.split; b < len(m.blocks); b++ {
		m.block(b, 0)
	}
}

// block runs block b's layers on its images from image i on, and what
// follows: the transition, into image i's place in the next block's
// planes, or after the last block the selected features.
func (m *Condensed) block(b, i int) {
	bk := m.blocks[b]
	for _, ly := range bk.layers {
		// select → BN → ReLU → grouped 1×1 (fused); shuffle → BN → ReLU → 3×3 (fused)
		out := bk.buf.At(ly.c) // the layer's channels: in rows, from channel c on; in planes, from plane c
		if m.planes != nil {
			out = bk.buf.At(ly.c * bk.ld)
		}
		if ly.pair != nil {
			ly.pair.Forward(out, bk.buf.V(), m.w(ly.w1), m.w(ly.w2))
			continue
		}
		ly.conv1.Forward(m.h.V(), bk.buf.V(), m.w(ly.w1))
		ly.conv2.Forward(out, m.h.V(), m.w(ly.w2))
	}
	if b+1 == len(m.blocks) {
		m.selected(i)
		return
	}
	nb := m.blocks[b+1]
	if m.planes != nil {
		m.planes.AvgPool2Planes(nb.buf.At(i%nb.n*nb.h*nb.w), bk.buf.V(), bk.width, bk.n, bk.h, bk.w, bk.ld, nb.ld)
		return
	}
	m.be.AvgPool2Forward(nb.buf.V(), bk.buf.V(), m.N, bk.h, bk.w, bk.width, bk.width, nb.width)
}

// selected leaves the last block's selected features of its images from
// image i on in sel.
func (m *Condensed) selected(i int) {
	bl, sel := m.blocks[len(m.blocks)-1], len(m.Arch.Classifier)
	if m.planes != nil {
		m.planes.NormPoolPlanes(m.sel.At(i*sel), bl.buf.V(), m.lastSel, bl.n, bl.h*bl.w, bl.ld)
		return
	}
	m.norm(m.bnLast, m.aLast.V(), bl.buf.V(), m.last)
	m.be.GlobalAvgPoolForward(m.feat.V(), m.aLast.V(), m.N, bl.h*bl.w, bl.width, bl.width)
	m.be.IndexSelectForward(m.sel.V(), m.feat.V(), m.Arch.Classifier, m.N, bl.width, sel)
}

// forwardLanes has each lane take the next of its turns' images (one,
// or up to four: see laneImages) until none are left, and leaves their
// selected features in sel.
func (m *Condensed) forwardLanes(images []float32) {
	size, sel := len(images)/m.N, len(m.Arch.Classifier)
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, lane := range m.lanes {
		wg.Go(func() {
			per := lane.N
			for i := int(next.Add(1) - 1); i*per < m.N; i = int(next.Add(1) - 1) {
				lane.features(images[i*per*size : (i+1)*per*size])
				lane.be.Download(lane.handover, lane.sel.V())
				m.be.Upload(m.sel.At(i*per*sel), lane.handover)
			}
		})
	}
	wg.Wait()
}

// Infer computes the masked training network's logits for images in
// inference mode (running BN statistics, no dropout).
func (net *Net) Infer(logits, images []float32) {
	net.be.Upload(net.x.V(), images)
	net.Forward(false) // its loss uses stale labels and is ignored
	net.Logits(logits)
}

// foldNorm returns the inference BatchNorm at prefix with its ReLU, read
// through idx, as an input transform; its coefficients are computed as the
// CPU backend's BatchNorm computes them.
func foldNorm(byName map[string]Named, prefix string, idx []int32) *engine.Affine {
	gamma, beta := byName[prefix+".weight"].Data, byName[prefix+".bias"].Data
	mean, vari := byName[prefix+".running_mean"].Data, byName[prefix+".running_var"].Data
	a := &engine.Affine{Index: idx, Scale: make([]float32, len(gamma)), Shift: make([]float32, len(gamma)), ReLU: true}
	for j := range gamma {
		rstd := float32(1 / math.Sqrt(float64(vari[j])+1e-5))
		a.Scale[j] = gamma[j] * rstd
		a.Shift[j] = beta[j] - mean[j]*a.Scale[j]
	}
	return a
}

// shuffleIndex is the channel shuffle with g groups of c channels as an
// index: output k·g + j reads input j·(c/g) + k (view (g, c/g), transpose).
func shuffleIndex(c, g int) []int32 {
	idx := make([]int32, c)
	for j := range g {
		for k := range c / g {
			idx[k*g+j] = int32(j*(c/g) + k)
		}
	}
	return idx
}
