package onnxio

import (
	"errors"
	"slices"
	"testing"
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
