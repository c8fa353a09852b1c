package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
	exportVersion   = 2
	parityImages    = 8
	parityTolerance = 1e-4
	// int8ParityTolerance is the int8 model's, a fraction of the logits' range.
	int8ParityTolerance = 0.05
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
	m := exportGraph(arch, tensors, nil, e.Config, ds, meta)
	b, err := onnxio.Marshal(m)
	if err != nil {
		return nil, err
	}
	n := min(parityImages, ds.Test.Len())
	cn, err := model.NewCondensed(arch, tensors, n, cpu.New(0))
	if err != nil {
		return nil, err
	}
	parity, err := checkParity(b, arch, ds, e.Config.IncludePreprocessing, cn.Forward, n)
	if err != nil {
		return nil, err
	}
	parity.Tolerance = parityTolerance
	if parity.MaxAbsDiff > parity.Tolerance || !parity.ArgmaxAgree {
		return nil, fmt.Errorf("the written model disagrees with the condensed network: max |difference| %.3g over %d test images (tolerance %g), argmax agree %v",
			parity.MaxAbsDiff, parity.Images, parity.Tolerance, parity.ArgmaxAgree)
	}
	out := &artifacts.ONNXModel{Model: b, Parity: parity, Description: fmt.Sprintf("model.onnx, opset %d, %.1f MB; matches the engine to %.2g on %d test images",
		e.Config.Opset, float64(len(b))/1e6, parity.MaxAbsDiff, parity.Images)}
	scales, err := model.LoadInt8Scales(env.Inputs["condense"])
	if err != nil || scales == nil || rep.Int8 == nil {
		return out, err
	}
	if out.Int8, out.Int8Parity, err = e.int8(arch, tensors, scales, ds, rep, meta, n); err != nil {
		return nil, err
	}
	out.Description += fmt.Sprintf("; model.int8.onnx %.1f MB, within %.2g", float64(len(out.Int8))/1e6, out.Int8Parity.MaxAbsDiff)
	return out, nil
}

// int8 writes the int8 form as a QDQ model and checks it against the
// engine's int8 network on n test images. The two round a value that
// falls within float32 rounding of a step's middle differently (the
// engine folds the BatchNorm into its quantisation), so a step may differ
// and the tolerance is a fraction of the logits' range, not 1e-4.
func (e *Export) int8(arch *model.Architecture, tensors []model.Named, scales *model.Int8Scales, ds *artifacts.Dataset, rep *artifacts.Report,
	meta map[string]string, n int) ([]byte, *artifacts.Parity, error) {
	q, err := model.Int8Layers(arch, tensors, scales)
	if err != nil {
		return nil, nil, err
	}
	meta = maps.Clone(meta)
	meta["quantization"] = fmt.Sprintf("int8 QDQ: each dense layer's convolutions take uint8 inputs (one scale per tensor, zero point 0, calibrated by %s over %d training images) "+
		"and int8 weights (symmetric, a scale per output channel, the second BatchNorm folded into the 1x1 convolution first), and the 3x3 convolution's output is int8; "+
		"the stem, the first BatchNorms, the pools and the classifier are float32", scales.Method, scales.Images)
	meta["test_top1"] = fmt.Sprintf("%.4f", 1-rep.Int8.Top1Error)
	if rep.HasTop5() {
		meta["test_top5"] = fmt.Sprintf("%.4f", 1-rep.Int8.Top5Error)
	}
	b, err := onnxio.Marshal(exportGraph(arch, tensors, q, e.Config, ds, meta))
	if err != nil {
		return nil, nil, err
	}
	i8, err := model.NewCondensedInt8(arch, tensors, scales, n, cpu.New(0))
	if err != nil {
		return nil, nil, err
	}
	p, err := checkParity(b, arch, ds, e.Config.IncludePreprocessing, i8.Forward, n)
	if err != nil {
		return nil, nil, err
	}
	p.Tolerance = int8ParityTolerance * p.Range
	if p.MaxAbsDiff > p.Tolerance {
		return nil, nil, fmt.Errorf("the written int8 model disagrees with the engine's int8 network: max |difference| %.3g over %d test images (tolerance %.3g, %g of the logits' range)",
			p.MaxAbsDiff, p.Images, p.Tolerance, int8ParityTolerance)
	}
	return b, &p, nil
}

// ONNX returns a condensed network as an ONNX file without metadata or
// preprocessing, for benchmarks and tests against other runtimes; the
// export stage's file adds the class names and normalisation.
func ONNX(arch *model.Architecture, tensors []model.Named, opset int) ([]byte, error) {
	return onnxio.Marshal(exportGraph(arch, tensors, nil, ExportConfig{Opset: opset}, nil, nil))
}

// ONNXInt8 returns the int8 form of a condensed network as a QDQ ONNX
// file, as ONNX does the float32 one.
func ONNXInt8(arch *model.Architecture, tensors []model.Named, scales *model.Int8Scales, opset int) ([]byte, error) {
	q, err := model.Int8Layers(arch, tensors, scales)
	if err != nil {
		return nil, err
	}
	return onnxio.Marshal(exportGraph(arch, tensors, q, ExportConfig{Opset: opset}, nil, nil))
}

// exportGraph builds the condensed network as an ONNX graph over NCHW
// tensors with a symbolic batch: input "input" (N, 3, size, size), output
// "logits" (N, classes). Initializers keep the PyTorch module names. With
// c.IncludePreprocessing, ds's normalisation comes first. With q, the
// dense layers' convolutions are int8 (model.Int8Layer), written as QDQ:
// QuantizeLinear and DequantizeLinear around each, which runtimes fuse
// into integer convolutions.
func exportGraph(arch *model.Architecture, tensors []model.Named, q []model.Int8Layer, c ExportConfig, ds *artifacts.Dataset, meta map[string]string) *onnxpb.ModelProto {
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
			// Shuffle: (N, G, out/G, H, W), swap axes 1 and 2, flatten; 0 keeps the batch.
			shuffle := func(in string) string {
				g := int64(cfg.Group1x1)
				b.Node("Reshape", []string{in, ints(pre+"conv_1.shuffle.shape1", []int64{0, g, k4 / g, int64(h), int64(h)})}, []string{pre + "conv_1.shuffle.split"})
				b.Node("Transpose", []string{pre + "conv_1.shuffle.split"}, []string{pre + "conv_1.shuffle.swap"}, onnxio.Ints("perm", 0, 2, 1, 3, 4))
				b.Node("Reshape", []string{pre + "conv_1.shuffle.swap", ints(pre+"conv_1.shuffle.shape2", []int64{0, k4, int64(h), int64(h)})}, []string{pre + "conv_1.shuffle"})
				return pre + "conv_1.shuffle"
			}
			out := pre + "conv_2.conv"
			if q == nil {
				b.Node("Conv", []string{r, float(pre + "conv_1.conv.weight")}, []string{pre + "conv_1.conv"},
					onnxio.Ints("kernel_shape", 1, 1), onnxio.Int("group", int64(cfg.Group1x1)))
				r = norm(pre+"conv_2.norm", shuffle(pre+"conv_1.conv"))
				b.Node("Conv", []string{r, float(pre + "conv_2.conv.weight")}, []string{out},
					onnxio.Ints("kernel_shape", 3, 3), onnxio.Ints("pads", 1, 1, 1, 1), onnxio.Int("group", int64(cfg.Group3x3)))
			} else {
				ql := q[li-1]
				qdq := qdqWriter{b: b}
				in := qdq.dequantize(qdq.quantize(r, pre+"conv_1.input", ql.Input1x1, onnxpb.TensorProto_UINT8), pre+"conv_1.input")
				b.Node("Conv", []string{in, qdq.weights(pre+"conv_1.conv", t[pre+"conv_1.conv.weight"].Shape, ql.Conv1), qdq.bias(pre+"conv_1.conv", ql.Bias1, ql.Input1x1, ql.Conv1.Scale)},
					[]string{pre + "conv_1.conv"}, onnxio.Ints("kernel_shape", 1, 1), onnxio.Int("group", int64(cfg.Group1x1)))
				b.Node("Relu", []string{pre + "conv_1.conv"}, []string{pre + "conv_1.relu"})
				// The shuffle moves the uint8 values between their quantisation and dequantisation.
				in = qdq.dequantize(shuffle(qdq.quantize(pre+"conv_1.relu", pre+"conv_2.input", ql.Input3x3, onnxpb.TensorProto_UINT8)), pre+"conv_2.input")
				b.Node("Conv", []string{in, qdq.weights(pre+"conv_2.conv", t[pre+"conv_2.conv.weight"].Shape, ql.Conv2)}, []string{pre + "conv_2.conv"},
					onnxio.Ints("kernel_shape", 3, 3), onnxio.Ints("pads", 1, 1, 1, 1), onnxio.Int("group", int64(cfg.Group3x3)))
				out = qdq.dequantize(qdq.quantize(out, pre+"conv_2.output", ql.Output3x3, onnxpb.TensorProto_INT8), pre+"conv_2.output")
			}
			b.Node("Concat", []string{x, out}, []string{pre + "concat"}, onnxio.Int("axis", 1))
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
// the engine's network on the first n test images; the caller sets the
// tolerance.
func checkParity(b []byte, arch *model.Architecture, ds *artifacts.Dataset, raw bool, net classifier, n int) (artifacts.Parity, error) {
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
	want := make([]float32, n*arch.Config.Classes)
	net(want, nhwc)
	got := out["logits"].Data
	p := artifacts.Parity{Images: n, ArgmaxAgree: true, Evaluator: "onnxio.Eval (Go reference)"}
	k := arch.Config.Classes
	for i := range n {
		if argmax(got[i*k:(i+1)*k]) != argmax(want[i*k:(i+1)*k]) {
			p.ArgmaxAgree = false
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range want {
		p.MaxAbsDiff = max(p.MaxAbsDiff, math.Abs(float64(got[i]-want[i])))
		lo, hi = min(lo, float64(want[i])), max(hi, float64(want[i]))
	}
	p.Range = hi - lo
	return p, nil
}

// qdqWriter writes the QuantizeLinear and DequantizeLinear nodes of an
// int8 layer, and its integer initializers.
type qdqWriter struct{ b *onnxio.Builder }

// quantize quantises in with quantum scale into typ (zero point 0), its
// constants named after name; dequantize undoes it with them.
func (w qdqWriter) quantize(in, name string, scale float32, typ onnxpb.TensorProto_DataType) string {
	w.b.Float(name+".scale", []int64{}, []float32{scale})
	w.b.Integers(name+".zero_point", typ, []int64{}, []int64{0})
	w.b.Node("QuantizeLinear", []string{in, name + ".scale", name + ".zero_point"}, []string{name + ".quantized"})
	return name + ".quantized"
}

func (w qdqWriter) dequantize(quantized, name string) string {
	w.b.Node("DequantizeLinear", []string{quantized, name + ".scale", name + ".zero_point"}, []string{name + ".dequantized"})
	return name + ".dequantized"
}

// weights writes int8 weights of shape with a scale per output channel.
func (w qdqWriter) weights(conv string, shape []int, q model.QuantisedWeights) string {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	data := make([]int64, len(q.Q))
	for i, v := range q.Q {
		data[i] = int64(v)
	}
	k := []int64{int64(len(q.Scale))}
	w.b.Integers(conv+".weight_int8", onnxpb.TensorProto_INT8, dims, data)
	w.b.Float(conv+".weight_scale", k, q.Scale)
	w.b.Integers(conv+".weight_zero_point", onnxpb.TensorProto_INT8, k, make([]int64, len(q.Scale)))
	w.b.Node("DequantizeLinear", []string{conv + ".weight_int8", conv + ".weight_scale", conv + ".weight_zero_point"}, []string{conv + ".weight"}, onnxio.Int("axis", 0))
	return conv + ".weight"
}

// bias writes an int32 bias in steps of inScale·weight scale.
func (w qdqWriter) bias(conv string, bias []int32, inScale float32, wScale []float32) string {
	data, scale := make([]int64, len(bias)), make([]float32, len(bias))
	for i, v := range bias {
		data[i], scale[i] = int64(v), float32(float64(inScale)*float64(wScale[i]))
	}
	k := []int64{int64(len(bias))}
	w.b.Integers(conv+".bias_int32", onnxpb.TensorProto_INT32, k, data)
	w.b.Float(conv+".bias_scale", k, scale)
	w.b.Integers(conv+".bias_zero_point", onnxpb.TensorProto_INT32, k, make([]int64, len(bias)))
	w.b.Node("DequantizeLinear", []string{conv + ".bias_int32", conv + ".bias_scale", conv + ".bias_zero_point"}, []string{conv + ".bias"}, onnxio.Int("axis", 0))
	return conv + ".bias"
}
