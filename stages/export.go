package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime/debug"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/onnxio"
	"github.com/condensenet/condensenet/onnxio/onnxpb"
	"github.com/condensenet/condensenet/pipeline"
)

// ExportConfig is the export stage's section.
type ExportConfig struct {
	Opset int `json:"opset"` // 13 to 17
	// IncludePreprocessing adds the normalisation as the first nodes, so
	// the model takes raw RGB in [0, 1].
	IncludePreprocessing bool `json:"include_preprocessing"`
}

// Export writes the condensed network as ONNX and checks, before storing
// it, that the file reproduces the engine's logits on real test images.
type Export struct {
	Config ExportConfig
	Preset string // recorded in the metadata
}

const (
	exportVersion   = 1
	parityImages    = 8
	parityTolerance = 1e-4
)

func (e *Export) Name() string     { return "export" }
func (e *Export) Version() int     { return exportVersion }
func (e *Export) Inputs() []string { return []string{"fetch", "condense", "verify"} }
func (e *Export) WriteKey(w io.Writer) {
	fmt.Fprintf(w, "export.opset %d\nexport.include_preprocessing %v\npreset %s\n", e.Config.Opset, e.Config.IncludePreprocessing, e.Preset)
}

func (e *Export) Run(ctx context.Context, env *pipeline.Env) (pipeline.Output, error) {
	ds, err := artifacts.LoadDataset(env.Inputs["fetch"])
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	arch, tensors, err := model.LoadCondensed(env.Inputs["condense"])
	if err != nil {
		return nil, err
	}
	rep, err := artifacts.LoadReport(env.Inputs["verify"])
	if err != nil {
		return nil, err
	}
	if !rep.Passed {
		return nil, fmt.Errorf("the verify report is a failure, so this model is not exported: %w", verifyFailed(rep))
	}
	cfgJSON, _ := json.Marshal(arch.Config)
	classes, _ := json.Marshal(ds.Classes)
	meta := map[string]string{
		"classes":            string(classes),
		"normalization_mean": fmt.Sprint(ds.Mean),
		"normalization_std":  fmt.Sprint(ds.Std),
		"preset":             e.Preset,
		"model_config":       string(cfgJSON),
		"dataset":            ds.Name,
		"test_top1":          fmt.Sprintf("%.4f", 1-rep.Condensed.Top1Error),
		"input_layout":       "NCHW float32; " + map[bool]string{true: "raw RGB in [0, 1]", false: "normalised with mean and std"}[e.Config.IncludePreprocessing],
		"preprocessing":      arch.Config.Form().Describe(arch.Config.Input()) + map[bool]string{true: "; the graph normalises with normalization_mean and normalization_std", false: "; then normalise with normalization_mean and normalization_std"}[e.Config.IncludePreprocessing],
	}
	if rep.HasTop5() {
		meta["test_top5"] = fmt.Sprintf("%.4f", 1-rep.Condensed.Top5Error)
	}
	m := exportGraph(arch, tensors, e.Config, ds, meta)
	b, err := onnxio.Marshal(m)
	if err != nil {
		return nil, err
	}
	parity, err := checkParity(b, arch, tensors, ds, e.Config.IncludePreprocessing)
	if err != nil {
		return nil, err
	}
	if parity.MaxAbsDiff > parity.Tolerance || !parity.ArgmaxAgree {
		return nil, fmt.Errorf("the written model disagrees with the condensed network: max |difference| %.3g over %d test images (tolerance %g), argmax agree %v",
			parity.MaxAbsDiff, parity.Images, parity.Tolerance, parity.ArgmaxAgree)
	}
	return &artifacts.ONNXModel{Model: b, Parity: parity, Description: fmt.Sprintf("model.onnx, opset %d, %.1f MB; matches the engine to %.2g on %d test images",
		e.Config.Opset, float64(len(b))/1e6, parity.MaxAbsDiff, parity.Images)}, nil
}

// ONNX returns a condensed network as an ONNX file without metadata or
// preprocessing, for benchmarks and tests against other runtimes; the
// export stage's file adds the class names and normalisation.
func ONNX(arch *model.Architecture, tensors []model.Named, opset int) ([]byte, error) {
	return onnxio.Marshal(exportGraph(arch, tensors, ExportConfig{Opset: opset}, nil, nil))
}

// exportGraph builds the condensed network as an ONNX graph over NCHW
// tensors with a symbolic batch: input "input" (N, 3, size, size), output
// "logits" (N, classes). Initializers keep the PyTorch module names. With
// c.IncludePreprocessing, ds's normalisation comes first.
func exportGraph(arch *model.Architecture, tensors []model.Named, c ExportConfig, ds *artifacts.Dataset, meta map[string]string) *onnxpb.ModelProto {
	cfg := arch.Config
	t := map[string]model.Named{}
	for _, v := range tensors {
		t[v.Name] = v
	}
	b := onnxio.NewBuilder("condensenet")
	size := cfg.Input()
	b.Input("input", "N", 3, size, size)
	float := func(name string) string {
		v := t[name]
		dims := make([]int64, len(v.Shape))
		for i, d := range v.Shape {
			dims[i] = int64(d)
		}
		b.Float(name, dims, v.Data)
		return name
	}
	ints := func(name string, v []int64) string {
		b.Int64(name, []int64{int64(len(v))}, v)
		return name
	}
	x := "input"
	if c.IncludePreprocessing {
		b.Float("preprocess.mean", []int64{1, 3, 1, 1}, ds.Mean)
		b.Float("preprocess.std", []int64{1, 3, 1, 1}, ds.Std)
		b.Node("Sub", []string{x, "preprocess.mean"}, []string{"preprocess.centred"})
		b.Node("Div", []string{"preprocess.centred", "preprocess.std"}, []string{"preprocess"})
		x = "preprocess"
	}
	norm := func(prefix, in string) string {
		out := prefix
		b.Node("BatchNormalization", []string{in, float(prefix + ".weight"), float(prefix + ".bias"), float(prefix + ".running_mean"), float(prefix + ".running_var")},
			[]string{out}, onnxio.Float32("epsilon", 1e-5))
		b.Node("Relu", []string{out}, []string{out + ".relu"})
		return out + ".relu"
	}
	stride := int64(cfg.Stride())
	b.Node("Conv", []string{x, float("features.init_conv.weight")}, []string{"features.init_conv"},
		onnxio.Ints("kernel_shape", 3, 3), onnxio.Ints("pads", 1, 1, 1, 1), onnxio.Ints("strides", stride, stride), onnxio.Int("group", 1))
	x = "features.init_conv"
	li, sides := 0, cfg.Sides()
	for bl, layers := range cfg.Stages {
		k, h := cfg.Growth[bl], sides[bl]
		k4 := int64(cfg.Bottleneck * k)
		for l := range layers {
			pre := fmt.Sprintf("features.denseblock_%d.denselayer_%d.", bl+1, l+1)
			idx := make([]int64, len(arch.Layers[li]))
			for i, v := range arch.Layers[li] {
				idx[i] = int64(v)
			}
			li++
			b.Node("Gather", []string{x, ints(pre+"conv_1.index", idx)}, []string{pre + "conv_1.select"}, onnxio.Int("axis", 1))
			r := norm(pre+"conv_1.norm", pre+"conv_1.select")
			b.Node("Conv", []string{r, float(pre + "conv_1.conv.weight")}, []string{pre + "conv_1.conv"},
				onnxio.Ints("kernel_shape", 1, 1), onnxio.Int("group", int64(cfg.Group1x1)))
			// Shuffle: (N, G, out/G, H, W), swap axes 1 and 2, flatten; 0 keeps the batch.
			g := int64(cfg.Group1x1)
			b.Node("Reshape", []string{pre + "conv_1.conv", ints(pre+"conv_1.shuffle.shape1", []int64{0, g, k4 / g, int64(h), int64(h)})}, []string{pre + "conv_1.shuffle.split"})
			b.Node("Transpose", []string{pre + "conv_1.shuffle.split"}, []string{pre + "conv_1.shuffle.swap"}, onnxio.Ints("perm", 0, 2, 1, 3, 4))
			b.Node("Reshape", []string{pre + "conv_1.shuffle.swap", ints(pre+"conv_1.shuffle.shape2", []int64{0, k4, int64(h), int64(h)})}, []string{pre + "conv_1.shuffle"})
			r = norm(pre+"conv_2.norm", pre+"conv_1.shuffle")
			b.Node("Conv", []string{r, float(pre + "conv_2.conv.weight")}, []string{pre + "conv_2.conv"},
				onnxio.Ints("kernel_shape", 3, 3), onnxio.Ints("pads", 1, 1, 1, 1), onnxio.Int("group", int64(cfg.Group3x3)))
			b.Node("Concat", []string{x, pre + "conv_2.conv"}, []string{pre + "concat"}, onnxio.Int("axis", 1))
			x = pre + "concat"
		}
		if bl+1 < len(cfg.Stages) {
			name := fmt.Sprintf("features.transition_%d.pool", bl+1)
			b.Node("AveragePool", []string{x}, []string{name}, onnxio.Ints("kernel_shape", 2, 2), onnxio.Ints("strides", 2, 2))
			x = name
		}
	}
	r := norm("features.norm_last", x)
	b.Node("GlobalAveragePool", []string{r}, []string{"features.pool_last"})
	b.Node("Flatten", []string{"features.pool_last"}, []string{"features.flatten"}, onnxio.Int("axis", 1))
	idx := make([]int64, len(arch.Classifier))
	for i, v := range arch.Classifier {
		idx[i] = int64(v)
	}
	b.Node("Gather", []string{"features.flatten", ints("classifier.index", idx)}, []string{"classifier.select"}, onnxio.Int("axis", 1))
	b.Node("Gemm", []string{"classifier.select", float("classifier.linear.weight"), float("classifier.linear.bias")}, []string{"logits"}, onnxio.Int("transB", 1))
	b.Output("logits", "N", cfg.Classes)
	return b.Model(c.Opset, "condensenet", producerVersion(), meta)
}

// producerVersion is this program's module version, or "devel".
func producerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// checkParity runs the written bytes through the reference evaluator and
// the engine's condensed network on the first test images.
func checkParity(b []byte, arch *model.Architecture, tensors []model.Named, ds *artifacts.Dataset, raw bool) (artifacts.Parity, error) {
	n := min(parityImages, ds.Test.Len())
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		return artifacts.Parity{}, fmt.Errorf("the written model does not read back: %w", err)
	}
	batch := batcher(ds, &ds.Test, n, &arch.Config)
	nhwc, labels := make([]float32, batch.Floats()), make([]int32, n)
	if _, err := batch.Fill(nhwc, labels, 0, 0); err != nil {
		return artifacts.Parity{}, err
	}
	// The same images in NCHW, normalised or raw as the model expects.
	nchw := make([]float32, len(nhwc))
	size := arch.Config.Input()
	hw := size * size
	for i := range n {
		for p := range hw {
			for ch := range 3 {
				v := nhwc[(i*hw+p)*3+ch]
				if raw {
					v = v*ds.Std[ch] + ds.Mean[ch]
				}
				nchw[(i*3+ch)*hw+p] = v
			}
		}
	}
	out, err := onnxio.Eval(m, map[string]onnxio.Tensor{"input": {Dims: []int{n, 3, size, size}, Data: nchw}})
	if err != nil {
		return artifacts.Parity{}, err
	}
	cn, err := model.NewCondensed(arch, tensors, n, cpu.New(0))
	if err != nil {
		return artifacts.Parity{}, err
	}
	want := make([]float32, n*arch.Config.Classes)
	cn.Forward(want, nhwc)
	got := out["logits"].Data
	p := artifacts.Parity{Images: n, Tolerance: parityTolerance, ArgmaxAgree: true, Evaluator: "onnxio.Eval (Go reference)"}
	k := arch.Config.Classes
	for i := range n {
		if argmax(got[i*k:(i+1)*k]) != argmax(want[i*k:(i+1)*k]) {
			p.ArgmaxAgree = false
		}
	}
	for i := range want {
		p.MaxAbsDiff = max(p.MaxAbsDiff, math.Abs(float64(got[i]-want[i])))
	}
	return p, nil
}
