// Package stages holds the pipeline's five stages (fetch, train, condense,
// verify, export) and the configuration they read. Each stage is a function
// of its config section and typed input artifacts, wrapped as a
// pipeline.Stage; this is the only package that converts between cifar,
// model and onnxio types and artifact types.
package stages

import (
	"github.com/condensenet/condensenet/pipeline"
)

// All returns the pipeline's stages in order, configured by cfg.
func All(cfg Config) []pipeline.Stage {
	data := cfg.Data
	if _, ok := FolderPath(data.Dataset); ok && data.ImageSize == 0 {
		data.ImageSize = cfg.Model.Input() // prepared at the network's input size
	}
	return []pipeline.Stage{
		&Fetch{Data: data, Seed: cfg.Seed, Form: cfg.Model.Form()},
		&Train{Model: cfg.Model, Train: cfg.Train, Seed: cfg.Seed},
		&Condense{Config: cfg.Condense},
		&Verify{Config: cfg.Verify, Train: cfg.Train},
		&Export{Config: cfg.Export, Preset: cfg.Preset},
	}
}
