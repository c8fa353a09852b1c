package classify

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/onnxio"
)

// Open loads a condensed model: an ONNX file exported by `pipeline run
// export` (work/export/model.onnx), or a workdir's condensed model folder
// (work/condense), whose class names and normalisation come from the same
// workdir's dataset.
func Open(path string) (*Model, error) {
	path = filepath.Clean(path) // "work/condense/", as shell completion writes it, is work/condense
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	if st.IsDir() {
		return openCondensed(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	m, err := FromONNX(b)
	if err != nil {
		return nil, fmt.Errorf("classify: %s: %w", path, err)
	}
	return m, nil
}

// openCondensed loads the CondensedModel artifact at dir, in a workdir.
func openCondensed(dir string) (*Model, error) {
	store, err := artifacts.Open(filepath.Dir(dir))
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	a, err := store.Get(filepath.Base(dir))
	if err != nil {
		return nil, fmt.Errorf("classify: %s: %w", dir, err)
	}
	arch, tensors, err := model.LoadCondensed(a)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	data, err := store.Get("fetch")
	if err != nil {
		return nil, fmt.Errorf("classify: the class names of %s: %w", dir, err)
	}
	info, err := artifacts.LoadDatasetInfo(data)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	return newModel(arch, tensors, info.Classes, info.Mean, info.Std)
}

// FromONNX loads an ONNX file exported by this program: the condensed
// network is rebuilt on the engine from its constants (the weights, and
// the channels each layer selects) and its metadata (the configuration,
// class names and normalisation).
func FromONNX(b []byte) (*Model, error) {
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	meta := onnxio.Summarize(m).Metadata
	var cfg model.Config
	var classes []string
	if err := json.Unmarshal([]byte(meta["model_config"]), &cfg); err != nil {
		return nil, fmt.Errorf("no model_config in the metadata (%v): was it exported by this program?", err)
	}
	if err := json.Unmarshal([]byte(meta["classes"]), &classes); err != nil {
		return nil, fmt.Errorf("no class names in the metadata (%v): was it exported by this program?", err)
	}
	mean, err1 := parseFloats(meta["normalization_mean"])
	std, err2 := parseFloats(meta["normalization_std"])
	if err1 != nil || err2 != nil || len(mean) != 3 || len(std) != 3 {
		return nil, fmt.Errorf("normalization_mean %q and normalization_std %q in the metadata: want three numbers each", meta["normalization_mean"], meta["normalization_std"])
	}
	inits, err := onnxio.Initializers(m)
	if err != nil {
		return nil, err
	}
	arch := &model.Architecture{Config: cfg}
	index := func(name string) ([]int32, error) {
		t, ok := inits[name]
		if !ok || t.Ints == nil {
			return nil, fmt.Errorf("no int64 constant %s: was it exported by this program?", name)
		}
		v := make([]int32, len(t.Ints))
		for i, j := range t.Ints {
			v[i] = int32(j)
		}
		return v, nil
	}
	for b, layers := range cfg.Stages {
		for l := range layers {
			idx, err := index(fmt.Sprintf("features.denseblock_%d.denselayer_%d.conv_1.index", b+1, l+1))
			if err != nil {
				return nil, err
			}
			arch.Layers = append(arch.Layers, idx)
		}
	}
	if arch.Classifier, err = index("classifier.index"); err != nil {
		return nil, err
	}
	var tensors []model.Named
	for name, t := range inits {
		if t.Floats != nil && !strings.HasPrefix(name, "preprocess.") {
			tensors = append(tensors, model.Named{Name: name, Shape: t.Dims, Data: t.Floats})
		}
	}
	return newModel(arch, tensors, classes, mean, std)
}

// newModel checks that the network can be built and keeps what builds it.
func newModel(arch *model.Architecture, tensors []model.Named, classes []string, mean, std []float32) (*Model, error) {
	if len(classes) != arch.Config.Classes {
		return nil, fmt.Errorf("classify: %d class names for a network of %d classes", len(classes), arch.Config.Classes)
	}
	m := &Model{classes: classes, mean: mean, std: std, size: arch.Config.Input(), form: arch.Config.Form(), arch: arch, tensors: tensors,
		cores: cpu.New(0).Split()}
	if m.cores == nil { // a single core
		m.cores = []engine.Backend{cpu.New(1)}
	}
	m.slots = make(chan struct{}, len(m.cores))
	first, err := model.NewCondensed(arch, tensors, 1, m.cores[0]) // which checks the tensors
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	m.first, m.made, m.idle = first, 1, []*network{m.network(first)}
	return m, nil
}

// parseFloats reads numbers written by fmt.Sprint of a slice: "[a b c]".
func parseFloats(s string) ([]float32, error) {
	var out []float32
	for _, f := range strings.Fields(strings.Trim(s, "[]")) {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, float32(v))
	}
	return out, nil
}
