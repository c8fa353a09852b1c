package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/internal/atomicfile"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
	"github.com/condensenet/condensenet/tfevents"
)

func newReportCommand(g *Globals) *cobra.Command {
	var out string
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write one self-contained HTML page about the workdir's run",
		Long: `report writes report.html in the workdir (or --out): the run's
configuration, the training curves, the condensation schedule, both
networks' verification numbers, the confusion matrix and the export's
parity check. Images are embedded, so the page needs no network and can be
mailed as one file. Stages that have not run yet are shown as such.

While training runs (or after it was interrupted), the page shows how far
it is, the time left, and the curves so far from its TensorBoard events.
--watch rewrites the page at that interval until Ctrl-C, and the page
then reloads itself at the same interval, keeping its scroll position.`,
		Example: `  pipeline report && xdg-open work/report.html
  pipeline report --workdir /shared/run1 --out run1.html
  pipeline report --watch 30s     # while pipeline run all trains`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runReport(cmd.Context(), g, out, watch) },
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the page (default: report.html in the workdir)")
	cmd.Flags().DurationVar(&watch, "watch", 0, "rewrite the page at this interval until interrupted (at least 1s; 0: once)")
	return cmd
}

// liveTraining is a training that has not finished: running, or
// interrupted with a checkpoint to resume from.
type liveTraining struct {
	State     pipeline.State
	Reason    string
	Done      int // iterations
	Total     int
	Remaining string // the time left at the recent rate, while running
	Curves    template.URL
}

// reportPage is what the template shows; nil parts have not run.
type reportPage struct {
	Workdir   string
	Made      string
	Top5      bool   // the network has more than five classes, so top-5 says something
	Config    string // the training's: model, train and seed
	Settings  string // the workdir's whole configuration, data to export
	Metrics   []artifacts.Metric
	Curves    template.URL
	Schedule  []scheduleRow
	Steps     []stepRow
	Masks     string // what the trained model's masks keep, against the schedule
	Verify    *artifacts.Report
	Confusion template.URL
	Parity    *artifacts.Parity
	ONNXSize  string
	// Stale says, per stage, why its results are not what a run with the
	// workdir's settings would make now ("stale: the config changed").
	Stale map[string]string
	Live  *liveTraining
	// Refresh, if not 0, is how often the page reloads itself (seconds).
	Refresh float64
}

// scheduleRow is one epoch of the condensation schedule: the share of its
// inputs each learned group convolution still uses.
type scheduleRow struct {
	Epoch  int
	Stage  int
	Kept   float64 // fraction of inputs per group, 1 − stage/C
	Layers string  // e.g. "16→4 ... 120→30 (block 1)"
}

// stepRow is one condensing step of the run: when it happened and the
// learned group convolutions' weights kept after it.
type stepRow struct {
	Step, Iteration, Epoch int
	Kept                   int
	Share                  float64
}

// condensingSteps lists the run's condensing steps, from its
// configuration and iterations (the last metric's), and says what the
// trained model's masks keep.
func condensingSteps(cfg model.Config, metrics []artifacts.Metric, weights []byte) ([]stepRow, string) {
	if len(metrics) == 0 || metrics[0].Iteration == 0 {
		return nil, ""
	}
	perEpoch, total := metrics[0].Iteration, metrics[len(metrics)-1].Iteration
	its, kept := cfg.CondensingSteps(total)
	var rows []stepRow
	for i, it := range its {
		rows = append(rows, stepRow{Step: i + 1, Iteration: it, Epoch: it/perEpoch + 1, Kept: kept[i+1], Share: float64(kept[i+1]) / float64(kept[0])})
	}
	ts, _, err := model.ReadSafetensors(weights)
	if err != nil {
		return rows, fmt.Sprintf("the trained weights could not be read: %v", err)
	}
	n := 0.0
	for name, x := range ts {
		if strings.HasSuffix(name, "._mask") {
			for _, v := range x.Data {
				n += float64(v)
			}
		}
	}
	want := kept[len(rows)]
	msg := fmt.Sprintf("The trained model's masks keep %d of %d weights of the learned group convolutions", int(n), kept[0])
	if int(n) != want {
		return rows, msg + fmt.Sprintf(": NOT the %d its %d steps should leave", want, len(rows))
	}
	return rows, msg + ", as the steps above should leave."
}

func runReport(ctx context.Context, g *Globals, out string, watch time.Duration) error {
	if err := g.needWorkdir(); err != nil {
		return err
	}
	if watch != 0 && watch < time.Second {
		return usageError{fmt.Errorf("--watch %s: want 1s or more", watch)}
	}
	path := cmp.Or(out, filepath.Join(g.Workdir, "report.html"))
	for {
		b, err := renderReport(g, watch)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, b); err != nil {
			if out == "" {
				return fmt.Errorf("%w; give --out with a file elsewhere", err)
			}
			return err
		}
		if watch == 0 {
			fmt.Fprintf(g.stdout, "wrote %s\n", workdirPath(path))
			return nil
		}
		if !g.Quiet {
			fmt.Fprintf(g.stderr, "report: wrote %s at %s; again in %s (Ctrl-C stops)\n", workdirPath(path), time.Now().Format("15:04:05"), watch)
		}
		select {
		case <-ctx.Done():
			return nil // the page stays as last written
		case <-time.After(watch):
		}
	}
}

// renderReport makes the report page of the workdir as it is now; a page
// with a refresh interval reloads itself at it.
func renderReport(g *Globals, refresh time.Duration) ([]byte, error) {
	store, err := artifacts.Open(g.Workdir)
	if err != nil {
		return nil, err
	}
	page := reportPage{Workdir: workdirPath(store.Dir()), Made: time.Now().Format("2006-01-02 15:04:05"), Stale: map[string]string{}, Refresh: refresh.Seconds()}
	for stage, s := range staleStages(g) {
		page.Stale[stage] = fmt.Sprintf("%s: %s", s.State, s.Reason)
		if stage == "train" && (s.State == pipeline.Running || s.State == pipeline.Interrupted) {
			page.Live = liveTrain(store.Dir(), s)
		}
	}
	if cfg, ok, err := loadSettings(g.Workdir); err == nil && ok {
		b, _ := json.MarshalIndent(cfg, "", "  ")
		page.Settings = string(b)
	}
	get := func(name string) *artifacts.Artifact {
		a, err := store.Get(name)
		if err != nil {
			return nil
		}
		return a
	}
	if a := get("train"); a != nil {
		tm, err := artifacts.LoadTrainedModel(a)
		if err != nil {
			return nil, err
		}
		page.Config, page.Metrics, page.Curves = string(tm.Config), tm.Metrics, pngURL(tm.Plot)
		var c struct{ Model model.Config }
		if json.Unmarshal(tm.Config, &c) == nil {
			page.Top5 = c.Model.Classes > 5
			page.Schedule = schedule(c.Model, tm.Metrics)
			page.Steps, page.Masks = condensingSteps(c.Model, tm.Metrics, tm.Weights)
		}
	}
	if a := get("verify"); a != nil {
		r, err := artifacts.LoadReport(a)
		if err != nil {
			return nil, err
		}
		page.Verify, page.Confusion = r, pngURL(r.ConfusionPNG)
	}
	if a := get("export"); a != nil {
		b, err := a.ReadFile("parity.json")
		if err != nil {
			return nil, err
		}
		var p artifacts.Parity
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		page.Parity = &p
		if st, err := os.Stat(a.Path("model.onnx")); err == nil {
			page.ONNXSize = fmt.Sprintf("%.2f MB", float64(st.Size())/1e6)
		}
	}
	if page.Metrics == nil && page.Verify == nil && page.Live == nil {
		return nil, errors.New("nothing to report: no trained model in " + page.Workdir + "; run \"pipeline run all\" first")
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// liveTrain describes a training that has not finished, from its resume
// point and the newest TensorBoard event file.
func liveTrain(dir string, st pipeline.Status) *liveTraining {
	live := &liveTraining{State: st.State, Reason: st.Reason}
	if p, ok := pipeline.ReadResumePoint(filepath.Join(dir, "state", "train")); ok {
		live.Done, live.Total = p.Done, p.Total
	}
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "train-*", "events.out.tfevents.*.train"))
	var newest string
	var when time.Time
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(when) {
			newest, when = f, fi.ModTime()
		}
	}
	if newest == "" {
		return live
	}
	events, err := tfevents.ReadFile(newest)
	if err != nil || len(events) < 2 {
		return live
	}
	if png, err := stages.PlotEvents(events); err == nil {
		live.Curves = pngURL(png)
	}
	last := events[len(events)-1]
	live.Done = max(live.Done, int(last.Step))
	// The rate over the last twenty logged steps of this run (a resumed
	// run's steps before its resume were logged at another time).
	first := events[max(1, len(events)-20)]
	if st.State == pipeline.Running && live.Total > live.Done && last.Step > first.Step && last.Wall > first.Wall {
		rate := float64(last.Step-first.Step) / (last.Wall - first.Wall)
		live.Remaining = time.Duration(float64(live.Total-live.Done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return live
}

func pngURL(b []byte) template.URL {
	if len(b) == 0 {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
}

// schedule lists, per epoch, how many inputs each layer's groups keep:
// all layers condense together, dropping in/C per stage.
func schedule(cfg model.Config, metrics []artifacts.Metric) []scheduleRow {
	var rows []scheduleRow
	for _, m := range metrics {
		kept := 1 - float64(m.Stage)/float64(cfg.CondenseFactor)
		var layers bytes.Buffer
		ch := 2 * cfg.Growth[0]
		for b, n := range cfg.Stages {
			first, last := ch, ch+(n-1)*cfg.Growth[b]
			fmt.Fprintf(&layers, "block %d: %d→%d … %d→%d  ", b+1, first, int(float64(first)*kept), last, int(float64(last)*kept))
			ch += n * cfg.Growth[b]
		}
		rows = append(rows, scheduleRow{Epoch: m.Epoch, Stage: m.Stage, Kept: kept, Layers: layers.String()})
	}
	return rows
}

// staleStages returns, by stage, the stages that have an artifact that is
// not what a run with the workdir's settings would make now; nothing when
// those settings cannot be read.
func staleStages(g *Globals) map[string]pipeline.Status {
	cfg, err := g.config()
	if err != nil {
		return nil
	}
	r, err := g.runner(cfg, pipeline.Discard)
	if err != nil {
		return nil
	}
	r.Store.NoVerify = true // the artifacts shown are verified as they are read
	out := map[string]pipeline.Status{}
	for _, s := range r.Status() {
		if s.State != pipeline.Fresh && s.State != pipeline.Missing {
			out[s.Stage] = s
		}
	}
	return out
}

func pct(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":  pct,
	"mill": func(v int64) string { return fmt.Sprintf("%.2fM", float64(v)/1e6) },
	"f1":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"optpct": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return pct(*v)
	},
	"ratio":  func(a, b float64) string { return fmt.Sprintf("%.2fx", a/b) },
	"mul100": func(v float64) float64 { return 100 * v },
	"sub":    func(a, b float64) float64 { return a - b },
}).Parse(`{{define "stale"}}{{with .}}<p class="stale">Out of date ({{.}}): these are an earlier run's results, not what "pipeline run all" would make now.</p>
{{end}}{{end}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>CondenseNet run: {{.Workdir}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;overflow:auto}.missing{color:#999}.live{background:#e7f3ff;padding:.4em .6em}.failed{color:#b00;font-weight:bold}.stale{background:#fff3cd;padding:.4em .6em}
</style></head><body>
<h1>CondenseNet run</h1>
<p>Workdir <code>{{.Workdir}}</code>, report made {{.Made}}.</p>

<h2>Training</h2>
{{with .Live}}<p class="live">Training {{if eq .State "running"}}in progress{{else}}interrupted{{end}}{{if .Total}}: iteration {{.Done}} of {{.Total}}{{end}}{{with .Remaining}}, about {{.}} left{{end}} ({{.Reason}}).{{if ne .State "running"}} Run again to continue.{{end}}</p>
{{with .Curves}}<img src="{{.}}" alt="training curves so far">{{end}}
{{else}}{{template "stale" index $.Stale "train"}}{{end}}
{{if .Metrics}}<img src="{{.Curves}}" alt="training curves">
<table><tr><th>epoch</th><th>loss</th><th>train top-1</th><th>test top-1</th><th>test top-5</th><th>lr</th><th>stage</th><th>seconds</th><th>images/s</th><th>device</th></tr>
{{range .Metrics}}<tr><td>{{.Epoch}}</td><td>{{printf "%.4f" .Loss}}</td><td>{{pct .TrainTop1}}</td><td>{{optpct .TestTop1}}</td><td>{{if $.Top5}}{{optpct .TestTop5}}{{else}}n/a{{end}}</td><td>{{printf "%.4f" .LR}}</td><td>{{.Stage}}</td><td>{{f1 .Seconds}}</td><td>{{f1 .ImagesPerSec}}</td><td>{{.Device}}</td></tr>
{{end}}</table>
<h3>Condensing steps</h3>
{{if .Steps}}<table><tr><th>step</th><th>iteration</th><th>epoch</th><th>weights kept after it</th></tr>
{{range .Steps}}<tr><td>{{.Step}}</td><td>{{.Iteration}}</td><td>{{.Epoch}}</td><td>{{.Kept}} ({{pct .Share}})</td></tr>
{{end}}</table>{{end}}
<p>{{.Masks}}</p>
<h3>Condensation schedule</h3>
<p>Every learned group convolution keeps this share of its inputs per group at the end of each epoch (inputs → kept, first and last layer of each block).</p>
<table><tr><th>epoch</th><th>stage</th><th>kept</th><th>layers</th></tr>
{{range .Schedule}}<tr><td>{{.Epoch}}</td><td>{{.Stage}}</td><td>{{pct .Kept}}</td><td>{{.Layers}}</td></tr>
{{end}}</table>
<h3>Configuration</h3><pre>{{.Config}}</pre>
{{else if not .Live}}<p class="missing">Not trained yet.</p>{{end}}
{{with .Settings}}<h3>Settings</h3><p>The workdir's whole configuration (data, model, training, condensing, verification, export), as its last run that got past fetching used it (settings.json):</p><pre>{{.}}</pre>{{end}}

<h2>Verification</h2>
{{template "stale" index $.Stale "verify"}}
{{with $v := .Verify}}{{if not .Passed}}<p class="failed">FAILED: condensing raised the top-1 error by {{printf "%.2f" (mul100 .Difference)}} points, more than the tolerance of {{.Tolerance}}; export refuses this model.</p>
{{end}}<p>{{.Images}} test images of {{.Dataset}}, batch {{.Batch}}.</p>
<table><tr><th>network</th><th>top-1 error</th><th>top-5 error</th><th>FLOPs</th><th>params</th><th>images/s</th></tr>
<tr><td>trained (masked)</td><td>{{pct .Trained.Top1Error}}</td><td>{{if .HasTop5}}{{pct .Trained.Top5Error}}{{else}}n/a{{end}}</td><td>{{mill .Trained.FLOPs}}</td><td>{{mill .Trained.Params}}</td><td>{{f1 .Trained.ImagesPerSec}}</td></tr>
<tr><td>condensed</td><td>{{pct .Condensed.Top1Error}}</td><td>{{if .HasTop5}}{{pct .Condensed.Top5Error}}{{else}}n/a{{end}}</td><td>{{mill .Condensed.FLOPs}}</td><td>{{mill .Condensed.Params}}</td><td>{{f1 .Condensed.ImagesPerSec}}</td></tr>
{{with .Int8}}<tr><td>condensed, int8 (CPU)</td><td>{{pct .Top1Error}}</td><td>{{if $v.HasTop5}}{{pct .Top5Error}}{{else}}n/a{{end}}</td><td>{{mill .FLOPs}}</td><td>{{mill .Params}}</td><td>{{f1 .ImagesPerSec}}</td></tr>{{end}}</table>
<p>Condensing changed top-1 error by {{printf "%+.2f" (mul100 .Difference)}} points (tolerance {{.Tolerance}}); the condensed network ran at {{ratio .Condensed.ImagesPerSec .Trained.ImagesPerSec}} the trained one's speed.{{with .Int8}} Its int8 form changed top-1 error by {{printf "%+.2f" (mul100 (sub .Top1Error $v.Condensed.Top1Error))}} points.{{end}}</p>
{{end}}{{if .Verify}}<img src="{{.Confusion}}" alt="confusion matrix">{{else}}<p class="missing">Not verified yet.</p>{{end}}

<h2>Export</h2>
{{template "stale" index $.Stale "export"}}
{{with .Parity}}<p>model.onnx ({{$.ONNXSize}}) reproduces the condensed network on {{.Images}} test images to {{printf "%.2g" .MaxAbsDiff}} (tolerance {{.Tolerance}}); classes agree: {{.ArgmaxAgree}}. Checked with {{.Evaluator}}.</p>
{{else}}<p class="missing">Not exported yet.</p>{{end}}
{{with .Refresh}}<script>
// Made by report --watch: reload as often as the page is rewritten; a
// reload keeps the scroll position (browsers restore it; tested in
// Chromium).
setTimeout(() => location.reload(), {{.}} * 1000);
</script>{{end}}
</body></html>
`))
