package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/batch"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/tfevents"
)

// Train trains CondenseNet on the dataset, condensing its learned group
// convolutions in the first half, and outputs an artifacts.TrainedModel.
// It checkpoints every epoch and when interrupted, and resumes from the
// newest checkpoint made with the same key.
type Train struct {
	Model model.Config
	Train TrainConfig
	Seed  uint64
}

const trainVersion = 1

func (t *Train) Name() string     { return "train" }
func (t *Train) Version() int     { return trainVersion }
func (t *Train) Inputs() []string { return []string{"fetch"} }

// WriteKey writes the recipe and the kind of engine (cpu or cuda), since
// the two round differently; the worker count changes nothing and is left
// out.
func (t *Train) WriteKey(w io.Writer) {
	t.writeRecipe(w)
	fmt.Fprintf(w, "train.engine %s\n", engineKind(t.Train.Device))
}

func (t *Train) writeRecipe(w io.Writer) {
	m, _ := json.Marshal(t.Model) // field order is fixed by the struct
	c := t.Train
	fmt.Fprintf(w, "model %s\nseed %d\ntrain.epochs %d\ntrain.batch %d\ntrain.lr %g\ntrain.momentum %g\n", m, t.Seed, c.Epochs, c.Batch, c.LR, c.Momentum)
	fmt.Fprintf(w, "train.weight_decay %g\ntrain.images_per_epoch %d\ntrain.eval_every %d\n", c.WeightDecay, c.ImagesPerEpoch, c.EvalEvery)
}

// recipeKey is the stage's key without the engine. Checkpoints carry it,
// so that a run interrupted on one device resumes on the other, although
// the finished model's key names the device it was trained on.
func (t *Train) recipeKey(inputs map[string]*artifacts.Artifact) artifacts.Key {
	h := pipeline.NewKeyHash(t.Name(), t.Version())
	for _, in := range t.Inputs() {
		h.Input(in, inputs[in].ID)
	}
	t.writeRecipe(h)
	return h.Sum()
}

// LR returns the cosine learning rate at iteration it of total:
// lr/2·(1 + cos(π·it/total)), the paper's per-iteration schedule.
func LR(peak float64, it, total int) float64 {
	return 0.5 * peak * (1 + math.Cos(math.Pi*float64(it)/float64(total)))
}

func (t *Train) Run(ctx context.Context, env *pipeline.Env) (pipeline.Output, error) {
	ds, err := artifacts.LoadDataset(env.Inputs["fetch"])
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	cfg := t.Model
	if cfg.Classes != len(ds.Classes) {
		return nil, fmt.Errorf("model.classes is %d but the %s dataset has %d classes: set model.classes to %d", cfg.Classes, ds.Name, len(ds.Classes), len(ds.Classes))
	}
	if side := cfg.Form().Side(cfg.Input()); ds.C != 3 || ds.H != side || ds.W != side {
		return nil, fmt.Errorf("%w: the %s dataset's images are %d×%d×%d, and the network (input %d, %s form) takes them stored as 3×%d×%d: set data.image_size to %d, and run fetch again",
			ErrConfig, ds.Name, ds.C, ds.H, ds.W, cfg.Input(), cfg.Form(), side, side, cfg.Input())
	}
	tc := t.Train
	if n := len(ds.Train.Labels); tc.Batch > n {
		return nil, fmt.Errorf("%w: train.batch is %d but the %s dataset has %d training images: a batch larger than the training set trains nothing; set train.batch to at most %d",
			ErrConfig, tc.Batch, ds.Name, n, n)
	}
	be, which, err := NewBackend(t.Train.Device, t.Train.Workers, env.Report.Note)
	if err != nil {
		return nil, err
	}
	env.Report.Note("train: device " + which)
	defer CloseBackend(be)
	net, err := model.NewNet(cfg, tc.Batch, be, t.Seed)
	if err != nil {
		return nil, err
	}
	train := batcher(ds, &ds.Train, tc.Batch, &cfg)
	train.Seed, train.Augment = t.Seed, true
	test := batcher(ds, &ds.Test, tc.Batch, &cfg)
	steps := train.Steps()
	if n := ds.Train.Len(); tc.ImagesPerEpoch > n {
		env.Report.Note(fmt.Sprintf("train: the training set has %d images, fewer than train.images_per_epoch (%d): each epoch is the whole set, reshuffled, in %s of %d%s",
			n, tc.ImagesPerEpoch, plural(steps, "batch", "batches"), tc.Batch, dropped(n%tc.Batch)))
	}
	if tc.ImagesPerEpoch > 0 {
		steps = min(steps, tc.ImagesPerEpoch/tc.Batch)
	}
	total := tc.Epochs * steps

	// Checkpoints from before recipe keys carry the full key.
	recipe := t.recipeKey(env.Inputs)
	st, resumed, err := loadCheckpoint(env.StateDir, []artifacts.Key{recipe, env.Key}, net, func(msg string) { env.Report.Warn(env.Stage, msg) })
	if err != nil {
		return nil, err
	}
	if resumed {
		from := ""
		if st.Device != "" && st.Device != be.Name() {
			from = ", checkpointed on " + st.Device
		}
		env.Report.Note(fmt.Sprintf("train: resuming from iteration %d of %d (epoch %d%s)", st.Iteration, total, st.Iteration/steps+1, from))
	}
	st.Device = be.Name()
	events := openEventLog(env, runLogDir(env, env.Key), "train", st.Iteration)
	defer events.close()
	_, kept := cfg.CondensingSteps(total)
	labels := make([]int32, tc.Batch)
	logits := make([]float32, tc.Batch*cfg.Classes)
	batches := prefetch(ctx, train, st.Iteration, total, steps)
	defer batches.stop()
	// save checkpoints s, and says how far it is for status.
	save := func(s trainState) error {
		if err := saveCheckpoint(env.StateDir, recipe, net, s); err != nil {
			return err
		}
		note := fmt.Sprintf("epoch %d of %d", s.Iteration/steps+1, tc.Epochs)
		if s.Iteration%steps == 0 {
			note = fmt.Sprintf("%d of %s done", s.Iteration/steps, plural(tc.Epochs, "epoch", "epochs"))
		}
		return pipeline.WriteResumePoint(env.StateDir, pipeline.ResumePoint{Key: env.Key, Done: s.Iteration, Total: total,
			Unit: "iteration", Note: note, Saved: time.Now()})
	}
	every := time.Duration(tc.CheckpointMinutes * float64(time.Minute))
	rate := runRate{start: st.Iteration}
	lastSave := time.Now()

	var prog pipeline.Progress
	epochStart := time.Now()
	// interrupted keeps a part-done epoch in a checkpoint (a finished one
	// is saved already) and returns the cancellation.
	interrupted := func(err error) error {
		if st.Iteration%steps != 0 {
			st.Epoch.Seconds += time.Since(epochStart).Seconds()
			prog.Done()
			if serr := save(st); serr != nil {
				return fmt.Errorf("interrupted, and the checkpoint failed: %w", serr)
			}
		}
		return err
	}
	for st.Iteration < total {
		it := st.Iteration
		epoch, step := it/steps, it%steps
		if step == 0 || prog == nil {
			prog = env.Progress(fmt.Sprintf("epoch %d/%d", epoch+1, tc.Epochs), int64(steps), pipeline.Batches)
			prog.Add(int64(step))
			epochStart = time.Now()
		}
		net.Condense(float64(it) / float64(total))
		bt, err := batches.next()
		if err != nil {
			// Cancelled, or the dataset's file failed: what the epoch
			// has done so far is kept.
			return nil, interrupted(err)
		}
		copy(labels, bt.labels)
		net.SetInput(bt.images, bt.labels)
		batches.done(bt)
		// The whole step is queued before anything is read back, so a GPU
		// runs it without waiting on the host; the loss and logits are the
		// step's only downloads. A non-finite loss is caught after the
		// update, before anything is saved: the weights in memory are lost,
		// the checkpoint on disk is not.
		net.Forward(true)
		net.ZeroGrad()
		net.Backward()
		lasso := net.Lasso()
		lr := LR(tc.LR, it, total)
		net.Update(float32(lr), float32(tc.Momentum), float32(tc.WeightDecay))
		loss := net.Loss() + lasso
		net.Logits(logits)
		if err := be.Sync(); err != nil {
			prog.Done()
			return nil, fmt.Errorf("train: device failed at iteration %d: %w", it, err)
		}
		if err := checkLoss(loss, it, epoch); err != nil {
			prog.Done()
			return nil, err
		}
		top1, top5 := topK(logits, labels, cfg.Classes, tc.Batch)
		e := &st.Epoch
		e.Loss += loss
		e.Top1, e.Top5, e.Seen, e.Steps = e.Top1+top1, e.Top5+top5, e.Seen+tc.Batch, e.Steps+1
		st.Iteration++
		st.NetStep = net.Step()
		el := e.Seconds + time.Since(epochStart).Seconds()
		rate.step(st.Iteration)
		if line := rate.estimate(st.Iteration, total, tc.Batch, be.Name()); line != "" {
			env.Report.Note("train: " + fmt.Sprintf("%s × %s of %d = %s images; ", plural(tc.Epochs, "epoch", "epochs"), plural(steps, "batch", "batches"), tc.Batch, count(total*tc.Batch)) + line)
		}
		// Most wanted first: a narrow terminal drops fields from the end.
		prog.Status(fmt.Sprintf("run ETA %s, loss %.4f, %.0f images/s, train top-1 %.1f%%, lr %.4f", rate.eta(st.Iteration, total),
			e.Loss/float64(e.Steps), float64(e.Seen)/max(el, 1e-9), 100*float64(e.Top1)/float64(e.Seen), lr))
		prog.Add(1)
		if st.Iteration%logEvery == 0 || st.Iteration%steps == 0 {
			events.write(st.Iteration, trainScalars(e, el, lr, net.StageReached(), kept)...)
		}

		if st.Iteration%steps == 0 {
			prog.Done()
			e.Seconds = el
			m := artifacts.Metric{Epoch: epoch + 1, Iteration: st.Iteration, Loss: e.Loss / float64(e.Steps),
				TrainTop1: float64(e.Top1) / float64(e.Seen), TrainTop5: float64(e.Top5) / float64(e.Seen),
				LR: lr, Stage: net.StageReached(), Seconds: e.Seconds, ImagesPerSec: float64(e.Seen) / e.Seconds, Device: be.Name()}
			if last := epoch+1 == tc.Epochs; last || (tc.EvalEvery > 0 && (epoch+1)%tc.EvalEvery == 0) {
				t1, t5, err := evaluate(ctx, env, net, test, logits)
				if err != nil {
					return nil, err
				}
				m.TestTop1, m.TestTop5 = &t1, &t5
				events.write(st.Iteration, tfevents.Scalar{Tag: "test/top1", Value: 100 * t1}, tfevents.Scalar{Tag: "test/top5", Value: 100 * t5})
			}
			st.Metrics = append(st.Metrics, m)
			st.Epoch = epochSums{}
			if err := save(st); err != nil {
				return nil, err
			}
			epochStart, lastSave = time.Now(), time.Now()
		} else if every > 0 && time.Since(lastSave) >= every {
			// A checkpoint on time too, so that kill -9 loses at most
			// `every` of a long epoch; resuming from it is exact.
			snap := st
			snap.Epoch.Seconds = el
			if err := save(snap); err != nil {
				return nil, err
			}
			lastSave = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return nil, interrupted(err)
		}
	}
	return t.output(net, st.Metrics)
}

// runRate measures a run's speed in steps, for its ETA and the estimate
// of its length that it gives once, after its first steps.
type runRate struct {
	start     int // the iteration the run started at
	t0        time.Time
	at0       int
	estimated bool
}

// warm is how many steps are left out of the measure (the first allocates),
// probe how many are measured before the estimate.
const warm, probe = 1, 3

func (r *runRate) step(it int) {
	if it-r.start == warm {
		r.t0, r.at0 = time.Now(), it
	}
}

// perStep returns the time a step takes, or 0 before there is a measure.
func (r *runRate) perStep(it int) time.Duration {
	if r.t0.IsZero() || it <= r.at0 {
		return 0
	}
	return time.Since(r.t0) / time.Duration(it-r.at0)
}

// eta is the time the rest of the run should take.
func (r *runRate) eta(it, total int) string {
	d := r.perStep(it)
	if d == 0 {
		return "…"
	}
	return duration(d * time.Duration(total-it))
}

// estimate returns, once, the words on how long the whole run takes on
// device, with a hint when that is hours on a CPU.
func (r *runRate) estimate(it, total, batch int, device string) string {
	if r.estimated || it-r.at0 < probe || r.t0.IsZero() {
		return ""
	}
	r.estimated = true
	d := r.perStep(it)
	whole := fmt.Sprintf("about %s in all", duration(d*time.Duration(total)))
	if r.start > 0 { // resumed: what is left is what matters
		whole = fmt.Sprintf("about %s left (%s in all)", duration(d*time.Duration(total-it)), duration(d*time.Duration(total)))
	}
	line := fmt.Sprintf("at %.0f images/s (the first steps), %s on %s", float64(batch)/d.Seconds(), whole, device)
	if d*time.Duration(total) > time.Hour && strings.HasPrefix(device, "cpu") {
		line += "; for a first try, --preset quick trains a small network in minutes"
	}
	return line
}

// duration rounds a duration for people: 3h12m, 12m30s, 45s.
func duration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()+0.5))
}

// count writes a large count for people: 15.0M, 640.
func count(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprint(n)
}

// checkLoss stops training on a loss that is not finite, before a
// checkpoint could keep the weights it spoiled.
func checkLoss(loss float64, it, epoch int) error {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("loss is %v at iteration %d (epoch %d); training stopped, the last epoch's checkpoint is kept: lower train.lr or check the data", loss, it, epoch+1)
	}
	return nil
}

// evaluate returns test top-1 and top-5 accuracy with running BN statistics.
func evaluate(ctx context.Context, env *pipeline.Env, net *model.Net, test *batch.Batcher, logits []float32) (top1, top5 float64, err error) {
	x := make([]float32, test.Floats())
	labels := make([]int32, test.Batch)
	prog := env.Progress("evaluate", int64(test.Steps()), pipeline.Batches)
	defer prog.Done()
	var c1, c5, n int
	for step := range test.Steps() {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		real, err := test.Fill(x, labels, 0, step)
		if err != nil {
			return 0, 0, err
		}
		net.SetInput(x, labels)
		net.Forward(false)
		net.Logits(logits)
		a, b := topK(logits, labels[:real], len(logits)/test.Batch, real)
		c1, c5, n = c1+a, c5+b, n+real
		five := "" // with five classes or fewer, every image is in its top 5
		if len(logits)/test.Batch > 5 {
			five = fmt.Sprintf(", top-5 %.2f%%", 100*float64(c5)/float64(n))
		}
		prog.Status(fmt.Sprintf("test top-1 %.2f%%%s on %d images", 100*float64(c1)/float64(n), five, n))
		prog.Add(1)
	}
	return float64(c1) / float64(n), float64(c5) / float64(n), nil
}

// topK counts the examples (the first n rows of logits) whose label is the
// top-scoring class and among the top five.
func topK(logits []float32, labels []int32, classes, n int) (top1, top5 int) {
	for i := range n {
		row := logits[i*classes : (i+1)*classes]
		want := row[labels[i]]
		better := 0 // classes scoring above the label; ties go to the label
		for _, v := range row {
			if v > want {
				better++
			}
		}
		if better == 0 {
			top1++
		}
		if better < 5 {
			top5++
		}
	}
	return top1, top5
}

func (t *Train) output(net *model.Net, metrics []artifacts.Metric) (pipeline.Output, error) {
	cfg, err := json.MarshalIndent(map[string]any{"model": t.Model, "train": t.Train, "seed": t.Seed}, "", "  ")
	if err != nil {
		return nil, err
	}
	var weights bytes.Buffer
	if err := model.WriteSafetensors(&weights, net.Tensors(false), map[string]string{"format": "condensenet-trained"}); err != nil {
		return nil, err
	}
	plot, err := plotCurves(metrics)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return &artifacts.TrainedModel{Config: append(cfg, '\n'), Weights: weights.Bytes(), Metrics: metrics, Plot: plot}, nil
}

// A stepBatch is one step's augmented images and labels.
type stepBatch struct {
	images []float32
	labels []int32
	err    error // reading the images failed
}

// batchQueue fills training batches one step ahead in a goroutine, so that
// cropping and flipping the next batch overlaps the work on this one. Two
// batches circulate: one being filled, one being used.
type batchQueue struct {
	full, free chan stepBatch
	ctx        context.Context
	stop       context.CancelFunc
}

func prefetch(ctx context.Context, b *batch.Batcher, from, total, steps int) *batchQueue {
	ctx, cancel := context.WithCancel(ctx)
	q := &batchQueue{full: make(chan stepBatch, 1), free: make(chan stepBatch, 2), ctx: ctx, stop: cancel}
	for range 2 {
		q.free <- stepBatch{images: make([]float32, b.Floats()), labels: make([]int32, b.Batch)}
	}
	go func() {
		for it := from; it < total; it++ {
			var bt stepBatch
			select {
			case bt = <-q.free:
			case <-ctx.Done():
				return
			}
			_, bt.err = b.Fill(bt.images, bt.labels, it/steps, it%steps)
			select {
			case q.full <- bt:
			case <-ctx.Done():
				return
			}
			if bt.err != nil {
				return
			}
		}
	}()
	return q
}

// next returns the next batch; its error is the cancellation, or a
// failure to read the batch's images.
func (q *batchQueue) next() (stepBatch, error) {
	select {
	case bt := <-q.full:
		return bt, bt.err
	case <-q.ctx.Done():
		return stepBatch{}, context.Cause(q.ctx)
	}
}

// done hands a batch back for filling; its contents must not be read again.
func (q *batchQueue) done(bt stepBatch) { q.free <- bt }

// dropped words the images an epoch leaves out: a partial batch is not
// trained on (a different few each epoch, since each is reshuffled).
func dropped(n int) string {
	if n == 0 {
		return ""
	}
	if n == 1 {
		return " (the last image of each shuffled epoch is left out: batches are whole)"
	}
	return fmt.Sprintf(" (the last %d images of each shuffled epoch are left out: batches are whole)", n)
}

// plural writes a count of things: "1 epoch", "5 epochs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
