package stages

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/batch"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
)

// VerifyConfig is the verify stage's section.
type VerifyConfig struct {
	// Tolerance is how many points of top-1 accuracy the condensed network
	// may lose against the trained one before verify fails.
	Tolerance float64 `json:"tolerance"`
	Batch     int     `json:"batch"`
}

// Verify measures the trained (masked) and the condensed network on the
// test split and outputs an artifacts.Report. When the condensed network is
// worse than the tolerance allows, the report says so and is kept, and the
// stage also fails with pipeline.ErrVerifyFailed.
type Verify struct {
	Config VerifyConfig
	Train  TrainConfig // for the device
}

// verifyVersion 2: a failed verification is kept as a report.
const verifyVersion = 2

func (v *Verify) Name() string     { return "verify" }
func (v *Verify) Version() int     { return verifyVersion }
func (v *Verify) Inputs() []string { return []string{"fetch", "train", "condense"} }
func (v *Verify) WriteKey(w io.Writer) {
	fmt.Fprintf(w, "verify.tolerance %g\nverify.batch %d\n", v.Config.Tolerance, v.Config.Batch)
}

// classifier is what evaluate needs of a network: logits for a batch.
type classifier func(logits, images []float32)

func (v *Verify) Run(ctx context.Context, env *pipeline.Env) (pipeline.Output, error) {
	ds, err := artifacts.LoadDataset(env.Inputs["fetch"])
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	cfg, ts, tm, err := loadTrained(env.Inputs["train"])
	if err != nil {
		return nil, err
	}
	arch, cts, err := model.LoadCondensed(env.Inputs["condense"])
	if err != nil {
		return nil, err
	}
	scales, err := model.LoadInt8Scales(env.Inputs["condense"])
	if err != nil {
		return nil, err
	}
	be, which, err := NewBackend(v.Train.Device, v.Train.Workers, env.Report.Note)
	if err != nil {
		return nil, err
	}
	env.Report.Note("verify: device " + which)
	defer CloseBackend(be)
	n := v.Config.Batch
	masked, err := model.NewNet(cfg, n, be, 0)
	if err != nil {
		return nil, err
	}
	if err := masked.LoadTensors(ts, false); err != nil {
		return nil, err
	}
	condensed, err := model.NewCondensed(arch, cts, n, be)
	if err != nil {
		return nil, err
	}
	test := batcher(ds, &ds.Test, n, &arch.Config)
	k := len(ds.Classes)
	r := &artifacts.Report{Dataset: ds.Name, Classes: ds.Classes, Images: ds.Test.Len(), Batch: n, Tolerance: v.Config.Tolerance}
	var conf [][]int
	if r.Trained, _, err = measure(ctx, env, "trained", masked.Infer, test, k); err != nil {
		return nil, err
	}
	if r.Condensed, conf, err = measure(ctx, env, "condensed", condensed.Forward, test, k); err != nil {
		return nil, err
	}
	tc, cc := cfg.TrainingCost(), cfg.CondensedCost()
	r.Trained.FLOPs, r.Trained.Params = tc.FLOPs, tc.Params
	r.Condensed.FLOPs, r.Condensed.Params = cc.FLOPs, cc.Params
	if scales != nil { // int8 runs on the CPU, whatever the device
		i8, err := model.NewCondensedInt8(arch, cts, scales, n, cpu.New(v.Train.Workers))
		if err != nil {
			return nil, err
		}
		res, _, err := measure(ctx, env, "int8", i8.Forward, test, k)
		if err != nil {
			return nil, err
		}
		res.FLOPs, res.Params = cc.FLOPs, cc.Params
		r.Int8 = &res
	}
	r.Difference = r.Condensed.Top1Error - r.Trained.Top1Error
	r.Passed = 100*r.Difference <= v.Config.Tolerance
	r.Confusion = conf
	r.Markdown = reportMarkdown(r)
	if last := len(tm.Metrics); last > 0 {
		// Beside the training run's curves, at its last step.
		step := tm.Metrics[last-1].Iteration
		events := openEventLog(env, runLogDir(env, env.Inputs["train"].Key), "verify", step-1)
		events.write(step, verifyScalars(r)...)
		events.close()
	}
	if r.ConfusionPNG, err = plotConfusion(conf, ds.Classes); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	if !r.Passed { // kept as the stage's output, and an error
		return r, verifyFailed(r)
	}
	return r, nil
}

// verifyFailed words a failed verification.
func verifyFailed(r *artifacts.Report) error {
	return fmt.Errorf("%w: the condensed network's top-1 error is %.2f%%, %.2f points above the trained network's %.2f%% (tolerance %.2f; set verify.tolerance to accept)",
		pipeline.ErrVerifyFailed, 100*r.Condensed.Top1Error, 100*r.Difference, 100*r.Trained.Top1Error, r.Tolerance)
}

// measure runs net over the test split and returns its errors, speed,
// per-class accuracy and confusion matrix. The speed is the median of the
// batches' after one untimed batch: a network's first call prepares its
// weights (and a GPU's kernels), which made the ratio of two networks'
// speeds on a small test set anything from 2x to 68x.
func measure(ctx context.Context, env *pipeline.Env, name string, net classifier, test *batch.Batcher, k int) (artifacts.NetResult, [][]int, error) {
	x := make([]float32, test.Floats())
	labels := make([]int32, test.Batch)
	logits := make([]float32, test.Batch*k)
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
	}
	prog := env.Progress("evaluate "+name, int64(test.Steps()), pipeline.Batches)
	defer prog.Done()
	var c1, c5, seen int
	var rates []float64
	if test.Steps() > 0 {
		if _, err := test.Fill(x, labels, 0, 0); err != nil {
			return artifacts.NetResult{}, nil, err
		}
		net(logits, x) // the untimed warm-up
	}
	for step := range test.Steps() {
		if err := ctx.Err(); err != nil {
			return artifacts.NetResult{}, nil, err
		}
		real, err := test.Fill(x, labels, 0, step)
		if err != nil {
			return artifacts.NetResult{}, nil, err
		}
		start := time.Now()
		net(logits, x)
		rates = append(rates, float64(real)/max(time.Since(start).Seconds(), 1e-9))
		a, b := topK(logits, labels[:real], k, real)
		c1, c5, seen = c1+a, c5+b, seen+real
		for i := range real {
			conf[labels[i]][argmax(logits[i*k:(i+1)*k])]++
		}
		prog.Add(1)
	}
	res := artifacts.NetResult{Top1Error: 1 - float64(c1)/float64(seen), Top5Error: 1 - float64(c5)/float64(seen),
		ImagesPerSec: median(rates)}
	for c := range k {
		total := 0
		for _, v := range conf[c] {
			total += v
		}
		res.PerClass = append(res.PerClass, float64(conf[c][c])/float64(max(total, 1)))
	}
	return res, conf, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// reportMarkdown renders the report for people.
func reportMarkdown(r *artifacts.Report) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Verification on %s (%d test images, batch %d)\n\n", r.Dataset, r.Images, r.Batch)
	if !r.Passed {
		fmt.Fprintf(&b, "**FAILED:** condensing raised the top-1 error by %.2f points, more than the tolerance of %.2f; export refuses this model.\n\n",
			100*r.Difference, r.Tolerance)
	}
	fmt.Fprintf(&b, "| network | top-1 error | top-5 error | FLOPs | params | images/s |\n|---|---|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		n    *artifacts.NetResult
	}{{"trained (masked)", &r.Trained}, {"condensed", &r.Condensed}, {"condensed, int8 (CPU)", r.Int8}} {
		if row.n == nil {
			continue
		}
		top5 := "n/a (≤ 5 classes)"
		if r.HasTop5() {
			top5 = fmt.Sprintf("%.2f%%", 100*row.n.Top5Error)
		}
		fmt.Fprintf(&b, "| %s | %.2f%% | %s | %.1fM | %.3fM | %.1f |\n", row.name, 100*row.n.Top1Error, top5,
			float64(row.n.FLOPs)/1e6, float64(row.n.Params)/1e6, row.n.ImagesPerSec)
	}
	fmt.Fprintf(&b, "\nCondensing changed top-1 error by %+.2f points (tolerance %.2f) and ran %.2fx as fast.\n",
		100*r.Difference, r.Tolerance, r.Condensed.ImagesPerSec/r.Trained.ImagesPerSec)
	if r.Int8 != nil {
		fmt.Fprintf(&b, "The int8 form changed it by %+.2f points against the condensed float32 network.\n",
			100*(r.Int8.Top1Error-r.Condensed.Top1Error))
	}
	fmt.Fprintf(&b, "\n## Per-class accuracy\n\n| class | trained | condensed |\n|---|---|---|\n")
	for i, c := range r.Classes {
		fmt.Fprintf(&b, "| %s | %.1f%% | %.1f%% |\n", c, 100*r.Trained.PerClass[i], 100*r.Condensed.PerClass[i])
	}
	fmt.Fprintf(&b, "\n## Confusion matrix of the condensed network\n\nRows are true classes, columns predictions (confusion.png draws it).\n\n|  |")
	for _, c := range r.Classes {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(r.Classes)) + "\n")
	for i, row := range r.Confusion {
		fmt.Fprintf(&b, "| %s |", r.Classes[i])
		for _, v := range row {
			fmt.Fprintf(&b, " %d |", v)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// median returns the middle of v (the mean of the two middle values for an
// even count), 0 for none; v is reordered.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return (v[(len(v)-1)/2] + v[len(v)/2]) / 2
}
