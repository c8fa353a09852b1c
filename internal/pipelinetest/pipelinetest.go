// Package pipelinetest runs the pipeline for tests that need its
// artifacts: a tiny CondenseNet trained briefly on synthetic data, then
// condensed, verified and exported.
package pipelinetest

import (
	"context"
	"image"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// Config is the tiny run's configuration: 2 short epochs of a 1-2-1 block
// network on 640 synthetic images, with any accuracy accepted.
func Config() stages.Config {
	cfg, _ := stages.Preset("quick")
	cfg.Data = stages.DataConfig{Dataset: "synthetic", SyntheticTrain: 640, SyntheticTest: 64}
	cfg.Model.Stages, cfg.Model.Growth = []int{1, 2, 1}, []int{4, 8, 8}
	cfg.Train.Epochs, cfg.Train.Batch, cfg.Train.ImagesPerEpoch = 2, 32, 0
	cfg.Verify.Tolerance = 100
	return cfg
}

// Run runs the pipeline with cfg to its export in workdir dir, and
// returns the exported model's path.
func Run(t testing.TB, dir string, cfg stages.Config) string {
	t.Helper()
	store, err := artifacts.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &pipeline.Runner{Store: store, Stages: stages.All(cfg), Report: pipeline.Discard}
	if err := r.Run(context.Background(), pipeline.Options{Target: "all"}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "export", "model.onnx")
}

// RandomImage is w×h pixels of noise.
func RandomImage(rng *rand.Rand, w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.IntN(256))
	}
	return img
}
