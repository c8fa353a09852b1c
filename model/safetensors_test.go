package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/condensenet/condensenet/engine/cpu"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []Named{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "a.weight", Shape: []int{1}, Data: []float32{-7.5}},
		{Name: "empty", Shape: []int{0, 4}, Data: nil},
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in, map[string]string{"format": "test"}); err != nil {
		t.Fatal(err)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); (8+hl)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+hl)
	}
	got, meta, err := ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "test" || len(got) != 3 || !slices.Equal(got["b"].Data, in[0].Data) ||
		!slices.Equal(got["b"].Shape, []int{2, 3}) || got["a.weight"].Data[0] != -7.5 {
		t.Errorf("read back %v, %v", got, meta)
	}
	// Writing is deterministic whatever the input order.
	var again bytes.Buffer
	WriteSafetensors(&again, []Named{in[2], in[0], in[1]}, map[string]string{"format": "test"})
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same tensors in another order wrote different bytes")
	}
}

func TestSafetensorsRejects(t *testing.T) {
	var buf bytes.Buffer
	WriteSafetensors(&buf, []Named{{Name: "x", Shape: []int{4}, Data: []float32{1, 2, 3, 4}}, {Name: "y", Shape: []int{2}, Data: []float32{5, 6}}}, nil)
	valid := buf.Bytes()
	hl := int(binary.LittleEndian.Uint64(valid))
	header := func(h string) []byte {
		for len(h)%8 != 0 {
			h += " "
		}
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, 24)...)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"7 bytes":        valid[:7],
		"header only":    valid[:8],
		"cut in header":  valid[:8+hl/2],
		"cut in data":    valid[:len(valid)-3],
		"trailing bytes": append(slices.Clone(valid), 0, 0, 0, 0),
		"huge header":    binary.LittleEndian.AppendUint64(nil, 1<<40),
		"not json":       header("nonsense"),
		"dtype":          header(`{"x":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`),
		"shape vs range": header(`{"x":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}`),
		"range past end": header(`{"x":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`),
		"overlap":        header(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"y":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`),
		"negative dim":   header(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`),
		"unknown field":  header(`{"x":{"dtype":"F32","shape":[6],"data_offsets":[0,24],"extra":1}}`),
		"bad metadata":   header(`{"__metadata__":{"a":1}}`),
	}
	for name, b := range cases {
		if _, _, err := ReadSafetensors(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: ReadSafetensors = %v, want ErrFormat", name, err)
		}
	}
}

func TestNetTensorsRoundTrip(t *testing.T) {
	a, _ := NewNet(smallConfig(), 2, cpu.New(1), 1)
	b, _ := NewNet(smallConfig(), 2, cpu.New(1), 2)
	for i := range a.V.Host {
		a.V.Host[i] = float32(i)
	}
	a.Condense(0.2)
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, a.Tensors(true), nil); err != nil {
		t.Fatal(err)
	}
	ts, _, err := ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts["features.denseblock_1.denselayer_1.conv_1.norm.weight"]; !ok {
		t.Error("no PyTorch-named BN weight in the file")
	}
	if err := b.LoadTensors(ts, true); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.W.Host, b.W.Host) || !slices.Equal(a.S.Host, b.S.Host) || !slices.Equal(a.V.Host, b.V.Host) {
		t.Error("loaded network differs from the saved one")
	}
	delete(ts, "classifier.bias")
	if err := b.LoadTensors(ts, true); !errors.Is(err, ErrFormat) {
		t.Errorf("LoadTensors without classifier.bias = %v, want ErrFormat", err)
	}
	other, _ := NewNet(Config{Stages: []int{2, 3}, Growth: []int{4, 12}, Bottleneck: 4, Group1x1: 4, Group3x3: 4, CondenseFactor: 4, Classes: 5}, 2, cpu.New(1), 1)
	ts, _, _ = ReadSafetensors(buf.Bytes())
	if err := other.LoadTensors(ts, false); !errors.Is(err, ErrFormat) {
		t.Errorf("LoadTensors into another architecture = %v, want ErrFormat", err)
	}
}

func FuzzReadSafetensors(f *testing.F) {
	var buf bytes.Buffer
	WriteSafetensors(&buf, []Named{{Name: "x", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}}, map[string]string{"k": "v"})
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, meta, err := ReadSafetensors(b)
		if err != nil {
			return
		}
		// Whatever is accepted writes back and reads back the same.
		var out []Named
		for _, v := range ts {
			out = append(out, v)
		}
		var w bytes.Buffer
		if err := WriteSafetensors(&w, out, meta); err != nil {
			t.Fatal(err)
		}
		again, _, err := ReadSafetensors(w.Bytes())
		if err != nil || len(again) != len(ts) {
			t.Fatalf("re-read: %v, %d tensors of %d", err, len(again), len(ts))
		}
	})
}

func TestCheckedDetectsDamage(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteChecked(&buf, []Named{{Name: "x", Shape: []int{3}, Data: []float32{1, 2, 3}}}, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if ts, meta, err := ReadChecked(b); err != nil || meta["a"] != "b" || ts["x"].Data[2] != 3 {
		t.Fatalf("ReadChecked = %v, %v, %v", ts, meta, err)
	}
	b[len(b)-2] ^= 1 // a flipped bit in the data: plain safetensors cannot see it
	if _, _, err := ReadSafetensors(b); err != nil {
		t.Fatalf("plain read of a data bit flip: %v", err)
	}
	if _, _, err := ReadChecked(b); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadChecked after a bit flip = %v, want ErrFormat", err)
	}
}
