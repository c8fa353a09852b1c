package stages

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/tfevents"
)

// logEvery is how many iterations apart training logs its scalars for
// TensorBoard (and at each epoch's end).
const logEvery = 10

// runLogDir is where the TensorBoard events of the training run with key
// go: one folder per run under the workdir's logs/, so that
// `tensorboard --logdir WORKDIR/logs` shows runs of different settings
// side by side. Verify logs into its training run's folder.
func runLogDir(env *pipeline.Env, train artifacts.Key) string {
	return filepath.Join(env.LogDir, "train-"+train.Short())
}

// An eventLog writes a stage's scalars for TensorBoard. Logs are for
// watching: a failure to write them is reported once and ends the log,
// not the stage. A nil eventLog logs nothing.
type eventLog struct {
	w    *tfevents.Writer
	warn func(string)
}

// openEventLog opens source's event file in dir, keeping what it holds up
// to step through (see tfevents.Open).
func openEventLog(env *pipeline.Env, dir, source string, through int) *eventLog {
	warn := func(msg string) { env.Report.Warn(env.Stage, msg) }
	if env.LogDir == "" {
		return nil
	}
	w, err := tfevents.Open(dir, source, int64(through))
	if err != nil {
		warn(fmt.Sprintf("no TensorBoard log: %v", err))
		return nil
	}
	return &eventLog{w: w, warn: warn}
}

func (l *eventLog) write(step int, scalars ...tfevents.Scalar) {
	if l == nil || l.w == nil {
		return
	}
	if err := l.w.Write(int64(step), time.Now(), scalars...); err != nil {
		l.warn(fmt.Sprintf("TensorBoard log stopped: %v", err))
		l.close()
	}
}

func (l *eventLog) close() {
	if l == nil || l.w == nil {
		return
	}
	if err := l.w.Close(); err != nil {
		l.warn(fmt.Sprintf("TensorBoard log: %v", err))
	}
	l.w = nil
}

// trainScalars are what a training step logs: the epoch's running means
// (kept in checkpoints, so a resumed run logs the values an
// uninterrupted one does), the learning rate, the condensing stage and
// the fraction of the learned group convolutions' weights it keeps.
func trainScalars(e *epochSums, seconds, lr float64, stage int, kept []int) []tfevents.Scalar {
	return []tfevents.Scalar{
		{Tag: "train/loss", Value: e.Loss / float64(e.Steps)},
		{Tag: "train/top1", Value: 100 * float64(e.Top1) / float64(e.Seen)},
		{Tag: "train/lr", Value: lr},
		{Tag: "train/images_per_sec", Value: float64(e.Seen) / max(seconds, 1e-9)},
		{Tag: "condense/stage", Value: float64(stage)},
		{Tag: "condense/kept_1x1", Value: float64(kept[min(stage, len(kept)-1)]) / float64(kept[0])},
	}
}

// verifyScalars are what verify logs at the run's last step: accuracy in
// percent, and the condensed network's cost.
func verifyScalars(r *artifacts.Report) []tfevents.Scalar {
	s := []tfevents.Scalar{
		{Tag: "verify/trained_top1", Value: 100 * (1 - r.Trained.Top1Error)},
		{Tag: "verify/condensed_top1", Value: 100 * (1 - r.Condensed.Top1Error)},
		{Tag: "verify/trained_top5", Value: 100 * (1 - r.Trained.Top5Error)},
		{Tag: "verify/condensed_top5", Value: 100 * (1 - r.Condensed.Top5Error)},
		{Tag: "condensed/mflops", Value: float64(r.Condensed.FLOPs) / 1e6},
		{Tag: "condensed/params_m", Value: float64(r.Condensed.Params) / 1e6},
	}
	if r.Int8 != nil {
		s = append(s, tfevents.Scalar{Tag: "verify/int8_top1", Value: 100 * (1 - r.Int8.Top1Error)},
			tfevents.Scalar{Tag: "verify/int8_top5", Value: 100 * (1 - r.Int8.Top5Error)})
	}
	return s
}
