package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/condensenet/condensenet/artifacts"
)

// toy is a stage whose output is its config plus its inputs' outputs.
type toy struct {
	name   string
	inputs []string
	config map[string]string
	runs   int
	// vary makes each run's output differ, like training on a GPU.
	vary bool
	// run, if set, replaces the normal work (to block, fail or crash).
	run func(ctx context.Context) error
	// verdict, if set, is returned with the output: a result that fails.
	verdict error
}

func (s *toy) Name() string     { return s.name }
func (s *toy) Version() int     { return 1 }
func (s *toy) Inputs() []string { return s.inputs }
func (s *toy) WriteKey(w io.Writer) {
	for k, v := range s.config { // map order is random: the KeyHash sorts
		fmt.Fprintf(w, "%s %s\n", k, v)
	}
}

func (s *toy) Run(ctx context.Context, env *Env) (Output, error) {
	s.runs++
	if s.run != nil {
		if err := s.run(ctx); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	for _, in := range s.inputs {
		data, err := env.Inputs[in].ReadFile("out")
		if err != nil {
			return nil, err
		}
		b.Write(data)
	}
	keys := make([]string, 0, len(s.config))
	for k := range s.config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(&b, "[%s", s.name)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, s.config[k])
	}
	if s.vary {
		fmt.Fprintf(&b, " run=%d", s.runs)
	}
	b.WriteString("]")
	return toyOutput(b.String()), s.verdict
}

type toyOutput string

func (o toyOutput) Info() artifacts.Info { return artifacts.Info{Kind: "toy", Schema: 1} }
func (o toyOutput) Summary() string      { return string(o) }
func (o toyOutput) Write(w *artifacts.Writer) error {
	return w.WriteFile("out", []byte(o))
}

// events records what the runner reported.
type events struct {
	discard
	log []string
}

func (e *events) Note(msg string) { e.log = append(e.log, "note "+msg) }
func (e *events) StageSkip(s string, _ *artifacts.Artifact, _ string) {
	e.log = append(e.log, "skip "+s)
}
func (e *events) StageStart(s, _ string) { e.log = append(e.log, "start "+s) }
func (e *events) StageDone(s string, _ *artifacts.Artifact, _ string, _ time.Duration) {
	e.log = append(e.log, "done "+s)
}

func (e *events) take() string {
	s := strings.Join(e.log, ", ")
	e.log = nil
	return s
}

type fixture struct {
	r       *Runner
	ev      *events
	a, b, c *toy
}

func newFixture(t *testing.T, dir string) *fixture {
	t.Helper()
	store, err := artifacts.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		ev: &events{},
		a:  &toy{name: "a", config: map[string]string{"x": "1"}},
		b:  &toy{name: "b", inputs: []string{"a"}, config: map[string]string{"y": "1", "z": "1"}},
		c:  &toy{name: "c", inputs: []string{"b"}},
	}
	f.r = &Runner{Store: store, Stages: []Stage{f.a, f.b, f.c}, Report: f.ev}
	return f
}

func (f *fixture) run(t *testing.T, opts Options) {
	t.Helper()
	if err := f.r.Run(context.Background(), opts); err != nil {
		t.Fatalf("Run(%+v): %v", opts, err)
	}
}

func (f *fixture) states() string {
	var s []string
	for _, st := range f.r.Status() {
		s = append(s, fmt.Sprintf("%s=%s", st.Stage, st.State))
	}
	return strings.Join(s, " ")
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func TestSkipWhenFresh(t *testing.T) {
	f := newFixture(t, t.TempDir())
	expect(t, "status before", f.states(), "a=missing b=missing c=missing")
	f.run(t, Options{Target: "all"})
	expect(t, "first run", f.ev.take(), "start a, done a, start b, done b, start c, done c")
	f.run(t, Options{Target: "all"})
	expect(t, "second run", f.ev.take(), "skip a, skip b, skip c")
	expect(t, "status after", f.states(), "a=fresh b=fresh c=fresh")
}

// A stage that returns its output with an error has the output stored and
// the run stopped with the error; the output then counts as fresh.
func TestFailedResultIsKept(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.b.verdict = ErrVerifyFailed
	err := f.r.Run(context.Background(), Options{Target: "all"})
	if !errors.Is(err, ErrVerifyFailed) || !strings.HasPrefix(err.Error(), "b: ") {
		t.Fatalf("Run = %v, want b's ErrVerifyFailed", err)
	}
	expect(t, "run", f.ev.take(), "start a, done a, start b, done b")
	expect(t, "status", f.states(), "a=fresh b=fresh c=missing")
}

func TestConfigChangeRerunsDownstream(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.run(t, Options{Target: "all"})
	f.ev.take()
	f.b.config["y"] = "2"
	st := f.r.Status()
	expect(t, "status", f.states(), "a=fresh b=stale c=stale")
	expect(t, "b's reason", st[1].Reason, "y changed: 1 → 2")
	expect(t, "c's reason", st[2].Reason, "input b will be rebuilt first")
	f.run(t, Options{Target: "all"})
	expect(t, "run", f.ev.take(), "skip a, start b, done b, start c, done c")
	// Adding a field is a change too, and says so.
	f.a.config["w"] = "7"
	expect(t, "a's reason", f.r.Status()[0].Reason, "w added (7)")
}

func TestFrom(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.run(t, Options{Target: "all"})
	f.ev.take()
	f.run(t, Options{Target: "all", From: "b"})
	expect(t, "--from b", f.ev.take(), "skip a, start b, done b, start c, done c")
	f.run(t, Options{Target: "b", From: "a"})
	expect(t, "run b --from a", f.ev.take(), "start a, done a, start b, done b")
	if err := f.r.Run(context.Background(), Options{Target: "a", From: "c"}); err == nil {
		t.Error("--from after the target was accepted")
	}
	if err := f.r.Run(context.Background(), Options{Target: "nope"}); err == nil || !strings.Contains(err.Error(), "a, b, c") {
		t.Errorf("unknown target: %v, want an error listing the stages", err)
	}
}

func TestForcedStageStalesDownstream(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.b.vary = true
	f.run(t, Options{Target: "all"})
	f.ev.take()
	f.run(t, Options{Target: "b"})
	expect(t, "run b when fresh", f.ev.take(), "skip a, skip b")
	f.run(t, Options{Target: "b", From: "b"})
	expect(t, "run b --from b", f.ev.take(), "skip a, start b, done b")
	st := f.r.Status()
	expect(t, "status", f.states(), "a=fresh b=fresh c=stale")
	if !strings.HasPrefix(st[2].Reason, "input b changed: ") {
		t.Errorf("c's reason = %q, want input b changed", st[2].Reason)
	}
	// A forced stage that reproduces its output exactly leaves later stages fresh.
	f.run(t, Options{Target: "all"})
	f.ev.take()
	f.run(t, Options{Target: "a", From: "a"})
	expect(t, "run a --from a", f.ev.take(), "start a, done a")
	expect(t, "status after identical rerun", f.states(), "a=fresh b=fresh c=fresh")
}

func TestRunOnlyNeededStages(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.run(t, Options{Target: "b"})
	expect(t, "run b on an empty workdir", f.ev.take(), "start a, done a, start b, done b")
	expect(t, "status", f.states(), "a=fresh b=fresh c=missing")
}

func TestFailedStageLeavesNoArtifact(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	f.run(t, Options{Target: "all"})
	before, _ := f.r.Store.Get("b")
	f.b.config["y"] = "2"
	f.b.run = func(context.Context) error { return errors.New("boom") }
	err := f.r.Run(context.Background(), Options{Target: "all"})
	if err == nil || !strings.Contains(err.Error(), "b: boom") {
		t.Fatalf("Run = %v, want b: boom", err)
	}
	after, err := f.r.Store.Get("b")
	if err != nil || after.ID != before.ID {
		t.Errorf("b after a failed re-run = %v, %v; want the previous artifact", after, err)
	}
	assertNoScratch(t, dir)
}

func TestCancelLeavesNoArtifact(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	f.b.run = func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	err := f.r.Run(ctx, Options{Target: "all"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	expect(t, "status", f.states(), "a=fresh b=missing c=missing")
	assertNoScratch(t, dir)
}

func assertNoScratch(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".old-") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestVerifyCache(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.run(t, Options{Target: "all"})
	f.run(t, Options{Target: "all", VerifyCache: true})
	f.b.vary = true
	err := f.r.Run(context.Background(), Options{Target: "all", VerifyCache: true})
	if !errors.Is(err, ErrNondeterministic) || !strings.Contains(err.Error(), "b made") {
		t.Errorf("Run with a varying stage = %v, want ErrNondeterministic naming b", err)
	}
}

func TestCorruptArtifactRebuilt(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.run(t, Options{Target: "all"})
	f.ev.take()
	os.WriteFile(filepath.Join(f.r.Store.Path("b"), "out"), []byte("garbage"), 0o644)
	st := f.r.Status()
	expect(t, "status", f.states(), "a=fresh b=corrupt c=stale")
	if !strings.HasPrefix(st[1].Reason, "out: size") {
		t.Errorf("b's reason = %q, want it to name the file", st[1].Reason)
	}
	f.run(t, Options{Target: "all"})
	// b's rebuilt output equals the original, so c stays valid.
	expect(t, "run", f.ev.take(), "skip a, start b, done b, skip c")
}

func TestKeyPinned(t *testing.T) {
	// Changing how keys are built must be a deliberate edit of this value
	// (and usually of FormatVersion).
	h := NewKeyHash("train", 3)
	var id artifacts.ID
	id[0] = 0xab
	h.Input("fetch", id)
	fmt.Fprintf(h, "lr 0.1\nepochs 300\n")
	const want = "a4d884f1716ce276dc9a66fb93465b8bac8a31750f7d59f7cc9d1c570ae201ce"
	if got := h.Sum().String(); got != want {
		t.Errorf("key = %s, want %s\nlines: %q", got, want, h.Lines())
	}
}

func TestLockHeldByLiveProcess(t *testing.T) {
	if dir := os.Getenv("PIPELINE_TEST_HOLD"); dir != "" {
		holdWorkdir(dir)
		return
	}
	dir := t.TempDir()
	child := startHolder(t, dir)
	f := newFixture(t, dir)
	err := f.r.Run(context.Background(), Options{Target: "all"})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", child.Process.Pid)) {
		t.Fatalf("Run while another process runs = %v, want ErrLocked naming pid %d", err, child.Process.Pid)
	}
	if f.a.runs != 0 {
		t.Error("a stage ran without the lock")
	}
	// kill -9 the holder mid-stage: the next run takes over, cleans up the
	// half-written artifact and finishes.
	child.Process.Kill()
	child.Wait()
	f.run(t, Options{Target: "all"})
	log := f.ev.take()
	for _, want := range []string{fmt.Sprintf("note taking over the workdir from process %d", child.Process.Pid), "note removed unfinished .tmp-a-", "done c"} {
		if !strings.Contains(log, want) {
			t.Errorf("events after takeover: %s\nwant %q", log, want)
		}
	}
	assertNoScratch(t, dir)
}

// startHolder runs this test binary as a pipeline that stops forever inside
// stage a while writing its artifact, and waits until it gets there.
func startHolder(t *testing.T, dir string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHeldByLiveProcess$")
	cmd.Env = append(os.Environ(), "PIPELINE_TEST_HOLD="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "writing\n" {
		t.Fatalf("holder process: %q %v", line, err)
	}
	return cmd
}

func holdWorkdir(dir string) {
	store, _ := artifacts.Open(dir)
	r := &Runner{Store: store, Stages: []Stage{holdingStage{&toy{name: "a"}}}, Report: Discard}
	r.Run(context.Background(), Options{Target: "all"})
}

// holdingStage writes half its artifact, says so and never finishes.
type holdingStage struct{ *toy }

func (holdingStage) Run(context.Context, *Env) (Output, error) { return blockingOutput{}, nil }

type blockingOutput struct{}

func (blockingOutput) Info() artifacts.Info { return artifacts.Info{Kind: "toy", Schema: 1} }
func (blockingOutput) Summary() string      { return "" }
func (blockingOutput) Write(w *artifacts.Writer) error {
	w.WriteFile("out", []byte("half"))
	fmt.Println("writing")
	// Not select{}: with no goroutine runnable and no timer pending (the
	// child has no test timeout), the runtime ends the process as
	// deadlocked, releasing the lock before the parent tries it, now and
	// then: the test failed about once in 30 runs, more under load.
	time.Sleep(time.Hour)
	return nil
}

// While a run works, status shows the stage it is really at (a forced
// stage too, which is fresh beforehand), judged by the run's own settings,
// which it keeps in the workdir until it ends; the stages before it are
// fresh and those after wait for it.
func TestStatusDuringRun(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	f.run(t, Options{Target: "all"})
	inside, release := make(chan struct{}), make(chan struct{})
	f.b.run = func(ctx context.Context) error {
		close(inside)
		<-release
		return nil
	}
	done := make(chan error)
	go func() {
		done <- f.r.Run(context.Background(), Options{Target: "all", From: "b", Settings: []byte(`{"epochs":7}`)})
	}()
	<-inside
	expect(t, "status while b runs", f.states(), "a=fresh b=running c=stale")
	live, running := ReadLiveRun(dir)
	if !running || live.Stage != "b" || live.PID != os.Getpid() || string(live.Settings) != `{"epochs":7}` {
		t.Errorf("ReadLiveRun = %+v, %v", live, running)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, running := ReadLiveRun(dir); running {
		t.Error("a run is still said to be in progress after it ended")
	}
	if _, err := os.Stat(filepath.Join(dir, liveFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after the run: %v", liveFile, err)
	}
	expect(t, "status after", f.states(), "a=fresh b=fresh c=fresh")
}

// A forced rerun interrupted after a checkpoint leaves a trace in status,
// and the next run that keeps the stored output removes the checkpoint.
func TestInterruptedRerunOfFreshStage(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	f.run(t, Options{Target: "all"})
	ctx, cancel := context.WithCancel(context.Background())
	f.b.run = func(context.Context) error {
		stateDir := filepath.Join(dir, "state", "b")
		os.MkdirAll(stateDir, 0o755)
		if err := WriteResumePoint(stateDir, ResumePoint{Key: f.r.Status()[1].Artifact.Key, Done: 3, Total: 9, Unit: "iterations"}); err != nil {
			return err
		}
		cancel()
		return ctx.Err()
	}
	if err := f.r.Run(ctx, Options{Target: "all", From: "b"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted rerun: %v", err)
	}
	f.b.run = nil
	if st := f.r.Status()[1]; st.State != Fresh || !strings.Contains(st.Reason, "a rerun of it was interrupted at iterations 3 of 9") {
		t.Errorf("status of b after an interrupted rerun: %s, %s", st.State, st.Reason)
	}
	f.ev.take()
	f.run(t, Options{Target: "all"})
	if log := f.ev.take(); !strings.Contains(log, "note b: removed the checkpoint of an interrupted rerun") {
		t.Errorf("the next run: %s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkpoint is still there: %v", err)
	}
	if st := f.r.Status()[1]; strings.Contains(st.Reason, "interrupted") {
		t.Errorf("status of b after the checkpoint went: %s", st.Reason)
	}
}
