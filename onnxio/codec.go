package onnxio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/condensenet/condensenet/onnxio/onnxpb"
)

// ErrInvalid means bytes are not an ONNX model this package can use.
var ErrInvalid = errors.New("onnxio: invalid model")

// An InvalidError says what is wrong with a model.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "onnxio: invalid model: " + e.Reason }
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Marshal encodes a model deterministically (same model, same bytes).
func Marshal(m *onnxpb.ModelProto) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Unmarshal decodes a model and checks its structure: a graph with inputs
// and outputs, an opset for the default domain, every node's inputs
// defined before use, initializers whose data matches their dims.
func Unmarshal(b []byte) (*onnxpb.ModelProto, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, &InvalidError{"not an ONNX protobuf: " + err.Error()}
	}
	if err := check(m); err != nil {
		return nil, err
	}
	return m, nil
}

func check(m *onnxpb.ModelProto) error {
	bad := func(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }
	g := m.GetGraph()
	if g == nil || len(g.GetInput()) == 0 || len(g.GetOutput()) == 0 {
		return bad("no graph, or a graph without inputs or outputs (is this an ONNX model?)")
	}
	if m.GetIrVersion() < 3 {
		return bad("IR version %d", m.GetIrVersion())
	}
	if opset(m) == 0 {
		return bad("no opset for the default ONNX domain")
	}
	defined := map[string]bool{}
	for _, in := range g.GetInput() {
		defined[in.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		if _, _, err := tensorData(t); err != nil {
			return err
		}
		defined[t.GetName()] = true
	}
	for i, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if in != "" && !defined[in] {
				return bad("node %d (%s %s) reads %q before anything defines it", i, n.GetOpType(), n.GetName(), in)
			}
		}
		for _, out := range n.GetOutput() {
			defined[out] = true
		}
	}
	for _, out := range g.GetOutput() {
		if !defined[out.GetName()] {
			return bad("graph output %q is never computed", out.GetName())
		}
	}
	return nil
}

// opset returns the model's default-domain opset version (0 if none).
func opset(m *onnxpb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// An Initializer is one of a graph's constants: float32 or int64 values
// (exactly one of the two is non-nil) of shape Dims.
type Initializer struct {
	Dims   []int
	Floats []float32
	Ints   []int64 // int64, and the quantised models' int8, uint8 and int32
	Type   onnxpb.TensorProto_DataType
}

// Initializers returns m's graph constants by name.
func Initializers(m *onnxpb.ModelProto) (map[string]Initializer, error) {
	out := map[string]Initializer{}
	for _, t := range m.GetGraph().GetInitializer() {
		f, i, err := tensorData(t)
		if err != nil {
			return nil, err
		}
		dims := make([]int, len(t.GetDims()))
		for k, d := range t.GetDims() {
			dims[k] = int(d)
		}
		out[t.GetName()] = Initializer{Dims: dims, Floats: f, Ints: i, Type: onnxpb.TensorProto_DataType(t.GetDataType())}
	}
	return out, nil
}

// tensorData decodes an initializer as float32 or integer values (exactly
// one of the two is non-nil), checking the count against the dims.
func tensorData(t *onnxpb.TensorProto) ([]float32, []int64, error) {
	n := int64(1)
	for _, d := range t.GetDims() {
		if d < 0 || d > 1<<31 {
			return nil, nil, &InvalidError{fmt.Sprintf("initializer %q has dimension %d", t.GetName(), d)}
		}
		n *= d
		if n > 1<<31 {
			return nil, nil, &InvalidError{fmt.Sprintf("initializer %q is too large (%v)", t.GetName(), t.GetDims())}
		}
	}
	raw := t.GetRawData()
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		if raw == nil {
			if int64(len(t.GetFloatData())) != n {
				return nil, nil, &InvalidError{fmt.Sprintf("initializer %q: %d floats for dims %v", t.GetName(), len(t.GetFloatData()), t.GetDims())}
			}
			return t.GetFloatData(), nil, nil
		}
		if int64(len(raw)) != 4*n {
			return nil, nil, &InvalidError{fmt.Sprintf("initializer %q: %d bytes of raw data for dims %v", t.GetName(), len(raw), t.GetDims())}
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return v, nil, nil
	case onnxpb.TensorProto_INT64:
		if raw == nil {
			if int64(len(t.GetInt64Data())) != n {
				return nil, nil, &InvalidError{fmt.Sprintf("initializer %q: %d int64s for dims %v", t.GetName(), len(t.GetInt64Data()), t.GetDims())}
			}
			return nil, t.GetInt64Data(), nil
		}
		if int64(len(raw)) != 8*n {
			return nil, nil, &InvalidError{fmt.Sprintf("initializer %q: %d bytes of raw data for dims %v", t.GetName(), len(raw), t.GetDims())}
		}
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return nil, v, nil
	}
	if lo, _, width := integerRange(onnxpb.TensorProto_DataType(t.GetDataType())); width > 0 && raw != nil {
		if int64(len(raw)) != int64(width)*n {
			return nil, nil, &InvalidError{fmt.Sprintf("initializer %q: %d bytes of raw data for dims %v", t.GetName(), len(raw), t.GetDims())}
		}
		v := make([]int64, n)
		for i := range v {
			switch {
			case width == 4:
				v[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			case lo < 0:
				v[i] = int64(int8(raw[i]))
			default:
				v[i] = int64(raw[i])
			}
		}
		return nil, v, nil
	}
	return nil, nil, &InvalidError{fmt.Sprintf("initializer %q has data type %d; only float32, int64 and raw int8, uint8 and int32 are read", t.GetName(), t.GetDataType())}
}
