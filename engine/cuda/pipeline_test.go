package cuda_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/engine/cuda"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// recorder keeps the notes and warnings of a run and can cancel it after
// a number of training steps.
type recorder struct {
	pipeline.Reporter
	mu     sync.Mutex
	notes  []string
	steps  int
	stopAt int
	cancel context.CancelFunc
}

func (r *recorder) Note(m string)        { r.mu.Lock(); r.notes = append(r.notes, m); r.mu.Unlock() }
func (r *recorder) Warn(stage, m string) { r.Note(stage + ": " + m) }
func (r *recorder) text() string         { return strings.Join(r.notes, "\n") }
func (r *recorder) Progress(stage, task string, total int64, unit pipeline.Unit) pipeline.Progress {
	if strings.HasPrefix(task, "epoch") {
		return r
	}
	return pipeline.Discard.Progress(stage, task, total, unit)
}
func (r *recorder) Add(n int64) {
	if r.steps += int(n); r.stopAt > 0 && r.steps >= r.stopAt {
		r.cancel()
	}
}
func (r *recorder) Status(string) {}
func (r *recorder) Done()         {}

func tinyRun(t *testing.T, dir, device, target string, stopAt int) (*recorder, error) {
	cfg, _ := stages.Preset("quick")
	cfg.Data = stages.DataConfig{Dataset: "synthetic", SyntheticTrain: 64, SyntheticTest: 32}
	cfg.Model.Stages, cfg.Model.Growth = []int{1, 1, 1}, []int{4, 4, 4}
	cfg.Train.Epochs, cfg.Train.Batch, cfg.Train.ImagesPerEpoch, cfg.Train.EvalEvery = 2, 8, 0, 0
	cfg.Train.Device = device
	cfg.Verify.Tolerance = 100 // a two-epoch net: the point is that verify runs on the device
	store, err := artifacts.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{Reporter: pipeline.Discard, stopAt: stopAt, cancel: cancel}
	r := &pipeline.Runner{Store: store, Stages: stages.All(cfg), Report: rec}
	return rec, r.Run(ctx, pipeline.Options{Target: target})
}

// TestPipelineOnStandIn runs the stages on the CUDA backend through the
// stand-in driver: auto picks the GPU for train and verify, and a run
// interrupted on the GPU resumes on the CPU from its checkpoint.
func TestPipelineOnStandIn(t *testing.T) {
	cuda.UseStandIn(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the kernel cache

	rec, err := tinyRun(t, t.TempDir(), "auto", "verify", 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.text())
	}
	for _, want := range []string{"train: device cuda:0 (Stand-in GPU", "compiling kernels", "verify: device cuda:0 (Stand-in GPU"} {
		if !strings.Contains(rec.text(), want) {
			t.Errorf("notes lack %q:\n%s", want, rec.text())
		}
	}

	// The run that is interrupted also synchronises after every launch.
	t.Setenv("CONDENSENET_CUDA_SYNC", "1")
	dir := t.TempDir()
	rec, err = tinyRun(t, dir, "cuda", "train", 5)
	if !strings.Contains(rec.text(), "syncing after every launch") {
		t.Errorf("CONDENSENET_CUDA_SYNC=1 is not in effect:\n%s", rec.text())
	}
	if err == nil {
		t.Fatalf("the run was not interrupted:\n%s", rec.text())
	}
	rec, err = tinyRun(t, dir, "cpu", "train", 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.text())
	}
	if !strings.Contains(rec.text(), "train: resuming from iteration 5 of 16 (epoch 1, checkpointed on cuda:0 (Stand-in GPU") {
		t.Errorf("the CPU run did not resume the GPU's checkpoint:\n%s", rec.text())
	}
	metrics, err := os.ReadFile(dir + "/train/metrics.jsonl")
	if err != nil || !strings.Contains(string(metrics), `"device":"cpu"`) {
		t.Errorf("metrics do not name the device: %v\n%s", err, metrics)
	}
}
