package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
)

// CondenseConfig is the condense stage's section.
type CondenseConfig struct {
	// Force converts a model whose condensation has not finished, keeping
	// each group's in/C most important inputs.
	Force bool `json:"force"`
}

// Condense converts the trained network into the condensed one, calibrates
// its int8 form on training images, and outputs an
// artifacts.CondensedModel.
type Condense struct{ Config CondenseConfig }

// condenseVersion 2: the int8 form's calibration.
const condenseVersion = 2

// calibrationImages is how many training images calibrate the int8 form:
// evenly spaced through the training split, as evaluation prepares them.
const calibrationImages = 512

func (c *Condense) Name() string         { return "condense" }
func (c *Condense) Version() int         { return condenseVersion }
func (c *Condense) Inputs() []string     { return []string{"fetch", "train"} }
func (c *Condense) WriteKey(w io.Writer) { fmt.Fprintf(w, "condense.force %v\n", c.Config.Force) }

// loadTrained reads a TrainedModel artifact's configuration and tensors.
func loadTrained(a *artifacts.Artifact) (model.Config, map[string]model.Named, *artifacts.TrainedModel, error) {
	tm, err := artifacts.LoadTrainedModel(a)
	if err != nil {
		return model.Config{}, nil, nil, err
	}
	var c struct {
		Model model.Config `json:"model"`
	}
	if err := json.Unmarshal(tm.Config, &c); err != nil {
		return model.Config{}, nil, nil, &artifacts.CorruptError{Dir: a.Dir, File: "config.json", Reason: err.Error()}
	}
	ts, _, err := model.ReadSafetensors(tm.Weights)
	if err != nil {
		return model.Config{}, nil, nil, &artifacts.CorruptError{Dir: a.Dir, File: "model.safetensors", Reason: err.Error()}
	}
	return c.Model, ts, tm, nil
}

func (c *Condense) Run(ctx context.Context, env *pipeline.Env) (pipeline.Output, error) {
	cfg, ts, _, err := loadTrained(env.Inputs["train"])
	if err != nil {
		return nil, err
	}
	arch, tensors, err := model.Convert(cfg, ts, model.ConvertOptions{Force: c.Config.Force})
	if errors.Is(err, model.ErrNotCondensed) {
		return nil, fmt.Errorf("%w\nThe masks of a learned group convolution reach in/C inputs per group only at the middle of training; "+
			"this model's training ended before that. Train longer, or set condense.force (--force) to keep each group's in/C most important inputs anyway, which may cost accuracy", err)
	}
	if err != nil {
		return nil, err
	}
	archJSON, err := json.MarshalIndent(arch, "", " ")
	if err != nil {
		return nil, err
	}
	var w bytes.Buffer
	if err := model.WriteSafetensors(&w, tensors, map[string]string{"format": "condensenet-condensed"}); err != nil {
		return nil, err
	}
	scales, err := calibrate(ctx, env, arch, tensors)
	if err != nil {
		return nil, err
	}
	int8JSON, err := json.MarshalIndent(scales, "", " ")
	if err != nil {
		return nil, err
	}
	tc, cc := cfg.TrainingCost(), cfg.CondensedCost()
	return &artifacts.CondensedModel{Architecture: append(archJSON, '\n'), Weights: w.Bytes(), Int8: append(int8JSON, '\n'),
		Description: fmt.Sprintf("%.1fM FLOPs and %.2fM params (the masked network: %.1fM and %.2fM)",
			float64(cc.FLOPs)/1e6, float64(cc.Params)/1e6, float64(tc.FLOPs)/1e6, float64(tc.Params)/1e6)}, nil
}

// calibrate measures the int8 form's activation scales on up to
// calibrationImages training images, one at a time, on the CPU (the
// int8 form's device), so that the scales do not depend on the training
// device.
func calibrate(ctx context.Context, env *pipeline.Env, arch *model.Architecture, tensors []model.Named) (*model.Int8Scales, error) {
	ds, err := artifacts.LoadDataset(env.Inputs["fetch"])
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	const batch = 1 // the least memory: an ImageNet image's activations are tens of MB
	count := min(calibrationImages, ds.Train.Len())
	if count == 0 {
		return nil, fmt.Errorf("the dataset has no training images to calibrate the int8 network on")
	}
	c, err := model.NewCalibrator(arch, tensors, batch, cpu.New(0))
	if err != nil {
		return nil, err
	}
	b := batcher(ds, &ds.Train, 1, &arch.Config)
	images, labels := make([]float32, batch*b.Floats()), make([]int32, 1)
	prog := env.Progress("calibrate int8", int64(count), pipeline.Images)
	defer prog.Done()
	for first := 0; first < count; first += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		real := min(batch, count-first)
		clear(images)
		for i := range real {
			if _, err := b.Fill(images[i*b.Floats():(i+1)*b.Floats()], labels, 0, (first+i)*ds.Train.Len()/count); err != nil {
				return nil, err
			}
		}
		c.Observe(images, real)
		prog.Add(int64(real))
	}
	return c.Scales(), nil
}
