package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/internal/eventreader"
	"github.com/condensenet/condensenet/internal/filelock"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/onnxio"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/tfevents"
)

// TestMain lets a test run a training pipeline in a child process (this
// binary again) that it can kill.
func TestMain(m *testing.M) {
	if dir := os.Getenv("STAGES_TEST_TRAIN"); dir != "" {
		if err := runTiny(context.Background(), dir, tinyConfig(), pipeline.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinyConfig trains a 1-1-1 CondenseNet on 640 synthetic images for 3
// epochs of 20 steps: fast, but long enough to condense and to kill.
func tinyConfig() Config {
	c, _ := Preset("quick")
	c.Seed = 5
	c.Data = DataConfig{Dataset: "synthetic", SyntheticTrain: 640, SyntheticTest: 100}
	c.Model.Stages, c.Model.Growth = []int{1, 1, 1}, []int{4, 4, 4}
	c.Model.Dropout = 0.1
	c.Train.Epochs, c.Train.Batch, c.Train.ImagesPerEpoch, c.Train.EvalEvery = 3, 32, 0, 2
	return c
}

func runTiny(ctx context.Context, dir string, cfg Config, rep pipeline.Reporter) error {
	store, err := artifacts.Open(dir)
	if err != nil {
		return err
	}
	r := &pipeline.Runner{Store: store, Stages: All(cfg)[:2], Report: rep}
	return r.Run(ctx, pipeline.Options{Target: "train"})
}

func finalWeights(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "train", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notes records what the runner and stages report.
type notes struct {
	pipeline.Reporter
	mu    sync.Mutex
	lines []string
	// onStep, if set, is called after every training step.
	onStep func()
}

func (n *notes) Note(msg string)        { n.add(msg) }
func (n *notes) Warn(stage, msg string) { n.add(stage + ": " + msg) }
func (n *notes) add(s string) {
	n.mu.Lock()
	n.lines = append(n.lines, s)
	n.mu.Unlock()
}
func (n *notes) all() string { return strings.Join(n.lines, "\n") }
func (n *notes) Progress(stage, task string, total int64, unit pipeline.Unit) pipeline.Progress {
	if strings.HasPrefix(task, "epoch") && n.onStep != nil {
		return stepHook{n.onStep}
	}
	return pipeline.Discard.Progress(stage, task, total, unit)
}

type stepHook struct{ f func() }

func (h stepHook) Add(n int64) {
	for range n {
		h.f()
	}
}
func (h stepHook) Status(string) {}
func (h stepHook) Done()         {}

var (
	referenceOnce    sync.Once
	referenceWeights []byte
	referenceEvents  []string
)

// reference returns the final weights of an uninterrupted tiny run.
func reference(t *testing.T) []byte {
	referenceOnce.Do(func() {
		dir := t.TempDir()
		if err := runTiny(context.Background(), dir, tinyConfig(), pipeline.Discard); err != nil {
			t.Fatal(err)
		}
		referenceWeights = finalWeights(t, dir)
		referenceEvents = trainEvents(t, dir)
	})
	if referenceWeights == nil {
		t.Fatal("reference run failed")
	}
	return referenceWeights
}

// trainEvents returns the scalars of the TensorBoard event file of the
// training run in workdir dir, a "step tag value" line each, leaving out
// the speed, which varies.
func trainEvents(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "train-*", "events.out.tfevents.*.train"))
	if len(files) != 1 {
		t.Fatalf("event files %v, want one", files)
	}
	events, err := tfevents.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range events {
		for _, s := range e.Scalars {
			if s.Tag != "train/images_per_sec" {
				lines = append(lines, fmt.Sprintf("%d %s %v", e.Step, s.Tag, s.Value))
			}
		}
	}
	return lines
}

// checkEvents fails unless the event file of the training run in dir
// holds what an uninterrupted run's does: every step once, in order, with
// the same values, as read here and by the npm reader.
func checkEvents(t *testing.T, dir string) {
	t.Helper()
	got := trainEvents(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "train-*", "events.out.tfevents.*.train"))
	var npm []string
	for _, e := range eventreader.Read(t, files[0]) {
		for _, v := range e.Summary.Value {
			if v.Tag != "train/images_per_sec" {
				npm = append(npm, fmt.Sprintf("%d %s %v", e.Step, v.Tag, v.Value))
			}
		}
	}
	if !slices.Equal(npm, got) {
		t.Errorf("the npm reader reads %d scalars, ours %d:\n%s", len(npm), len(got), strings.Join(npm, "\n"))
	}
	if !slices.Equal(got, referenceEvents) {
		t.Errorf("TensorBoard scalars after resuming (%d) differ from an uninterrupted run's (%d):\n%s\nwant\n%s",
			len(got), len(referenceEvents), strings.Join(got, "\n"), strings.Join(referenceEvents, "\n"))
	}
}

func TestResumeAfterKill(t *testing.T) {
	want := reference(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 2 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "STAGES_TEST_TRAIN="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the first checkpoint, then kill at a random moment after it.
		deadline := time.Now().Add(60 * time.Second)
		for {
			names, _ := checkpoints(filepath.Join(dir, "state", "train"))
			if len(names) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("the child wrote no checkpoint within a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		cmd.Process.Kill() // kill -9: no chance to checkpoint
		cmd.Wait()
		rep := &notes{Reporter: pipeline.Discard}
		if err := runTiny(context.Background(), dir, tinyConfig(), rep); err != nil {
			t.Fatalf("round %d: resume: %v", round, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "train")); err != nil {
			t.Fatalf("round %d: no trained model after resuming", round)
		}
		// The child may have finished before the kill; otherwise it resumed.
		resumed := strings.Contains(rep.all(), "resuming from iteration")
		if got := finalWeights(t, dir); !bytes.Equal(got, want) {
			t.Fatalf("round %d (killed %v after the first checkpoint, resumed=%v): final weights differ from an uninterrupted run", round, delay, resumed)
		}
		checkEvents(t, dir)
		t.Logf("round %d: killed %v after the first checkpoint; resumed=%v; weights and TensorBoard scalars identical", round, delay, resumed)
	}
}

func TestResumeAfterCancelMidEpoch(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	rep := &notes{Reporter: pipeline.Discard, onStep: func() {
		if steps++; steps == 27 { // epoch 2, step 7
			cancel()
		}
	}}
	err := runTiny(ctx, dir, tinyConfig(), rep)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run = %v, want context.Canceled", err)
	}
	names, _ := checkpoints(filepath.Join(dir, "state", "train"))
	if len(names) == 0 || names[0] != checkpointName(27) {
		t.Fatalf("checkpoints after cancelling at step 27: %v, want %s first", names, checkpointName(27))
	}
	rep = &notes{Reporter: pipeline.Discard}
	if err := runTiny(context.Background(), dir, tinyConfig(), rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.all(), "resuming from iteration 27") {
		t.Errorf("notes %q, want a resume from iteration 27", rep.all())
	}
	if !bytes.Equal(finalWeights(t, dir), want) {
		t.Error("final weights after a mid-epoch resume differ from an uninterrupted run")
	}
	checkEvents(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "state", "train")); !os.IsNotExist(err) {
		t.Errorf("checkpoints left after the stage finished: %v", err)
	}
}

// With checkpoints on time, what a kill -9 leaves behind (the workdir
// copied at that moment) resumes from the last step's checkpoint to the
// same weights; status calls it interrupted, or running while a run holds
// the workdir.
func TestCheckpointOnTime(t *testing.T) {
	want := reference(t)
	cfg := tinyConfig()
	cfg.Train.CheckpointMinutes = 1e-9 // after every step
	dir, killed := t.TempDir(), t.TempDir()
	steps := 0
	rep := &notes{Reporter: pipeline.Discard, onStep: func() {
		if steps++; steps == 27 { // epoch 2, step 7: the last save was after step 26
			copyTree(t, dir, killed)
		}
	}}
	if err := runTiny(context.Background(), dir, cfg, rep); err != nil {
		t.Fatal(err)
	}
	store, _ := artifacts.Open(killed)
	r := &pipeline.Runner{Store: store, Stages: All(cfg)[:2], Report: pipeline.Discard}
	st := r.Status()[1]
	if st.State != pipeline.Interrupted || !strings.Contains(st.Reason, "iteration 26 of 60 (epoch 2 of 3)") {
		t.Errorf("status after the kill: %s, %s", st.State, st.Reason)
	}
	l, err := filelock.TryLock(filepath.Join(killed, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	st = r.Status()[1]
	l.Unlock()
	if st.State != pipeline.Running || !strings.Contains(st.Reason, fmt.Sprintf("in process %d", os.Getpid())) ||
		!strings.Contains(st.Reason, "last checkpoint at iteration 26") {
		t.Errorf("status while a run holds the workdir: %s, %s", st.State, st.Reason)
	}
	// What the killed run might have logged past its checkpoint, and a
	// record torn by the kill: the resumed run logs those steps again.
	logs, _ := filepath.Glob(filepath.Join(killed, "logs", "train-*"))
	if len(logs) != 1 {
		t.Fatalf("run folders %v", logs)
	}
	ew, err := tfevents.Open(logs[0], "train", 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	ew.Write(30, time.Now(), tfevents.Scalar{Tag: "train/loss", Value: 99})
	ew.Close()
	f, _ := os.OpenFile(ew.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{40, 0, 0})
	f.Close()
	rep = &notes{Reporter: pipeline.Discard}
	if err := runTiny(context.Background(), killed, cfg, rep); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, killed)
	if !strings.Contains(rep.all(), "resuming from iteration 26 of 60") {
		t.Errorf("notes %q, want a resume from iteration 26", rep.all())
	}
	if !bytes.Equal(finalWeights(t, killed), want) {
		t.Error("final weights after resuming a checkpoint made on time differ from an uninterrupted run")
	}
}

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDamagedCheckpointFallsBack(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	rep := &notes{Reporter: pipeline.Discard, onStep: func() {
		if steps++; steps == 45 { // after the epoch-2 checkpoint (iteration 40)
			cancel()
		}
	}}
	runTiny(ctx, dir, tinyConfig(), rep)
	state := filepath.Join(dir, "state", "train")
	names, _ := checkpoints(state)
	if len(names) != 2 {
		t.Fatalf("checkpoints %v, want two", names)
	}
	for _, damage := range []func(p string){
		func(p string) { // a flipped byte
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o644)
		},
		func(p string) { os.Truncate(p, 100) }, // a torn write
	} {
		d := t.TempDir()
		os.CopyFS(d, os.DirFS(dir))
		damage(filepath.Join(d, "state", "train", names[0]))
		rep := &notes{Reporter: pipeline.Discard}
		if err := runTiny(context.Background(), d, tinyConfig(), rep); err != nil {
			t.Fatal(err)
		}
		log := rep.all()
		if !strings.Contains(log, names[0]) || !strings.Contains(log, "damaged") || !strings.Contains(log, "resuming from iteration 40") {
			t.Errorf("notes:\n%s\nwant the damaged %s named and a resume from iteration 40", log, names[0])
		}
		if !bytes.Equal(finalWeights(t, d), want) {
			t.Error("final weights after falling back to an older checkpoint differ")
		}
	}
}

func TestCheckpointFromOtherSettingsIgnored(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	rep := &notes{Reporter: pipeline.Discard, onStep: func() {
		if steps++; steps == 5 {
			cancel()
		}
	}}
	runTiny(ctx, dir, tinyConfig(), rep)
	cfg := tinyConfig()
	cfg.Train.LR = 0.05
	rep = &notes{Reporter: pipeline.Discard}
	if err := runTiny(context.Background(), dir, cfg, rep); err != nil {
		t.Fatal(err)
	}
	if log := rep.all(); !strings.Contains(log, "other settings") || strings.Contains(log, "resuming from iteration") {
		t.Errorf("notes:\n%s\nwant the old checkpoint refused", log)
	}
}

// A batch larger than the training set is a configuration error naming
// both numbers, found by Check and, for a dataset Check cannot see, by the
// train stage before it trains nothing.
func TestBatchLargerThanTrainingSet(t *testing.T) {
	cfg := tinyConfig()
	cfg.Train.Batch = 1000
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "train.batch = 1000: want at most data.synthetic_train (640)") {
		t.Errorf("Check: %v", err)
	}
	err := runTiny(context.Background(), t.TempDir(), cfg, pipeline.Discard)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "train.batch is 1000 but the synthetic dataset has 640 training images") {
		t.Errorf("train stage: %v, want ErrConfig naming 1000 and 640", err)
	}
}

func TestNonFiniteLossStops(t *testing.T) {
	// lr up to 10 does not diverge here (BatchNorm keeps it in check), so the
	// check itself is tested: it must refuse NaN and both infinities.
	for _, loss := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		err := checkLoss(loss, 1234, 7)
		if err == nil || !strings.Contains(err.Error(), "at iteration 1234 (epoch 8)") || !strings.Contains(err.Error(), "lower train.lr") {
			t.Errorf("checkLoss(%v) = %v, want the iteration named and a hint", loss, err)
		}
	}
	if err := checkLoss(2.3, 1, 0); err != nil {
		t.Errorf("checkLoss(2.3) = %v", err)
	}
}

// The run's estimate is given once, after its first steps, with the hint
// to try the quick preset when it is hours on a CPU.
func TestRunEstimate(t *testing.T) {
	for _, tc := range []struct {
		device string
		hint   bool
	}{{"cpu", true}, {"cuda:0 (H100)", false}} {
		r := runRate{t0: time.Now().Add(-3 * time.Second), at0: 1} // 1 s a step
		line := r.estimate(4, 100000, 64, tc.device)
		if !strings.Contains(line, "at 64 images/s (the first steps), about 27h4") || strings.Contains(line, "--preset quick") != tc.hint {
			t.Errorf("%s: %q", tc.device, line)
		}
		if again := r.estimate(5, 100000, 64, tc.device); again != "" {
			t.Errorf("a second estimate: %q", again)
		}
		if eta := r.eta(4, 100); !strings.HasPrefix(eta, "1m3") {
			t.Errorf("ETA of 96 steps of a second: %s", eta)
		}
	}
	if d := duration(90 * time.Second); d != "1m30s" {
		t.Errorf("duration(90s) = %s", d)
	}
}

func TestCosineSchedule(t *testing.T) {
	for _, tc := range []struct {
		it, total int
		want      float64
	}{{0, 100, 0.1}, {50, 100, 0.05}, {100, 100, 0}, {25, 100, 0.05 * (1 + math.Sqrt2/2)}} {
		if got := LR(0.1, tc.it, tc.total); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LR(0.1, %d, %d) = %v, want %v", tc.it, tc.total, got, tc.want)
		}
	}
}

func TestTopK(t *testing.T) {
	logits := []float32{
		0.1, 0.9, 0.3, 0.2, 0.0, 0.5, 0.4, // label 1: top-1
		0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, // label 1: last of 7, not top-5
		0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, // label 4 (0.6): 4th, top-5
	}
	top1, top5 := topK(logits, []int32{1, 1, 4}, 7, 3)
	if top1 != 1 || top5 != 2 {
		t.Errorf("topK = %d, %d; want 1, 2", top1, top5)
	}
}

func TestTrainedModelArtifact(t *testing.T) {
	dir := t.TempDir()
	if err := runTiny(context.Background(), dir, tinyConfig(), pipeline.Discard); err != nil {
		t.Fatal(err)
	}
	store, _ := artifacts.Open(dir)
	a, err := store.Get("train")
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifacts.LoadTrainedModel(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Metrics) != 3 || m.Metrics[1].TestTop1 == nil || m.Metrics[0].TestTop1 != nil || m.Metrics[2].Stage != 3 {
		t.Errorf("metrics %+v: want 3 epochs, test evaluated after epochs 2 and 3, stage 3 at the end", m.Metrics)
	}
	if !bytes.HasPrefix(m.Plot, []byte("\x89PNG")) {
		t.Error("curves.png is not a PNG")
	}
	ts, _, err := model.ReadSafetensors(m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	mask := ts["features.denseblock_3.denselayer_1.conv_1._mask"]
	kept := 0
	for _, v := range mask.Data {
		kept += int(v)
	}
	if want := len(mask.Data) / 4; kept != want {
		t.Errorf("final mask keeps %d of %d weights, want 1/C = %d", kept, len(mask.Data), want)
	}
	if _, ok := ts[model.MomentumPrefix+"classifier.weight"]; ok {
		t.Error("the trained model carries optimizer state")
	}
}

func TestCondenseAndVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig()
	cfg.Verify.Tolerance = 100 // a 1-1-1 net loses points when its classifier is halved
	store, _ := artifacts.Open(dir)
	r := &pipeline.Runner{Store: store, Stages: All(cfg)[:4], Report: pipeline.Discard}
	if err := r.Run(context.Background(), pipeline.Options{Target: "verify"}); err != nil {
		t.Fatal(err)
	}
	a, err := store.Get("verify")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := artifacts.LoadReport(a)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != 100 || len(rep.Confusion) != 10 || len(rep.Condensed.PerClass) != 10 ||
		rep.Condensed.FLOPs >= rep.Trained.FLOPs || rep.Condensed.ImagesPerSec <= 0 || !bytes.HasPrefix(rep.ConfusionPNG, []byte("\x89PNG")) {
		t.Errorf("report %+v", rep)
	}
	total := 0
	for _, row := range rep.Confusion {
		for _, v := range row {
			total += v
		}
	}
	if total != 100 {
		t.Errorf("confusion matrix counts %d predictions for 100 images", total)
	}
	if math.Abs(rep.Difference-(rep.Condensed.Top1Error-rep.Trained.Top1Error)) > 1e-12 {
		t.Errorf("difference %v does not match the errors", rep.Difference)
	}
	// The int8 form: calibrated by condense, measured by verify beside float32.
	cond, _ := store.Get("condense")
	if scales, err := model.LoadInt8Scales(cond); err != nil || scales == nil || scales.Method != "max" || scales.Images != 512 || len(scales.Layers) != 3 {
		t.Errorf("int8 scales %+v (%v)", scales, err)
	}
	if rep.Int8 == nil || len(rep.Int8.PerClass) != 10 || math.Abs(rep.Int8.Top1Error-rep.Condensed.Top1Error) > 0.05 || rep.Int8.ImagesPerSec <= 0 ||
		!bytes.Contains(rep.Markdown, []byte("| condensed, int8 (CPU) |")) {
		t.Errorf("int8 %+v against float32 %+v\n%s", rep.Int8, rep.Condensed, rep.Markdown)
	}
	// The report's ID comes from its numbers, not its timings: measuring
	// again gives the same ID.
	if err := r.Run(context.Background(), pipeline.Options{Target: "verify", From: "verify"}); err != nil {
		t.Fatal(err)
	}
	if again, err := store.Get("verify"); err != nil || again.ID != a.ID {
		t.Errorf("a second measurement of the same networks has ID %v (%v), the first %v", again.ID, err, a.ID)
	}
	// Verify logs beside the training run's curves, at its last step,
	// once however often it is run.
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "train-*", "events.out.tfevents.*.verify"))
	if len(files) != 1 {
		t.Fatalf("verify's event files: %v", files)
	}
	events, _ := tfevents.ReadFile(files[0])
	if len(events) != 2 || events[1].Step != 60 || events[1].Scalars[1].Tag != "verify/condensed_top1" ||
		math.Abs(events[1].Scalars[1].Value-100*(1-rep.Condensed.Top1Error)) > 1e-4 ||
		events[1].Scalars[6].Tag != "verify/int8_top1" || math.Abs(events[1].Scalars[6].Value-100*(1-rep.Int8.Top1Error)) > 1e-4 {
		t.Errorf("verify's events: %+v", events)
	}
	// A tolerance the networks cannot meet turns the report into a failure,
	// which is kept (with another ID) and shown, and which export refuses.
	cfg.Verify.Tolerance = -200
	r.Stages = All(cfg)
	err = r.Run(context.Background(), pipeline.Options{Target: "export"})
	if !errors.Is(err, pipeline.ErrVerifyFailed) || !strings.Contains(err.Error(), "points above") {
		t.Errorf("verify with tolerance -200 = %v, want ErrVerifyFailed naming the numbers", err)
	}
	failed, err := store.Get("verify")
	if err != nil || failed.ID == a.ID {
		t.Fatalf("the failed report was not kept: %v (ID %v, the passing one %v)", err, failed.ID, a.ID)
	}
	if rep, err := artifacts.LoadReport(failed); err != nil || rep.Passed || !bytes.Contains(rep.Markdown, []byte("**FAILED:**")) {
		t.Errorf("the failed report: %v, passed %v\n%s", err, rep.Passed, rep.Markdown)
	}
	if _, err := store.Get("export"); err == nil {
		t.Errorf("export ran although verify failed")
	}
	// Run again: verify is fresh (the same failure), export still refuses.
	err = r.Run(context.Background(), pipeline.Options{Target: "export"})
	if !errors.Is(err, pipeline.ErrVerifyFailed) || !strings.Contains(err.Error(), "not exported") {
		t.Errorf("export after a failed verify = %v", err)
	}
}

// A trained model whose masks never reached in/C per group (made, say, by
// an older version) is refused unless forced, with an explanation.
func TestCondenseRefusesUnfinished(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig()
	store, _ := artifacts.Open(dir)
	r := &pipeline.Runner{Store: store, Stages: All(cfg)[:2], Report: pipeline.Discard}
	if err := r.Run(context.Background(), pipeline.Options{Target: "train"}); err != nil {
		t.Fatal(err)
	}
	// Replace the trained weights by a fresh network's: all-ones masks.
	a, _ := store.Get("train")
	tm, _ := artifacts.LoadTrainedModel(a)
	net, _ := model.NewNet(cfg.Model, 1, cpu.New(1), 1)
	var w bytes.Buffer
	model.WriteSafetensors(&w, net.Tensors(false), nil)
	tm.Weights = w.Bytes()
	wr, _ := store.Create("train", artifacts.Info{Kind: a.Kind, Schema: a.Schema, Stage: a.Stage, Key: a.Key, KeyLines: a.KeyLines})
	tm.Write(wr)
	if _, err := wr.Commit(); err != nil {
		t.Fatal(err)
	}
	r.Stages = All(cfg)[:3]
	err := r.Run(context.Background(), pipeline.Options{Target: "condense"})
	if !errors.Is(err, model.ErrNotCondensed) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("condense of an unfinished model = %v, want ErrNotCondensed and a hint", err)
	}
	cfg.Condense.Force = true
	r.Stages = All(cfg)[:3]
	if err := r.Run(context.Background(), pipeline.Options{Target: "condense"}); err != nil {
		t.Fatalf("forced condense: %v", err)
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig()
	cfg.Verify.Tolerance = 100
	cfg.Export.IncludePreprocessing = true
	store, _ := artifacts.Open(dir)
	r := &pipeline.Runner{Store: store, Stages: All(cfg), Report: pipeline.Discard}
	if err := r.Run(context.Background(), pipeline.Options{Target: "all"}); err != nil {
		t.Fatal(err)
	}
	a, err := store.Get("export")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := a.ReadFile("model.onnx")
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	if m.GetOpsetImport()[0].GetVersion() != 13 || m.GetIrVersion() != 7 || meta["dataset"] != "synthetic" || meta["preset"] != "quick" ||
		!strings.Contains(meta["classes"], "checkerboard") || meta["test_top1"] == "" {
		t.Errorf("opset %v, IR %d, metadata %v", m.GetOpsetImport(), m.GetIrVersion(), meta)
	}
	in := m.GetGraph().GetInput()[0].GetType().GetTensorType().GetShape().GetDim()
	if len(in) != 4 || in[0].GetDimParam() != "N" || in[1].GetDimValue() != 3 {
		t.Errorf("input shape %v, want (N, 3, 32, 32)", in)
	}
	var parity artifacts.Parity
	pb, _ := a.ReadFile("parity.json")
	json.Unmarshal(pb, &parity)
	if parity.Images != 8 || parity.MaxAbsDiff > 1e-4 || !parity.ArgmaxAgree {
		t.Errorf("parity %+v", parity)
	}
	// The int8 form as QDQ, checked against the engine's int8 network.
	b, _ = a.ReadFile("model.int8.onnx")
	m8, err := onnxio.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m8.GetGraph().GetNode() {
		ops[n.GetOpType()]++
	}
	meta8 := map[string]string{}
	for _, p := range m8.GetMetadataProps() {
		meta8[p.GetKey()] = p.GetValue()
	}
	// Per layer: the 1×1's input, the 3×3's input and output quantised; and
	// each convolution's weights (and the 1×1's bias) dequantised.
	if ops["QuantizeLinear"] != 3*3 || ops["DequantizeLinear"] != 3*6 || !strings.Contains(meta8["quantization"], "calibrated by max over 512 training images") {
		t.Errorf("int8 model: ops %v, quantization %q", ops, meta8["quantization"])
	}
	var p8 artifacts.Parity
	pb, _ = a.ReadFile("parity-int8.json")
	json.Unmarshal(pb, &p8)
	if p8.Images != 8 || p8.MaxAbsDiff > p8.Tolerance || p8.Range <= 0 {
		t.Errorf("int8 parity %+v", p8)
	}
}

// Device selection on a machine without a GPU (the driver's path is
// pointed at nothing, so this holds on a GPU machine too): auto falls back
// to the CPU and says why; cuda is an error that names the missing driver.
func TestNewBackendWithoutGPU(t *testing.T) {
	t.Setenv("CONDENSENET_LIBCUDA", filepath.Join(t.TempDir(), "libcuda.so.1"))
	be, which, err := NewBackend("auto", 1, nil)
	if err != nil || be.Name() != "cpu" || !strings.Contains(which, "auto: no CUDA device") {
		t.Errorf("auto: %v, %q, %v", be, which, err)
	}
	if _, which, _ := NewBackend("cpu", 3, nil); which != "cpu, 3 workers" {
		t.Errorf("cpu: %q", which)
	}
	for _, d := range []string{"cuda", "cuda:1"} {
		_, _, err := NewBackend(d, 1, nil)
		if !errors.Is(err, engine.ErrNoDevice) || !strings.Contains(err.Error(), "libcuda not found") || !strings.Contains(err.Error(), "CONDENSENET_LIBCUDA") {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, _, err := NewBackend("gpu", 1, nil); err == nil || !strings.Contains(err.Error(), "want auto, cpu, cuda or cuda:N") {
		t.Errorf("gpu: %v", err)
	}
}

// Train's key names the engine (CPU and GPU round differently) but not the
// worker count; its recipe key, which checkpoints carry, names neither, so
// a run resumes across devices. auto resolves to what would run: here,
// with the driver's path pointed at nothing, the CPU.
func TestTrainKeyNamesTheEngine(t *testing.T) {
	t.Setenv("CONDENSENET_LIBCUDA", filepath.Join(t.TempDir(), "libcuda.so.1"))
	tr := func(device string, workers int) *Train {
		return &Train{Model: model.CondenseNet(20), Train: TrainConfig{Epochs: 5, Batch: 64, LR: 0.1, Device: device, Workers: workers}}
	}
	key := func(device string, workers int) string {
		var b bytes.Buffer
		tr(device, workers).WriteKey(&b)
		return b.String()
	}
	if key("auto", 0) != key("cpu", 3) || !strings.Contains(key("auto", 0), "train.engine cpu\n") {
		t.Errorf("auto without a GPU is not the CPU's key:\n%s", key("auto", 0))
	}
	if key("cuda", 0) == key("cpu", 0) || key("cuda:1", 0) != key("cuda", 0) {
		t.Errorf("the engine kind is not in the key, or the GPU's index is")
	}
	id := map[string]*artifacts.Artifact{"fetch": {}}
	if tr("cuda:1", 0).recipeKey(id) != tr("cpu", 2).recipeKey(id) {
		t.Errorf("the recipe key depends on the device, so checkpoints would not move")
	}
	longer := tr("cpu", 0)
	longer.Train.Epochs++
	if longer.recipeKey(id) == tr("cpu", 0).recipeKey(id) {
		t.Errorf("epochs are not in the recipe key")
	}
}

// A checkpoint is accepted under any of the keys given (the recipe key,
// and the full key that checkpoints carried before recipe keys), and
// refused under others.
func TestCheckpointKeys(t *testing.T) {
	cfg := tinyConfig().Model
	net, err := model.NewNet(cfg, 4, cpu.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old, recipe, other := artifacts.Key{1}, artifacts.Key{2}, artifacts.Key{3}
	if err := saveCheckpoint(dir, old, net, trainState{Iteration: 7, Device: "cpu"}); err != nil {
		t.Fatal(err)
	}
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	st, ok, err := loadCheckpoint(dir, []artifacts.Key{recipe, old}, net, warn)
	if err != nil || !ok || st.Iteration != 7 || st.Device != "cpu" {
		t.Errorf("under [recipe, old]: %+v, %v, %v", st, ok, err)
	}
	if _, ok, _ := loadCheckpoint(dir, []artifacts.Key{recipe, other}, net, warn); ok || len(warned) != 1 {
		t.Errorf("accepted under other keys (warnings %q)", warned)
	}
}

// After a resume the first estimate gives the time left first: the whole
// run's time, most of it done already, misled.
func TestEstimateAfterResume(t *testing.T) {
	r := runRate{start: 459, t0: time.Now().Add(-3 * time.Second), at0: 460}
	line := r.estimate(463, 780, 64, "cpu")
	if !regexp.MustCompile(`^at 6[0-4] images/s \(the first steps\), about 5m1[78]s left \(13m0[01]s in all\) on cpu$`).MatchString(line) {
		t.Errorf("estimate after resuming at 459 of 780 = %q", line)
	}
	if fresh := (&runRate{t0: time.Now().Add(-3 * time.Second), at0: 1}).estimate(4, 780, 64, "cpu"); strings.Contains(fresh, "left") {
		t.Errorf("estimate of a fresh run = %q", fresh)
	}
}

// Each cell of a small confusion matrix is labelled with its count, where
// the heat map draws it (true class 0 in the top row).
func TestConfusionCellCounts(t *testing.T) {
	l, err := cellCounts([][]int{{1, 2}, {3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[plotter.XY]string{{X: 0, Y: 1}: "1", {X: 1, Y: 1}: "2", {X: 0, Y: 0}: "3", {X: 1, Y: 0}: "4"}
	if len(l.XYs) != 4 {
		t.Fatalf("%d labels for 4 cells", len(l.XYs))
	}
	for i, xy := range l.XYs {
		if want[xy] != l.Labels[i] {
			t.Errorf("cell at %v labelled %q, want %q", xy, l.Labels[i], want[xy])
		}
	}
}

func TestPlural(t *testing.T) {
	if a, b := plural(1, "epoch", "epochs"), plural(6, "batch", "batches"); a != "1 epoch" || b != "6 batches" {
		t.Errorf("plural: %q, %q", a, b)
	}
}
