package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/internal/filelock"
)

// A Stage is one step of the pipeline. Its output is an artifact stored
// under the stage's name.
type Stage interface {
	Name() string
	// Version is bumped whenever the stage would produce different output
	// from the same inputs and configuration.
	Version() int
	// Inputs names the stages whose artifacts this one reads.
	Inputs() []string
	// WriteKey writes every configuration field the stage reads, one
	// "name value" line each. Fields it does not read must stay out, so that
	// changing them does not re-run it.
	WriteKey(w io.Writer)
	// Run does the work and returns the artifact to store. It must return
	// promptly with ctx.Err() once ctx is cancelled. A result that is also a
	// failure (a measurement below its bar) is returned with the error: the
	// runner stores it, so it can be seen, and then stops with the error.
	Run(ctx context.Context, env *Env) (Output, error)
}

// An Output is what a stage produces: a typed artifact that can write
// itself. One that holds files open (a dataset too large for memory) is
// an io.Closer, closed once it is stored.
type Output interface {
	Info() artifacts.Info // Kind and Schema; the runner fills in the rest
	Write(w *artifacts.Writer) error
	Summary() string // one line for people
}

// Env is what a running stage gets from the runner.
type Env struct {
	Stage  string
	Inputs map[string]*artifacts.Artifact // verified input artifacts by stage name
	Report Reporter
	// Key is the key the output will be stored under. A stage that keeps
	// resumable state (checkpoints) tags it with Key, so that state from
	// other settings is never resumed.
	Key artifacts.Key
	// StateDir is a folder the stage may keep resumable state in across
	// interrupted runs (the stage creates it). The runner removes it once
	// the stage's output is committed.
	StateDir string
	// LogDir is the workdir's folder for logs that people watch while
	// stages run, TensorBoard's event files; it outlives every run.
	LogDir string
}

// Progress starts a measured task for the running stage.
func (e *Env) Progress(task string, total int64, unit Unit) Progress {
	return e.Report.Progress(e.Stage, task, total, unit)
}

// A Runner runs a fixed sequence of stages in one artifact store.
type Runner struct {
	Store  *artifacts.Store
	Stages []Stage // in order; a stage's inputs come before it
	Report Reporter
	// KeyDebug, if set, receives every line hashed into every key
	// (PIPELINE_DEBUG=keyhash in the CLI).
	KeyDebug io.Writer
}

// State is what a stage's artifact is, compared with what it should be.
type State string

const (
	Fresh   State = "fresh"   // exists and its key matches: would be skipped
	Missing State = "missing" // never produced
	Stale   State = "stale"   // exists but a setting, input or the code changed
	Corrupt State = "corrupt" // exists but fails verification
	// Running: not fresh, and a run holding the workdir is at it.
	Running State = "running"
	// Interrupted: not fresh, and a checkpoint under the current key lets
	// the next run resume it.
	Interrupted State = "interrupted"
)

// A Status describes one stage's artifact.
type Status struct {
	Stage    string
	State    State
	Reason   string              // in words, for people
	Artifact *artifacts.Artifact // nil unless the artifact verified
}

// Options select what Run does.
type Options struct {
	Target string // a stage name, or "all"
	// From forces this stage and every later one up to Target to run even
	// if fresh. Without From, fresh stages are skipped.
	From string
	// VerifyCache re-runs fresh stages and fails with ErrNondeterministic if
	// any output differs from the stored one.
	VerifyCache bool
	// Settings, opaque to the runner, are kept in the workdir while the run
	// lasts (see LiveRun), for status to judge the stages by.
	Settings json.RawMessage
}

func (r *Runner) index(name string) (int, error) {
	for i, s := range r.Stages {
		if s.Name() == name {
			return i, nil
		}
	}
	names := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		names[i] = s.Name()
	}
	return 0, fmt.Errorf("unknown stage %q: want all or one of %s", name, strings.Join(names, ", "))
}

// key computes a stage's key from its current input artifacts.
func (r *Runner) key(s Stage, inputs map[string]*artifacts.Artifact) (artifacts.Key, []string) {
	h := NewKeyHash(s.Name(), s.Version())
	for _, in := range s.Inputs() {
		a := inputs[in]
		if a == nil {
			panic(fmt.Sprintf("pipeline: stage %s reads %s, which is not an earlier stage", s.Name(), in))
		}
		h.Input(in, a.ID)
	}
	s.WriteKey(h)
	lines := h.Lines()
	if r.KeyDebug != nil {
		for _, l := range lines {
			fmt.Fprintf(r.KeyDebug, "HASH[%s]: %q\n", s.Name(), l)
		}
	}
	return h.Sum(), lines
}

// readOnly reports whether err says the workdir cannot be written.
func readOnly(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// checkUpToDate serves a run in a workdir that cannot be written (locking
// it failed with lockErr): with every stage up to stage last fresh there is
// nothing to write, and the run succeeds as it would have; otherwise it
// fails, naming the first stage that would run.
func (r *Runner) checkUpToDate(last int, lockErr error) error {
	needed := r.needed(last)
	sts := r.Status()
	for _, st := range sts[:last+1] {
		if needed[st.Stage] && st.State != Fresh {
			return fmt.Errorf("%w: %s cannot be written (%v), and %s would run (%s): give --workdir a writable folder (a copy of this one keeps its results)",
				ErrReadOnly, r.Store.Dir(), lockErr, st.Stage, st.Reason)
		}
	}
	for _, st := range sts[:last+1] {
		if needed[st.Stage] {
			r.Report.StageSkip(st.Stage, st.Artifact, st.Reason+"; the workdir is read-only")
		}
	}
	return nil
}

// Status reports every stage's state without running or changing anything.
// It does not need the workdir lock; a run in progress may make it outdated.
func (r *Runner) Status() []Status {
	live, running := ReadLiveRun(r.Store.Dir())
	out := make([]Status, len(r.Stages))
	current := map[string]*artifacts.Artifact{} // verified and fresh, by stage
	pending := map[string]bool{}                // would run
	for i, s := range r.Stages {
		st := Status{Stage: s.Name()}
		a, err := r.Store.Get(s.Name())
		var key artifacts.Key
		var lines []string
		waiting := ""
		for _, in := range s.Inputs() {
			if pending[in] {
				waiting = in
				break
			}
		}
		if waiting == "" {
			key, lines = r.key(s, current)
		}
		st.State, st.Reason = judge(a, err, key, lines, waiting)
		if err == nil {
			st.Artifact = a
		}
		if st.State != Fresh || running && live.Stage == s.Name() {
			r.inProgress(&st, s, key, live, running, len(pending) == 0)
		} else if p, ok := ReadResumePoint(filepath.Join(r.Store.Dir(), "state", s.Name())); ok {
			st.Reason += fmt.Sprintf("; a rerun of it was interrupted at %s (--redo resumes it; the next run that skips it removes it)", p)
		}
		if st.State == Fresh {
			current[s.Name()] = a
		} else {
			pending[s.Name()] = true
		}
		out[i] = st
	}
	return out
}

// inProgress marks as running the stage a live run says it is at (a
// forced stage may be fresh), or, when the run has not said, the first
// stage it has to do; and as interrupted a stage whose checkpoint, made
// under its key, waits to be resumed.
func (r *Runner) inProgress(st *Status, s Stage, key artifacts.Key, live LiveRun, running, first bool) {
	p, ok := ReadResumePoint(filepath.Join(r.Store.Dir(), "state", s.Name()))
	resumable := ok && p.Key == key
	if running && (live.Stage == s.Name() || live.Stage == "" && first) {
		st.State, st.Reason = Running, fmt.Sprintf("in process %d", live.PID)
		if !live.Since.IsZero() {
			st.Reason += fmt.Sprintf(" for %s", time.Since(live.Since).Round(time.Second))
		}
		if resumable {
			st.Reason += "; last checkpoint at " + p.String()
		}
		return
	}
	if resumable {
		st.State, st.Reason = Interrupted, fmt.Sprintf("checkpoint at %s; the next run resumes from it", p)
	}
}

// judge decides whether a stage's stored artifact (a, or the error getting
// it) is fresh: whether it was made under key (whose lines explain a
// difference), unless waiting names an input that will be rebuilt first.
func judge(a *artifacts.Artifact, getErr error, key artifacts.Key, lines []string, waiting string) (State, string) {
	var ce *artifacts.CorruptError
	switch {
	case errors.Is(getErr, artifacts.ErrNotFound):
		return Missing, "never run"
	case errors.As(getErr, &ce):
		return Corrupt, fmt.Sprintf("%s: %s; will rebuild", ce.File, ce.Reason)
	case getErr != nil:
		return Corrupt, getErr.Error()
	}
	if waiting != "" {
		return Stale, fmt.Sprintf("input %s will be rebuilt first", waiting)
	}
	if a.Key != key {
		return Stale, explainKeyChange(a.KeyLines, lines)
	}
	return Fresh, fmt.Sprintf("up to date (%s %s, made %s)", a.Kind, a.ID.Short(), a.Created.Local().Format("2006-01-02 15:04"))
}

// Run brings opts.Target up to date: it runs every stage the target depends
// on that is not fresh, and the stages opts forces. It holds the workdir lock
// for the whole run and returns an error wrapping ErrLocked if another run
// holds it. Cancelling ctx stops the running stage; no partial artifact is
// left behind.
func (r *Runner) Run(ctx context.Context, opts Options) error {
	last := len(r.Stages) - 1
	if opts.Target != "all" {
		i, err := r.index(opts.Target)
		if err != nil {
			return err
		}
		last = i
	}
	forceFrom := last + 1
	if opts.From != "" {
		i, err := r.index(opts.From)
		if err != nil {
			return err
		}
		if i > last {
			return fmt.Errorf("--from %s comes after the target %s", opts.From, opts.Target)
		}
		forceFrom = i
	}

	lock, err := filelock.TryLock(filepath.Join(r.Store.Dir(), ".lock"))
	var held *filelock.HeldError
	if errors.As(err, &held) {
		return fmt.Errorf("%w: %s is being used by another pipeline run (pid %d); wait for it to finish or stop it", ErrLocked, r.Store.Dir(), held.PID)
	}
	if readOnly(err) && (forceFrom <= last || opts.VerifyCache) {
		return fmt.Errorf("%w: %s cannot be written (%v), and stages forced to run again would write it: give --workdir a writable folder (a copy of this one keeps its results)", ErrReadOnly, r.Store.Dir(), err)
	}
	if readOnly(err) {
		return r.checkUpToDate(last, err)
	}
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if lock.Stale != 0 {
		r.Report.Note(fmt.Sprintf("taking over the workdir from process %d, which stopped without finishing", lock.Stale))
	}
	live := LiveRun{PID: os.Getpid(), Target: opts.Target, Settings: opts.Settings}
	r.say(live)
	defer os.Remove(filepath.Join(r.Store.Dir(), liveFile))
	did, err := r.Store.Recover()
	for _, d := range did {
		r.Report.Note(d)
	}
	if err != nil {
		return err
	}

	needed := r.needed(last)
	current := map[string]*artifacts.Artifact{}
	for i, s := range r.Stages[:last+1] {
		if !needed[s.Name()] {
			continue
		}
		// Every input is current by now: stages run in order.
		inputs := map[string]*artifacts.Artifact{}
		for _, in := range s.Inputs() {
			inputs[in] = current[in]
		}
		key, lines := r.key(s, inputs)
		a, getErr := r.Store.Get(s.Name())
		state, reason := judge(a, getErr, key, lines, "")
		forced := i >= forceFrom || opts.VerifyCache
		if state == Fresh && !forced {
			r.Report.StageSkip(s.Name(), a, reason)
			r.dropStaleState(s)
			current[s.Name()] = a
			continue
		}
		if state == Fresh {
			reason = "forced"
			if opts.VerifyCache {
				reason = "re-run to verify the cache"
			}
		}
		live.Stage, live.Since = s.Name(), time.Now()
		r.say(live)
		out, err := r.runStage(ctx, s, reason, inputs, key, lines)
		if err != nil {
			return &StageError{Stage: s.Name(), Err: err}
		}
		if opts.VerifyCache && state == Fresh && out.ID != a.ID {
			return fmt.Errorf("%w: %s made %s, the cache holds %s for the same key", ErrNondeterministic, s.Name(), out.ID.Short(), a.ID.Short())
		}
		// Later stages see whether this output changed through their keys.
		current[s.Name()] = out
	}
	return nil
}

// dropStaleState removes what an interrupted forced rerun (--from, --redo)
// of a stage that is fresh left behind: a run that keeps the stored
// artifact has no use for it, and it would be kept forever.
func (r *Runner) dropStaleState(s Stage) {
	dir := filepath.Join(r.Store.Dir(), "state", s.Name())
	p, ok := ReadResumePoint(dir)
	if !ok {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		r.Report.Warn(s.Name(), fmt.Sprintf("could not remove %s: %v", dir, err))
		return
	}
	os.Remove(filepath.Dir(dir))
	r.Report.Note(fmt.Sprintf("%s: removed the checkpoint of an interrupted rerun (%s): the stored output is up to date", s.Name(), p))
}

// A StageError is a run's failure in one stage: what the stage said, or
// what stopped its output from being stored.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// needed returns the stages that stage last depends on, itself included.
func (r *Runner) needed(last int) map[string]bool {
	need := map[string]bool{r.Stages[last].Name(): true}
	for i := last; i >= 0; i-- {
		if s := r.Stages[i]; need[s.Name()] {
			for _, in := range s.Inputs() {
				need[in] = true
			}
		}
	}
	return need
}

func (r *Runner) runStage(ctx context.Context, s Stage, reason string, inputs map[string]*artifacts.Artifact, key artifacts.Key, lines []string) (*artifacts.Artifact, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.Report.StageStart(s.Name(), reason)
	start := time.Now()
	stateDir := filepath.Join(r.Store.Dir(), "state", s.Name())
	out, err := s.Run(ctx, &Env{Stage: s.Name(), Inputs: inputs, Report: r.Report, Key: key, StateDir: stateDir, LogDir: filepath.Join(r.Store.Dir(), "logs")})
	if c, ok := out.(io.Closer); ok {
		defer c.Close()
	}
	failed := err // with an output too: a result that is a failure, kept and then returned
	if err != nil && out == nil {
		// A stage's error after cancellation is a consequence of it,
		// however the stage worded it.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("interrupted: %w", ctxErr)
		}
		return nil, err
	}
	// The key again: it may name what the run itself established (the
	// sha256 of an archive first known by its md5), and the manifest must
	// hold what the next status computes.
	key, lines = r.key(s, inputs)
	info := out.Info()
	info.Stage, info.Key, info.KeyLines = s.Name(), key, slices.Clone(lines)
	w, err := r.Store.Create(s.Name(), info)
	if err != nil {
		return nil, err
	}
	if err := out.Write(w); err != nil {
		w.Abort()
		return nil, fmt.Errorf("save output: %w", err)
	}
	// The last chance to stop without replacing the previous artifact.
	if err := ctx.Err(); err != nil {
		w.Abort()
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	a, err := w.Commit()
	if err != nil {
		return nil, fmt.Errorf("save output: %w", err)
	}
	// The output is durable: resumable state has served its purpose.
	if err := os.RemoveAll(stateDir); err != nil {
		r.Report.Warn(s.Name(), fmt.Sprintf("could not remove %s: %v", stateDir, err))
	}
	os.Remove(filepath.Dir(stateDir)) // only if no other stage keeps state there
	r.Report.StageDone(s.Name(), a, out.Summary(), time.Since(start))
	if failed != nil {
		return a, failed
	}
	return a, nil
}
