package model

import (
	"encoding/json"

	"github.com/condensenet/condensenet/artifacts"
)

// LoadCondensed reads a CondensedModel artifact's architecture and tensors.
func LoadCondensed(a *artifacts.Artifact) (*Architecture, []Named, error) {
	cm, err := artifacts.LoadCondensedModel(a)
	if err != nil {
		return nil, nil, err
	}
	var arch Architecture
	if err := json.Unmarshal(cm.Architecture, &arch); err != nil {
		return nil, nil, &artifacts.CorruptError{Dir: a.Dir, File: "architecture.json", Reason: err.Error()}
	}
	ts, _, err := ReadSafetensors(cm.Weights)
	if err != nil {
		return nil, nil, &artifacts.CorruptError{Dir: a.Dir, File: "model.safetensors", Reason: err.Error()}
	}
	var list []Named
	for _, v := range ts {
		list = append(list, v)
	}
	return &arch, list, nil
}

// LoadInt8Scales reads a CondensedModel artifact's int8 calibration; it
// returns nil for an artifact made before there was one.
func LoadInt8Scales(a *artifacts.Artifact) (*Int8Scales, error) {
	b, err := artifacts.ReadCondensedInt8(a)
	if err != nil || b == nil {
		return nil, err
	}
	var s Int8Scales
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, &artifacts.CorruptError{Dir: a.Dir, File: "int8.json", Reason: err.Error()}
	}
	return &s, nil
}
