package artifacts

// KindCondensedModel is the kind of a CondensedModel artifact.
const (
	KindCondensedModel = "condensed-model"
	condensedSchema    = 1
)

// A CondensedModel is the condensed network: its architecture (the model
// configuration and the channels each layer selects) and its weights.
type CondensedModel struct {
	Architecture []byte // architecture.json
	Weights      []byte // model.safetensors, PyTorch-style names
	// Int8 is int8.json, the int8 form's calibrated activation scales
	// (model.Int8Scales); nil in artifacts made before there was one.
	Int8 []byte
	// Description is the one-line summary shown when the stage finishes.
	Description string
}

const (
	condensedArchFile    = "architecture.json"
	condensedWeightsFile = "model.safetensors"
	condensedInt8File    = "int8.json"
)

func (m *CondensedModel) Info() Info      { return Info{Kind: KindCondensedModel, Schema: condensedSchema} }
func (m *CondensedModel) Summary() string { return m.Description }

func (m *CondensedModel) Write(w *Writer) error {
	if err := w.WriteFile(condensedArchFile, m.Architecture); err != nil {
		return err
	}
	if err := w.WriteFile(condensedWeightsFile, m.Weights); err != nil {
		return err
	}
	if m.Int8 == nil {
		return nil
	}
	return w.WriteFile(condensedInt8File, m.Int8)
}

// LoadCondensedModel reads a CondensedModel artifact.
func LoadCondensedModel(a *Artifact) (*CondensedModel, error) {
	if err := a.expect(KindCondensedModel, condensedSchema); err != nil {
		return nil, err
	}
	m := &CondensedModel{}
	var err error
	if m.Architecture, err = a.ReadFile(condensedArchFile); err != nil {
		return nil, err
	}
	if m.Weights, err = a.ReadFile(condensedWeightsFile); err != nil {
		return nil, err
	}
	if m.Int8, err = ReadCondensedInt8(a); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadCondensedInt8 reads a CondensedModel artifact's int8.json alone (nil
// in artifacts made before there was one), for a reader that has the rest.
func ReadCondensedInt8(a *Artifact) ([]byte, error) {
	if err := a.expect(KindCondensedModel, condensedSchema); err != nil || !a.Has(condensedInt8File) {
		return nil, err
	}
	return a.ReadFile(condensedInt8File)
}
