// Package classify runs a condensed CondenseNet in a Go program: it loads
// an exported ONNX file or a workdir's condensed model, and classifies
// image.Image values on the project's own engine (package engine/cpu),
// with no cgo and no other runtime. Images are prepared as
// `pipeline predict` and verify prepare them (package imageprep, in the
// network's form: the whole picture resized for the CIFAR form, the centre
// of the picture resized on its short side for the ImageNet form) and
// normalised with the dataset's mean and std.
//
// A Model is safe for concurrent use: each call runs on a network of its
// own, one core's, taken from a pool of at most GOMAXPROCS networks (a
// call beyond that waits for one, since it could not run sooner anyway).
// The networks share one read-only copy of the weights, and of their
// arrangements for the kernels; each has only its activations.
package classify

import (
	"errors"
	"fmt"
	"image"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/imageprep"
	"github.com/condensenet/condensenet/model"
)

// A Model is a condensed network ready to classify images.
type Model struct {
	classes   []string
	mean, std []float32
	size      int // the network's input is size × size RGB
	form      imageprep.Form
	arch      *model.Architecture
	tensors   []model.Named

	mu    sync.Mutex
	idle  []*network
	cores []engine.Backend // one per network that may exist, sharing memory
	made  int              // networks made, each on its core
	first *model.Condensed // the first network, whose weights the others read
	slots chan struct{}    // one per network that may exist
}

// network is a batch-1 condensed network on one core, with its buffers.
type network struct {
	net    *model.Condensed
	x      []float32 // (1, size, size, 3), channels last
	logits []float32
}

// A Prediction is a class and its probability.
type Prediction struct {
	Class       string
	Index       int
	Probability float64
}

// A Result is the probability of every class for one image.
type Result struct {
	Probabilities []float64 // by class index
	classes       []string
}

// Top returns the k most probable classes, most probable first.
func (r Result) Top(k int) []Prediction {
	out := make([]Prediction, len(r.Probabilities))
	for i, p := range r.Probabilities {
		out[i] = Prediction{Class: r.classes[i], Index: i, Probability: p}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Probability > out[b].Probability })
	return out[:min(max(k, 1), len(out))]
}

// Classes returns the class names, by index.
func (m *Model) Classes() []string { return slices.Clone(m.classes) }

// InputSize returns the side of the square images the network takes;
// images of any other size are resized (and cropped) to it, as Prepare
// says.
func (m *Model) InputSize() int { return m.size }

// Classify classifies one image.
func (m *Model) Classify(img image.Image) (Result, error) {
	if err := checkImage(img); err != nil {
		return Result{}, fmt.Errorf("classify: %w", err)
	}
	n, err := m.get()
	if err != nil {
		return Result{}, err
	}
	defer m.put(n)
	return m.run(n, img), nil
}

// ClassifyAll classifies images, one core each at a time, and returns
// their results in order.
func (m *Model) ClassifyAll(imgs []image.Image) ([]Result, error) {
	for i, img := range imgs { // here: a worker's panic would end the caller's process
		if err := checkImage(img); err != nil {
			return nil, fmt.Errorf("classify: image %d: %w", i, err)
		}
	}
	out := make([]Result, len(imgs))
	workers := min(len(imgs), runtime.GOMAXPROCS(0))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			n, err := m.get()
			if err != nil {
				errs[w] = err
				return
			}
			defer m.put(n)
			for i := w; i < len(imgs); i += workers {
				out[i] = m.run(n, imgs[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkImage refuses an image with no pixels, which cannot be resized.
func checkImage(img image.Image) error {
	if img == nil {
		return errors.New("no image (nil)")
	}
	if b := img.Bounds(); b.Empty() {
		return fmt.Errorf("empty image (%d×%d pixels)", b.Dx(), b.Dy())
	}
	return nil
}

// Prepare returns img, which must have pixels, as the network takes it:
// size × size in the network's form (imageprep.Form.Input), normalised,
// channels first (C, H, W), as an exported ONNX model without
// preprocessing takes it too.
func (m *Model) Prepare(img image.Image) []float32 {
	x := m.form.Input(img, m.size)
	imageprep.Normalize(x, m.mean, m.std)
	return x
}

func (m *Model) run(n *network, img image.Image) Result { return m.runPrepared(n, m.Prepare(img)) }

// runPrepared runs n on x, as Prepare returns it.
func (m *Model) runPrepared(n *network, x []float32) Result {
	hw := m.size * m.size
	for c := range 3 { // the engine is channels-last
		for i := range hw {
			n.x[i*3+c] = x[c*hw+i]
		}
	}
	n.net.Forward(n.logits, n.x)
	return Result{Probabilities: softmax(n.logits), classes: m.classes}
}

// ClassifyPrepared classifies an image that is already as Prepare returns
// it: 3 × size × size floats, normalised, channels first (what an exported
// model without preprocessing takes).
func (m *Model) ClassifyPrepared(x []float32) (Result, error) {
	if want := 3 * m.size * m.size; len(x) != want {
		return Result{}, fmt.Errorf("classify: %d values, want 3×%d×%d = %d", len(x), m.size, m.size, want)
	}
	n, err := m.get()
	if err != nil {
		return Result{}, err
	}
	defer m.put(n)
	return m.runPrepared(n, x), nil
}

func softmax(logits []float32) []float64 {
	top := slices.Max(logits)
	p := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v - top))
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// get takes an idle network, or builds one on the next core, waiting
// while every network that may exist is in use.
func (m *Model) get() (*network, error) {
	m.slots <- struct{}{}
	m.mu.Lock()
	if k := len(m.idle); k > 0 {
		n := m.idle[k-1]
		m.idle = m.idle[:k-1]
		m.mu.Unlock()
		return n, nil
	}
	core := m.cores[m.made]
	m.made++
	m.mu.Unlock()
	return m.network(m.first.Share(1, core)), nil
}

// network wraps net with its buffers.
func (m *Model) network(net *model.Condensed) *network {
	return &network{net: net, x: make([]float32, m.size*m.size*3), logits: make([]float32, len(m.classes))}
}

func (m *Model) put(n *network) {
	m.mu.Lock()
	m.idle = append(m.idle, n)
	m.mu.Unlock()
	<-m.slots
}
