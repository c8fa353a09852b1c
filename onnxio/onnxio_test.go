package onnxio

import (
	"errors"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/onnxio/onnxpb"
)

// shuffleModel is a graph doing the channel shuffle the exporter emits:
// Reshape (0, G, C/G, H, W) → Transpose (0 2 1 3 4) → Reshape (0, C, H, W).
func shuffleModel(c, g int64) []byte {
	b := NewBuilder("shuffle")
	b.Input("x", "N", int(c), 1, 1)
	b.Int64("s1", []int64{5}, []int64{0, g, c / g, 1, 1})
	b.Int64("s2", []int64{4}, []int64{0, c, 1, 1})
	b.Node("Reshape", []string{"x", "s1"}, []string{"split"})
	b.Node("Transpose", []string{"split"}, []string{"swap"}, Ints("perm", 0, 2, 1, 3, 4))
	b.Node("Reshape", []string{"swap", "s2"}, []string{"y"})
	b.Output("y", "N", int(c), 1, 1)
	m, err := Marshal(b.Model(13, "test", "0", map[string]string{"k": "v"}))
	if err != nil {
		panic(err)
	}
	return m
}

func TestEvalShuffle(t *testing.T) {
	m, err := Unmarshal(shuffleModel(6, 2))
	if err != nil {
		t.Fatal(err)
	}
	if m.GetIrVersion() != 7 || m.GetMetadataProps()[0].GetKey() != "k" {
		t.Errorf("IR %d, metadata %v", m.GetIrVersion(), m.GetMetadataProps())
	}
	// Two images of 6 channels: the shuffle in 2 groups maps 0 1 2 3 4 5 to 0 3 1 4 2 5.
	x := []float32{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}
	out, err := Eval(m, map[string]Tensor{"x": {Dims: []int{2, 6, 1, 1}, Data: x}})
	if err != nil {
		t.Fatal(err)
	}
	if y := out["y"]; !slices.Equal(y.Data, []float32{0, 3, 1, 4, 2, 5, 10, 13, 11, 14, 12, 15}) || !slices.Equal(y.Dims, []int{2, 6, 1, 1}) {
		t.Errorf("shuffle = %v %v", y.Dims, y.Data)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	valid := shuffleModel(4, 2)
	b := NewBuilder("bad")
	b.Input("x", 1)
	b.Node("Relu", []string{"nowhere"}, []string{"y"})
	b.Output("y", 1)
	undefined, _ := Marshal(b.Model(13, "t", "0", nil))
	for name, data := range map[string][]byte{
		"empty":          nil,
		"not protobuf":   []byte("\xff\xff\xff garbage"),
		"truncated":      valid[:len(valid)/2],
		"undefined read": undefined,
	} {
		if _, err := Unmarshal(data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Unmarshal = %v, want ErrInvalid", name, err)
		}
	}
}

func TestEvalRejectsUnknownOp(t *testing.T) {
	b := NewBuilder("t")
	b.Input("x", 1, 1, 1, 1)
	b.Node("Softmax", []string{"x"}, []string{"y"})
	b.Output("y", 1, 1, 1, 1)
	m := b.Model(13, "t", "0", nil)
	if _, err := Eval(m, map[string]Tensor{"x": {Dims: []int{1, 1, 1, 1}, Data: []float32{1}}}); err == nil {
		t.Error("Eval of an unsupported operator succeeded")
	}
}

// QuantizeLinear rounds ties to even and saturates in its zero point's
// type; DequantizeLinear undoes it, per tensor or per channel; integer
// initializers read back as written.
func TestEvalQuantizeLinear(t *testing.T) {
	b := NewBuilder("qdq")
	b.Input("x", 1, 6, 1, 1)
	b.Float("s", []int64{}, []float32{0.5})
	b.Integers("zu", onnxpb.TensorProto_UINT8, []int64{}, []int64{3})
	b.Integers("zi", onnxpb.TensorProto_INT8, []int64{}, []int64{-1})
	b.Node("QuantizeLinear", []string{"x", "s", "zu"}, []string{"qu"})
	b.Node("DequantizeLinear", []string{"qu", "s", "zu"}, []string{"yu"})
	b.Node("QuantizeLinear", []string{"x", "s", "zi"}, []string{"qi"})
	b.Node("DequantizeLinear", []string{"qi", "s", "zi"}, []string{"yi"})
	// Per channel: int8 weights (2, 3, 1, 1), a scale and zero point per output channel.
	b.Integers("w", onnxpb.TensorProto_INT8, []int64{2, 3, 1, 1}, []int64{-127, 0, 127, 5, -6, 7})
	b.Float("ws", []int64{2}, []float32{0.25, 2})
	b.Integers("wz", onnxpb.TensorProto_INT8, []int64{2}, []int64{0, 1})
	b.Node("DequantizeLinear", []string{"w", "ws", "wz"}, []string{"wf"}, Int("axis", 0))
	b.Integers("bias", onnxpb.TensorProto_INT32, []int64{2}, []int64{-2147483648, 2147483647})
	b.Float("bs", []int64{2}, []float32{1, 1})
	b.Integers("bz", onnxpb.TensorProto_INT32, []int64{2}, []int64{0, 0})
	b.Node("DequantizeLinear", []string{"bias", "bs", "bz"}, []string{"bf"}, Int("axis", 0))
	for _, o := range []string{"qu", "yu", "qi", "yi", "wf", "bf"} {
		b.Output(o, 1)
	}
	raw, err := Marshal(b.Model(13, "test", "0", nil))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{-100, 0.24, 0.25, 0.75, 1.25, 200} // steps -200, 0.48, 0.5, 1.5, 2.5, 400
	out, err := Eval(m, map[string]Tensor{"x": {Dims: []int{1, 6, 1, 1}, Data: x}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]float32{
		"qu": {0, 3, 3, 5, 5, 255}, "yu": {-1.5, 0, 0, 1, 1, 126},
		"qi": {-128, -1, -1, 1, 1, 127}, "yi": {-63.5, 0, 0, 1, 1, 64},
		"wf": {-31.75, 0, 31.75, 8, -14, 12}, "bf": {-2147483648, 2147483647},
	} {
		if got := out[name].Data; !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
