package onnxio

import (
	"sort"

	"github.com/condensenet/condensenet/onnxio/onnxpb"
)

// A Summary describes a model for people: what `pipeline inspect` prints.
type Summary struct {
	Producer   string            `json:"producer"`
	IRVersion  int64             `json:"ir_version"`
	Opset      int64             `json:"opset"`
	Inputs     []ValueSummary    `json:"inputs"`
	Outputs    []ValueSummary    `json:"outputs"`
	Nodes      int               `json:"nodes"`
	Ops        map[string]int    `json:"ops"` // node count by operator
	Parameters int64             `json:"parameters"`
	Metadata   map[string]string `json:"metadata"`
}

// A ValueSummary is a graph input or output: its name and shape, with
// symbolic dimensions by name.
type ValueSummary struct {
	Name  string `json:"name"`
	Shape []any  `json:"shape"`
}

// Summarize describes m.
func Summarize(m *onnxpb.ModelProto) Summary {
	s := Summary{Producer: m.GetProducerName() + " " + m.GetProducerVersion(), IRVersion: m.GetIrVersion(), Opset: opset(m),
		Ops: map[string]int{}, Metadata: map[string]string{}}
	g := m.GetGraph()
	values := func(vs []*onnxpb.ValueInfoProto) []ValueSummary {
		var out []ValueSummary
		for _, v := range vs {
			var shape []any
			for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
				if p := d.GetDimParam(); p != "" {
					shape = append(shape, p)
				} else {
					shape = append(shape, d.GetDimValue())
				}
			}
			out = append(out, ValueSummary{Name: v.GetName(), Shape: shape})
		}
		return out
	}
	s.Inputs, s.Outputs = values(g.GetInput()), values(g.GetOutput())
	for _, n := range g.GetNode() {
		s.Ops[n.GetOpType()]++
		s.Nodes++
	}
	for _, t := range g.GetInitializer() {
		if t.GetDataType() == int32(onnxpb.TensorProto_FLOAT) {
			s.Parameters += product(t.GetDims())
		}
	}
	for _, p := range m.GetMetadataProps() {
		s.Metadata[p.GetKey()] = p.GetValue()
	}
	return s
}

// OpNames returns the summary's operators, sorted.
func (s Summary) OpNames() []string {
	names := make([]string, 0, len(s.Ops))
	for k := range s.Ops {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
