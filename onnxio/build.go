// Package onnxio writes, reads and evaluates ONNX models of the kind this
// project exports: a Builder assembles a graph, Marshal and Unmarshal
// convert models to and from bytes (checking their structure), and Eval
// runs the operators we emit, so an export can be checked without another
// runtime. The message types are in onnxio/onnxpb.
package onnxio

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/condensenet/condensenet/onnxio/onnxpb"
)

// A Builder assembles an ONNX graph. Names must be unique; adding a value
// twice is a programming error and panics.
type Builder struct {
	g     *onnxpb.GraphProto
	names map[string]bool
}

// NewBuilder starts a graph called name.
func NewBuilder(name string) *Builder {
	return &Builder{g: &onnxpb.GraphProto{Name: proto.String(name)}, names: map[string]bool{}}
}

func (b *Builder) claim(name string) {
	if b.names[name] {
		panic("onnxio: value " + name + " defined twice")
	}
	b.names[name] = true
}

// A Dim is a dimension: an int for a fixed size, a string for a symbolic one.
type Dim any

func valueInfo(name string, dims []Dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch v := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: v}})
		default:
			panic(fmt.Sprintf("onnxio: dimension %v of %s is neither int nor string", d, name))
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
}

// Input declares a float32 graph input.
func (b *Builder) Input(name string, dims ...Dim) {
	b.claim(name)
	b.g.Input = append(b.g.Input, valueInfo(name, dims))
}

// Output declares a float32 graph output, produced by some node.
func (b *Builder) Output(name string, dims ...Dim) {
	b.g.Output = append(b.g.Output, valueInfo(name, dims))
}

// Float adds a float32 initializer, stored as raw little-endian data.
func (b *Builder) Float(name string, dims []int64, data []float32) {
	b.claim(name)
	if n := product(dims); n != int64(len(data)) {
		panic(fmt.Sprintf("onnxio: initializer %s has dims %v but %d values", name, dims, len(data)))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: float32Bytes(data)})
}

// Int64 adds an int64 initializer (indices, shapes).
func (b *Builder) Int64(name string, dims []int64, data []int64) {
	b.claim(name)
	if n := product(dims); n != int64(len(data)) {
		panic(fmt.Sprintf("onnxio: initializer %s has dims %v but %d values", name, dims, len(data)))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: int64Bytes(data)})
}

// Integers adds an initializer of typ, INT8, UINT8 or INT32 (quantised
// weights, zero points and biases), stored as raw little-endian data.
func (b *Builder) Integers(name string, typ onnxpb.TensorProto_DataType, dims []int64, data []int64) {
	b.claim(name)
	if n := product(dims); n != int64(len(data)) {
		panic(fmt.Sprintf("onnxio: initializer %s has dims %v but %d values", name, dims, len(data)))
	}
	lo, hi, width := integerRange(typ)
	if width == 0 {
		panic(fmt.Sprintf("onnxio: initializer %s: %v is not an integer type Integers writes", name, typ))
	}
	raw := make([]byte, 0, width*len(data))
	for _, v := range data {
		if v < lo || v > hi {
			panic(fmt.Sprintf("onnxio: initializer %s: %d is outside %v", name, v, typ))
		}
		if width == 1 {
			raw = append(raw, byte(v))
		} else {
			raw = binary.LittleEndian.AppendUint32(raw, uint32(v))
		}
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(typ)), RawData: raw})
}

// integerRange is the range and byte width of the integer types of
// quantised models (width 0 for others).
func integerRange(typ onnxpb.TensorProto_DataType) (lo, hi int64, width int) {
	switch typ {
	case onnxpb.TensorProto_INT8:
		return math.MinInt8, math.MaxInt8, 1
	case onnxpb.TensorProto_UINT8:
		return 0, math.MaxUint8, 1
	case onnxpb.TensorProto_INT32:
		return math.MinInt32, math.MaxInt32, 4
	}
	return 0, 0, 0
}

// An Attr is a node attribute.
type Attr = *onnxpb.AttributeProto

// Int is an integer attribute.
func Int(name string, v int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// Ints is an integer-list attribute.
func Ints(name string, v ...int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// Float32 is a float attribute.
func Float32(name string, v float32) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// Node adds a node computing outputs from inputs, named after its first
// output.
func (b *Builder) Node(op string, inputs, outputs []string, attrs ...Attr) {
	for _, o := range outputs {
		b.claim(o)
	}
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: proto.String(outputs[0]), OpType: proto.String(op),
		Input: inputs, Output: outputs, Attribute: attrs})
}

// Model wraps the graph in a model for the default ONNX domain at opset,
// with the IR version that opset shipped with, and metadata (in key order).
func (b *Builder) Model(opset int, producer, version string, meta map[string]string) *onnxpb.ModelProto {
	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(irVersion(opset)),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(opset))}},
		ProducerName:    proto.String(producer),
		ProducerVersion: proto.String(version),
		Graph:           b.g,
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
	return m
}

// irVersion is the IR version released with an opset (onnx/docs/Versioning.md):
// opset 13 → IR 7, 14–15 → 8, 16–17 → 8. Opsets 13 to 17 are supported.
func irVersion(opset int) int64 {
	if opset <= 13 {
		return 7
	}
	return 8
}
