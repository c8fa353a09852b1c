package artifacts

import "encoding/json"

// KindONNXModel is the kind of an ONNXModel artifact.
const (
	KindONNXModel = "onnx-model"
	onnxSchema    = 1
)

// Parity records how the exported file's outputs compared with the
// engine's condensed network on real test images.
type Parity struct {
	Images      int     `json:"images"`
	MaxAbsDiff  float64 `json:"max_abs_diff"`
	Tolerance   float64 `json:"tolerance"`
	ArgmaxAgree bool    `json:"argmax_agree"`
	Range       float64 `json:"logits_range"` // the engine's largest logit minus its smallest
	Evaluator   string  `json:"evaluator"`
}

// An ONNXModel is the condensed network as ONNX, with the parity check
// that was run on it before it was stored.
type ONNXModel struct {
	Model  []byte // model.onnx
	Parity Parity // parity.json
	// Int8 is the int8 form as a QDQ model (model.int8.onnx) with its
	// check against the engine's int8 network (parity-int8.json); nil
	// when the condensed model has no int8 calibration.
	Int8        []byte
	Int8Parity  *Parity
	Description string // the one-line summary
}

func (m *ONNXModel) Info() Info      { return Info{Kind: KindONNXModel, Schema: onnxSchema} }
func (m *ONNXModel) Summary() string { return m.Description }

func (m *ONNXModel) Write(w *Writer) error {
	b, err := json.MarshalIndent(m.Parity, "", "  ")
	if err != nil {
		return err
	}
	if err := w.WriteFile("model.onnx", m.Model); err != nil {
		return err
	}
	if err := w.WriteFile("parity.json", append(b, '\n')); err != nil {
		return err
	}
	if m.Int8 == nil {
		return nil
	}
	if b, err = json.MarshalIndent(m.Int8Parity, "", "  "); err != nil {
		return err
	}
	if err := w.WriteFile("model.int8.onnx", m.Int8); err != nil {
		return err
	}
	return w.WriteFile("parity-int8.json", append(b, '\n'))
}
