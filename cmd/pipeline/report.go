package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/pipeline"
)

// A reporter is a pipeline.Reporter that can also say how the run ended.
type reporter interface {
	pipeline.Reporter
	// finish reports a successful run's end.
	finish()
}

func (g *Globals) reporter() reporter {
	if g.JSON {
		return &jsonReporter{enc: json.NewEncoder(g.stdout), now: time.Now}
	}
	return &textReporter{out: g.stdout, err: g.stderr, quiet: g.Quiet, live: g.interactive && !g.Quiet, columns: cmp.Or(g.columns, 80)}
}

// reportError prints the error that ends the command.
func (g *Globals) reportError(err error, hint string, code int) {
	if g.JSON {
		msg := map[string]any{"message_type": "exit_error", "code": code, "message": err.Error()}
		if hint != "" {
			msg["hint"] = hint
		}
		json.NewEncoder(g.stdout).Encode(msg)
		return
	}
	// The program's name comes first; the package pipeline's errors start
	// with it already.
	fmt.Fprintf(g.stderr, "pipeline: %s\n", strings.TrimPrefix(err.Error(), "pipeline: "))
	if hint != "" {
		fmt.Fprintf(g.stderr, "hint: %s\n", hint)
	}
}

// textReporter writes results to out and progress, notes and warnings to
// err. Progress bars are drawn only when err is a terminal; otherwise each
// measured task gets one line when it ends. Safe for concurrent use.
type textReporter struct {
	mu      sync.Mutex
	out     io.Writer
	err     io.Writer
	quiet   bool
	live    bool
	columns int // the terminal's width, when live
	ran     int
	skipped int
	bar     *progressbar.ProgressBar // the live bar on the last line, if any
}

var _ reporter = (*textReporter)(nil)

// printf writes a line, clearing a live bar's line first so that the two
// do not share it; the bar is drawn again at its next update.
func (t *textReporter) printf(w io.Writer, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != nil {
		t.bar.Clear()
	}
	fmt.Fprintf(w, format, args...)
}

func (t *textReporter) Note(msg string) {
	if !t.quiet {
		t.printf(t.err, "note: %s\n", msg)
	}
}

func (t *textReporter) Warn(stage, msg string) { t.printf(t.err, "%s: warning: %s\n", stage, msg) }

func (t *textReporter) StageSkip(stage string, a *artifacts.Artifact, reason string) {
	t.mu.Lock()
	t.skipped++
	t.mu.Unlock()
	if !t.quiet {
		t.printf(t.out, "%-8s skipped: %s\n", stage, reason)
	}
}

func (t *textReporter) StageStart(stage, reason string) {
	t.mu.Lock()
	t.ran++
	t.mu.Unlock()
	if !t.quiet {
		t.printf(t.out, "%-8s running: %s\n", stage, reason)
	}
}

func (t *textReporter) StageDone(stage string, a *artifacts.Artifact, summary string, elapsed time.Duration) {
	if !t.quiet {
		t.printf(t.out, "%-8s done in %s: %s\n%-8s -> %s (%s %s)\n", stage, elapsed.Round(time.Millisecond), summary,
			"", workdirPath(a.Dir), a.Kind, a.ID.Short())
	}
}

func (t *textReporter) finish() {
	if t.ran == 0 && !t.quiet {
		t.printf(t.out, "nothing to do: every stage asked for is up to date\n")
	}
}

func (t *textReporter) Progress(stage, task string, total int64, unit pipeline.Unit) pipeline.Progress {
	bytes := unit == pipeline.Bytes
	if t.quiet {
		return pipeline.Discard.Progress(stage, task, total, unit)
	}
	p := &textProgress{t: t, label: stage + ": " + task, unit: unit, start: time.Now(), total: total}
	if t.live {
		// A line wider than the terminal wraps, and every update then
		// scrolls. Below 100 columns the bar's graphic and count go, and
		// the stage's name (on the line above already); below 70 its
		// times too; then the description is fitted to what is left, its
		// status fields dropped from the end (see describe).
		barWidth, count, times := 10, t.columns >= 100, t.columns >= 70
		fixed := progressFixed
		if t.columns >= 160 {
			barWidth = 30
		}
		if t.columns < 100 {
			barWidth, fixed, p.label = 0, fixed-12, task
		}
		if !times {
			fixed -= 15
		}
		if bytes {
			fixed += 16 // "12 MB/170 MB, 3.2 MB/s" against "1234/1234"
		}
		p.room = max(12, t.columns-barWidth-fixed)
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(t.err),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionShowBytes(bytes),
			progressbar.OptionSetPredictTime(times),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetWidth(barWidth),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(t.err) }),
		}
		if count {
			opts = append(opts, progressbar.OptionShowCount())
		}
		p.bar = progressbar.NewOptions64(total, opts...)
		t.mu.Lock()
		t.bar = p.bar
		t.mu.Unlock()
	}
	return p
}

// progressFixed is what a bar's line holds besides the description and the
// bar: " 100% ||", the counts " (1234/1234)" and the times " [1m2s:3h4m5s]".
const progressFixed = 38

type textProgress struct {
	t      *textReporter
	label  string
	unit   pipeline.Unit
	bar    *progressbar.ProgressBar
	start  time.Time
	n      int64
	total  int64
	status string
	room   int // columns for the description, when live
}

// describe returns the label and status, fitted to the room there is:
// status fields (", "-separated) are dropped from the end first.
func (p *textProgress) describe() string {
	fields := strings.Split(p.status, ", ")
	for len(fields) > 0 {
		d := strings.TrimSpace(p.label + " " + strings.Join(fields, ", "))
		if utf8.RuneCountInString(d) <= p.room {
			return d
		}
		fields = fields[:len(fields)-1]
	}
	if r := []rune(p.label); len(r) > p.room {
		return string(r[:p.room])
	}
	return p.label
}

func (p *textProgress) Status(s string) {
	p.status = s
	if p.bar != nil {
		p.bar.Describe(p.describe())
	}
}

func (p *textProgress) Add(n int64) {
	p.n += n
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *textProgress) Done() {
	if p.bar != nil {
		p.t.mu.Lock()
		if p.t.bar == p.bar {
			p.t.bar = nil
		}
		p.t.mu.Unlock()
		if p.total > 0 && p.n < p.total {
			// Interrupted: the bar shows where it got to, not 100%.
			p.bar.RenderBlank()
			p.bar.Exit()
			return
		}
		p.bar.Finish()
		return
	}
	el := time.Since(p.start)
	rate := float64(p.n) / max(el.Seconds(), 1e-9)
	switch {
	case p.unit == pipeline.Bytes:
		p.t.printf(p.t.err, "%s: %.1f MB in %s (%.1f MB/s)\n", p.label, float64(p.n)/1e6, el.Round(time.Millisecond), rate/1e6)
	case p.status != "":
		p.t.printf(p.t.err, "%s: %s in %s: %s\n", p.label, counted(p.n, p.unit), el.Round(time.Millisecond), p.status)
	default:
		p.t.printf(p.t.err, "%s: %s in %s (%.1f %s/s)\n", p.label, counted(p.n, p.unit), el.Round(time.Millisecond), rate, p.unit)
	}
}

// counted says n units: "1 batch", "12 images".
func counted(n int64, unit pipeline.Unit) string {
	if n == 1 {
		return "1 " + strings.TrimSuffix(strings.TrimSuffix(string(unit), "es"), "s")
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// jsonReporter writes one JSON object per line, each with a message_type.
// Progress is sampled at most once a second per task. Safe for concurrent use.
type jsonReporter struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
	ran int
}

var _ reporter = (*jsonReporter)(nil)

func (j *jsonReporter) emit(msg map[string]any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enc.Encode(msg)
}

func (j *jsonReporter) Note(msg string) {
	j.emit(map[string]any{"message_type": "note", "message": msg})
}
func (j *jsonReporter) Warn(stage, msg string) {
	j.emit(map[string]any{"message_type": "warning", "stage": stage, "message": msg})
}

func (j *jsonReporter) StageSkip(stage string, a *artifacts.Artifact, reason string) {
	j.emit(map[string]any{"message_type": "stage_skip", "stage": stage, "reason": reason, "artifact": a.ID, "kind": a.Kind, "path": a.Dir})
}

func (j *jsonReporter) StageStart(stage, reason string) {
	j.mu.Lock()
	j.ran++
	j.mu.Unlock()
	j.emit(map[string]any{"message_type": "stage_start", "stage": stage, "reason": reason})
}

func (j *jsonReporter) StageDone(stage string, a *artifacts.Artifact, summary string, elapsed time.Duration) {
	j.emit(map[string]any{"message_type": "stage_done", "stage": stage, "summary": summary, "seconds": elapsed.Seconds(),
		"artifact": a.ID, "kind": a.Kind, "path": a.Dir})
}

func (j *jsonReporter) finish() {
	j.emit(map[string]any{"message_type": "summary", "stages_run": j.ran})
}

func (j *jsonReporter) Progress(stage, task string, total int64, unit pipeline.Unit) pipeline.Progress {
	return &jsonProgress{j: j, stage: stage, task: task, total: total, unit: string(unit), start: j.now()}
}

type jsonProgress struct {
	j           *jsonReporter
	stage, task string
	unit        string
	total, n    int64
	start, last time.Time
	status      string
}

func (p *jsonProgress) Status(s string) { p.status = s }

func (p *jsonProgress) Add(n int64) {
	p.n += n
	if now := p.j.now(); now.Sub(p.last) >= time.Second {
		p.last = now
		p.emit("progress")
	}
}

func (p *jsonProgress) Done() { p.emit("progress_done") }

func (p *jsonProgress) emit(kind string) {
	el := p.j.now().Sub(p.start).Seconds()
	msg := map[string]any{"message_type": kind, "stage": p.stage, "task": p.task, "done": p.n, "total": p.total,
		"unit": p.unit, "seconds": el, "rate": float64(p.n) / max(el, 1e-9)}
	if p.status != "" {
		msg["status"] = p.status
	}
	p.j.emit(msg)
}
