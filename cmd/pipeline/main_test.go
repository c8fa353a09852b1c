package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/pipeline"
)

// TestMain lets a test run this binary as the real command (see command).
func TestMain(m *testing.M) {
	if os.Getenv("PIPELINE_TEST_MAIN") == "1" {
		os.Args = append([]string{"pipeline"}, strings.Split(os.Getenv("PIPELINE_TEST_ARGS"), argSep)...)
		main()
	}
	os.Exit(m.Run())
}

// execute runs the CLI in-process, as main does, and returns its output and
// exit status.
func execute(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := newGlobals(&out, &errb)
	cmd := newRootCommand(g)
	cmd.SetArgs(args)
	code = exitCode(g, cmd.ExecuteContext(context.Background()), nil)
	return out.String(), errb.String(), code
}

// smallSynthetic is a config file for a fast synthetic dataset and a
// network and schedule that train in a second.
func smallSynthetic(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "small.json")
	os.WriteFile(p, []byte(`{"data": {"dataset": "synthetic", "synthetic_train": 100, "synthetic_test": 20},
		"model": {"stages": [1, 1, 1], "growth": [4, 4, 4]}, "train": {"epochs": 2, "batch": 16}, "verify": {"tolerance": 100}}`), 0o644)
	return p
}

func TestRunFetchThenNothingToDo(t *testing.T) {
	w := t.TempDir()
	cfg := smallSynthetic(t)
	out, errs, code := execute(t, "run", "fetch", "--workdir", w, "--config", cfg)
	if code != 0 || !strings.Contains(out, "fetch    done in") || !strings.Contains(out, "synthetic: 100 train, 20 test") {
		t.Fatalf("first run: code %d\n%s%s", code, out, errs)
	}
	out, _, code = execute(t, "run", "fetch", "--workdir", w, "--config", cfg)
	if code != 0 || !strings.Contains(out, "fetch    skipped: up to date") || !strings.Contains(out, "nothing to do") {
		t.Errorf("second run: code %d\n%s", code, out)
	}
	out, _, code = execute(t, "run", "fetch", "--workdir", w, "--config", cfg, "--redo")
	if code != 0 || !strings.Contains(out, "fetch    running: forced") {
		t.Errorf("--redo: code %d\n%s", code, out)
	}
	out, _, _ = execute(t, "status", "--workdir", w, "--config", cfg)
	if !strings.Contains(out, "fetch     fresh") || !strings.Contains(out, "train     missing  -         never run") {
		t.Errorf("status:\n%s", out)
	}
	out, _, _ = execute(t, "status", "--workdir", w, "--config", cfg, "--seed", "9")
	if !strings.Contains(out, "fetch     stale") || !strings.Contains(out, "seed changed: 0 → 9") {
		t.Errorf("status after changing the seed:\n%s", out)
	}
}

// A workdir remembers the settings of its last run: later commands in it
// need no flags, say so, and a flag or --preset still overrides them.
func TestWorkdirRemembersSettings(t *testing.T) {
	w := t.TempDir()
	out, errs, code := subprocess(t, "run", "all", "--workdir", w, "--preset", "quick", "--config", smallSynthetic(t))
	if code != 0 {
		t.Fatalf("run all: code %d\n%s%s", code, out, errs)
	}
	// Each epoch's line says what it counts and the train top-1; the
	// evaluation's, the test top-1.
	for _, want := range []string{"train: epoch 2/2: 6 batches in ", ", train top-1 ", "images/s", ": run ETA ",
		"note: train: 2 epochs × 6 batches of 16 = 192 images; at ", "train: evaluate: 2 batches in ", ": test top-1 ", "on 20 images",
		"note: train: the training set has 100 images, fewer than train.images_per_epoch (10000): each epoch is the whole set, reshuffled, in 6 batches of 16 (the last 4 images of each shuffled epoch are left out"} {
		if !strings.Contains(errs, want) {
			t.Errorf("the console lacks %q:\n%s", want, errs)
		}
	}
	out, _, _ = subprocess(t, "status", "--workdir", w)
	if !strings.Contains(out, "preset quick (the settings of its last run: preset quick, synthetic, 2 epochs") ||
		strings.Count(out, " fresh ") != 5 {
		t.Errorf("status right after the run:\n%s", out)
	}
	out, errs, code = subprocess(t, "run", "verify", "--workdir", w)
	if code != 0 || !strings.Contains(errs, "settings: as this workdir was last run") || !strings.Contains(out, "nothing to do") {
		t.Errorf("run verify without flags: code %d\n%s%s", code, out, errs)
	}
	// A flag changes the remembered settings for what follows.
	if out, errs, code = subprocess(t, "run", "fetch", "--workdir", w, "--seed", "5"); code != 0 {
		t.Fatalf("run fetch --seed 5: code %d\n%s%s", code, out, errs)
	}
	out, _, _ = subprocess(t, "status", "--workdir", w)
	if !strings.Contains(out, "fetch     fresh") || !strings.Contains(out, "train     stale") {
		t.Errorf("status after --seed 5:\n%s", out)
	}
	// The report marks the sections that are now out of date.
	if _, errs, code := subprocess(t, "report", "--workdir", w); code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	page, _ := os.ReadFile(filepath.Join(w, "report.html"))
	if n := strings.Count(string(page), `<p class="stale">Out of date (stale: `); n != 3 {
		t.Errorf("report.html marks %d sections out of date, want train, verify and export", n)
	}
	// --preset starts from the preset.
	out, _, _ = subprocess(t, "status", "--workdir", w, "--preset", "quick")
	if strings.Contains(out, "last run") || !strings.Contains(out, "data.dataset changed: synthetic → cifar10") {
		t.Errorf("status --preset quick:\n%s", out)
	}
	// A damaged settings file is a usage error naming it, not a silent reset.
	os.WriteFile(filepath.Join(w, settingsFile), []byte(`{"preset": "quick", "config": {"seed": "x"}}`), 0o644)
	_, errs, code = subprocess(t, "status", "--workdir", w)
	if code != exitUsage || !strings.Contains(errs, settingsFile) || !strings.Contains(errs, "--preset") {
		t.Errorf("damaged settings: code %d, %s", code, errs)
	}
}

func TestStatusJSON(t *testing.T) {
	w := t.TempDir()
	cfg := smallSynthetic(t)
	execute(t, "run", "fetch", "--workdir", w, "--config", cfg)
	out, _, code := execute(t, "status", "--workdir", w, "--config", cfg, "--json")
	var st struct {
		MessageType string `json:"message_type"`
		Stages      []struct{ Stage, State, Artifact, Kind string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: %v, code %d\n%s", err, code, out)
	}
	if st.MessageType != "status" || len(st.Stages) != 5 || st.Stages[0].State != "fresh" || st.Stages[0].Kind != "dataset" ||
		len(st.Stages[0].Artifact) != 64 || st.Stages[1].State != "missing" {
		t.Errorf("status --json = %+v", st)
	}
}

func TestRunJSON(t *testing.T) {
	w := t.TempDir()
	out, _, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "--json")
	var types []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if mt := m["message_type"].(string); strings.HasPrefix(mt, "stage_") || mt == "exit_error" || mt == "summary" {
			types = append(types, mt)
		}
	}
	want := "stage_start stage_done stage_start stage_done stage_start stage_done stage_start stage_done stage_start stage_done summary"
	if got := strings.Join(types, " "); got != want || code != 0 {
		t.Errorf("message types %q, code %d; want %q, 0\n%s", got, code, want, out)
	}
	// The exported file describes itself; other files are refused.
	out, errs, code := execute(t, "inspect", filepath.Join(w, "export", "model.onnx"))
	for _, want := range []string{"opset 13", "input  input [N 3 32 32]", "output logits [N 10]", "Gather", "dataset: synthetic"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect: code %d, missing %q\n%s%s", code, want, out, errs)
		}
	}
	_, errs, code = execute(t, "inspect", filepath.Join(w, "export", "parity.json"))
	if code != exitError || !strings.Contains(errs, "not an ONNX protobuf") {
		t.Errorf("inspect parity.json: code %d, %s", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"data": {"dataset": "svhn"}}`), 0o644)
	big := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(big, []byte(`{"data": {"dataset": "synthetic", "synthetic_train": 640}, "train": {"batch": 4096}}`), 0o644)
	typo := filepath.Join(t.TempDir(), "typo.json")
	os.WriteFile(typo, []byte(`{"sed": 1}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "run needs what to run: one of all, fetch, train, condense, verify, export"},
		{[]string{"run", "fetchh"}, `unknown stage "fetchh": want one of all, fetch, train`},
		{[]string{"run", "fetch", "train"}, "got 2 arguments (fetch train)"},
		{[]string{"rnu", "all"}, `unknown command "rnu"`},
		{[]string{"status", "--seed", "-1"}, "--seed -1: want a whole number, 0 or more"},
		{[]string{"bench", "train", "--batch", "x"}, "--batch x: want a whole number"},
		{[]string{"run", "all", "--from", "nope"}, `--from "nope"`},
		{[]string{"run", "fetch", "--from", "train"}, "--from train comes after the target fetch"},
		{[]string{"run", "all", "--redo", "--from", "train"}, "give one"},
		{[]string{"run", "all", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "--preset", "huge"}, `unknown preset "huge"`},
		{[]string{"status", "--config", bad}, `data.dataset = "svhn": want one of cifar10, cifar100, synthetic`},
		{[]string{"status", "--config", typo}, `unknown field "sed"`},
		{[]string{"run", "train", "--config", big}, "train.batch = 4096: want at most data.synthetic_train (640)"},
		{[]string{"status", "--dataset", "synthetic", "--data-url", "x"}, "the synthetic dataset is generated"},
		{[]string{"status", "--data-sha256", "123"}, `data.sha256 = "123": want 64 hex digits`},
	} {
		_, errs, code := subprocess(t, append(tc.args, "--workdir", t.TempDir())...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tc.args, code, errs, exitUsage, tc.want)
		}
	}
}

// command starts this test binary as the pipeline command with args.
func command(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PIPELINE_TEST_MAIN=1", "PIPELINE_TEST_ARGS="+strings.Join(args, argSep))
	return cmd
}

// argSep separates the arguments passed to the child (ASCII's unit
// separator: no argument holds it).
const argSep = "\x1f"

// subprocess runs the pipeline command in a child process, as a user
// would, and returns its output and exit status.
func subprocess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runChild(t, command(t, args...), args)
}

// runChild runs cmd, the pipeline with args, and returns its output and
// exit status.
func runChild(t *testing.T, cmd *exec.Cmd, args []string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("pipeline %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestInterruptDuringDownload(t *testing.T) {
	for _, sig := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, exitInterrupted}, {syscall.SIGTERM, exitTerminated}} {
		started := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000000")
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			started <- struct{}{}
			<-r.Context().Done() // a slow server: the rest never comes
		}))
		w := t.TempDir()
		cmd := command(t, "run", "fetch", "--workdir", w, "--cache-dir", t.TempDir(),
			"--data-url", srv.URL+"/c.tar.gz", "--data-md5", strings.Repeat("0", 32))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("download never started")
		}
		cmd.Process.Signal(sig.sig)
		cmd.Wait()
		srv.Close()
		if code := cmd.ProcessState.ExitCode(); code != sig.code || !strings.Contains(stderr.String(), "run the same command again") {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d and a hint to resume", sig.sig, code, stderr.String(), sig.code)
		}
		entries, _ := os.ReadDir(w)
		for _, e := range entries {
			if e.Name() != ".lock" && e.Name() != settingsFile {
				t.Errorf("%v: workdir holds %s after the interruption", sig.sig, e.Name())
			}
		}
	}
}

func TestInfoReproducesPaper(t *testing.T) {
	for _, tc := range []struct{ stages, want string }{
		{"8-8-8", "28.6M FLOPs"}, {"14-14-14", "65.8M FLOPs"}, {"20-20-20", "116.7M FLOPs"},
	} {
		out, errs, code := execute(t, "info", "--stages", tc.stages, "--growth", "8-16-32")
		_, condensed, _ := strings.Cut(out, "condensed network:")
		if code != 0 || !strings.HasPrefix(strings.TrimSpace(condensed), tc.want) {
			t.Errorf("info --stages %s: code %d\n%s%s\nwant condensed %s", tc.stages, code, out, errs, tc.want)
		}
	}
	// The official measure_model on the converted ImageNet networks at
	// 224×224 (condensenet.md).
	for _, tc := range []struct{ preset, want string }{
		{"condensenet-imagenet", "529.3M FLOPs    4.77M params"},
		{"condensenet-imagenet-g8", "274.2M FLOPs    2.94M params"},
	} {
		out, errs, code := execute(t, "info", "--preset", tc.preset, "--workdir", t.TempDir())
		_, condensed, _ := strings.Cut(out, "condensed network:")
		if code != 0 || !strings.HasPrefix(strings.TrimSpace(condensed), tc.want) {
			t.Errorf("info --preset %s: code %d\n%s%s\nwant condensed %s", tc.preset, code, out, errs, tc.want)
		}
	}
	out, _, _ := execute(t, "info", "--json")
	var res struct{ Condensed struct{ FLOPs, Params int64 } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || (res.Condensed.FLOPs+50_000)/100_000 != 658 {
		t.Errorf("info --json = %s (%v), want CondenseNet-86's 65.8M FLOPs", out, err)
	}
}

func TestPredict(t *testing.T) {
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "-q"); code != 0 {
		t.Fatalf("run all: %d\n%s", code, errs)
	}
	dir := t.TempDir()
	write := func(name string, width, height int, enc func(f *os.File, img image.Image) error) string {
		img := image.NewRGBA(image.Rect(0, 0, width, height))
		for y := range height {
			for x := range width {
				img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 3), 90, 255})
			}
		}
		p := filepath.Join(dir, name)
		f, _ := os.Create(p)
		if err := enc(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	pngEnc := func(f *os.File, img image.Image) error { return png.Encode(f, img) }
	jpgEnc := func(f *os.File, img image.Image) error { return jpeg.Encode(f, img, nil) }
	odd := write("odd.png", 97, 13, pngEnc)
	tall := write("tall.jpg", 5, 300, jpgEnc)
	out, errs, code := execute(t, "predict", "--workdir", w, "--json", odd, tall)
	preds, _ := predictJSON(t, out)
	if code != 0 || len(preds) != 2 || strings.Count(out, "\n") != 3 {
		t.Fatalf("predict --json: code %d, want a line for the model and one per image\n%s%s", code, out, errs)
	}
	for _, p := range preds {
		var sum float64
		for i, c := range p.Classes {
			sum += c.Probability
			if i > 0 && c.Probability > p.Classes[i-1].Probability {
				t.Errorf("%s: classes not in order of probability", p.Image)
			}
		}
		if len(p.Classes) != 5 || sum > 1+1e-9 || sum <= 0 {
			t.Errorf("%s: %d classes, probabilities summing to %v", p.Image, len(p.Classes), sum)
		}
	}
	// The condensed model on the engine agrees with the ONNX file.
	out2, errs, code := execute(t, "predict", "--workdir", w, "--json", "--model", filepath.Join(w, "condense"), odd, tall)
	preds2, _ := predictJSON(t, out2)
	if code != 0 || len(preds2) != 2 {
		t.Fatalf("predict --model condense: code %d\n%s%s", code, out2, errs)
	}
	for i := range preds2 {
		a, b := preds[i].Classes[0], preds2[i].Classes[0]
		if a.Name != b.Name || math.Abs(a.Probability-b.Probability) > 1e-4 {
			t.Errorf("image %d: ONNX says %+v, the engine %+v", i, a, b)
		}
	}
	// --model takes the workdir, its export folder, its condense folder
	// (with a trailing slash, as completion writes it); another of its
	// folders is refused, saying which to give.
	for _, model := range []string{w, filepath.Join(w, "export"), filepath.Join(w, "condense") + "/"} {
		if out, errs, code := execute(t, "predict", "--workdir", w, "--model", model, odd); code != 0 || !strings.Contains(out, odd) {
			t.Errorf("predict --model %s: code %d\n%s%s", model, code, out, errs)
		}
	}
	if _, errs, code := execute(t, "predict", "--workdir", w, "--model", filepath.Join(w, "train"), odd); code != exitUsage ||
		!strings.Contains(errs, "holds the trained-model artifact, not a model: give the workdir") {
		t.Errorf("predict --model work/train: code %d, %s", code, errs)
	}
	// Damaged and foreign files are refused by name.
	b, _ := os.ReadFile(odd)
	broken := filepath.Join(dir, "broken.png")
	os.WriteFile(broken, b[:len(b)/2], 0o644)
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not an image"), 0o644)
	for p, want := range map[string]string{broken: "not a readable PNG image", text: "not a PNG or JPEG image"} {
		_, errs, code := execute(t, "predict", "--workdir", w, p)
		if code != exitError || !strings.Contains(errs, p) || !strings.Contains(errs, want) {
			t.Errorf("predict %s: code %d, %s", filepath.Base(p), code, errs)
		}
	}
	// One bad file among good ones: the good are classified, the bad named,
	// and the exit status says not all went well.
	out, errs, code = subprocess(t, "predict", "--workdir", w, odd, broken, tall)
	if code != exitError || !strings.Contains(out, odd) || !strings.Contains(out, tall) || strings.Contains(out, broken) ||
		!strings.Contains(errs, broken+": not a readable") || !strings.Contains(errs, "1 of 3 images could not be classified") {
		t.Errorf("predict with one bad file: code %d\n%s%s", code, out, errs)
	}
	// A folder stands for the images in it.
	out, errs, code = subprocess(t, "predict", "--workdir", w, "--json", "--batch", "2", dir)
	preds, fails := predictJSON(t, out)
	if code != exitError || len(preds) != 2 || len(fails) != 1 || fails[0].Image != broken || !strings.Contains(out, "the failure lines say why") {
		t.Errorf("predict FOLDER: code %d\n%s%s", code, out, errs)
	}
	// In batches of any size, the same answers.
	if one, _, _ := subprocess(t, "predict", "--workdir", w, "--json", "--batch", "1", dir); one != out {
		t.Errorf("predict --batch 1:\n%s\n--batch 2:\n%s", one, out)
	}
	for _, args := range [][]string{{"--top", "0"}, {"--top", "-3"}, {"--device", "cuda"}, {"--batch", "0"}} {
		_, errs, code := subprocess(t, append([]string{"predict", "--workdir", w, odd}, args...)...)
		if code != exitUsage {
			t.Errorf("predict %v: code %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
	// A stale export is used, with a warning; a damaged one is refused.
	subprocess(t, "run", "fetch", "--workdir", w, "--seed", "5", "-q")
	_, errs, code = subprocess(t, "predict", "--workdir", w, odd)
	if code != 0 || !strings.Contains(errs, "warning: "+filepath.Join(w, "export")+" is stale for the workdir's settings") {
		t.Errorf("predict with a stale export: code %d, %s", code, errs)
	}
	onnxPath := filepath.Join(w, "export", "model.onnx")
	m, _ := os.ReadFile(onnxPath)
	os.WriteFile(onnxPath, flip(m, len(m)/2), 0o644)
	_, errs, code = subprocess(t, "predict", "--workdir", w, odd)
	if code != exitError || !strings.Contains(errs, "model.onnx") || !strings.Contains(errs, "rebuild") {
		t.Errorf("predict with a damaged export: code %d, %s", code, errs)
	}
	_, errs, code = subprocess(t, "predict", "--workdir", t.TempDir(), odd)
	if code != exitError || !strings.Contains(errs, "run \"pipeline run export\" first") {
		t.Errorf("predict without a model: code %d, %s", code, errs)
	}
}

// A failed verification shows in status (the verify row failed, by how
// much and what to do; export refused) and in predict's message, which
// offers the condensed model instead; the error names the stage once.
func TestVerifyFailureShown(t *testing.T) {
	w := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "strict.json")
	os.WriteFile(cfg, []byte(`{"data": {"dataset": "synthetic", "synthetic_train": 100, "synthetic_test": 20},
		"model": {"stages": [1, 1, 1], "growth": [4, 4, 4]}, "train": {"epochs": 2, "batch": 16}, "verify": {"tolerance": 0}}`), 0o644)
	_, errs, code := execute(t, "run", "all", "--workdir", w, "--config", cfg, "-q")
	if code != exitVerify || strings.Count(errs, "pipeline:") != 1 {
		t.Fatalf("run all with tolerance 0: code %d, want %d (this small network loses 5 points), naming the program once:\n%s", code, exitVerify, errs)
	}
	out, _, _ := execute(t, "status", "--workdir", w)
	if !regexp.MustCompile(`verify +failed .*raised the top-1 error by 5.00 points.*train longer`).MatchString(out) ||
		!regexp.MustCompile(`export +missing .*refused: verify failed`).MatchString(out) {
		t.Errorf("status after a failed verification:\n%s", out)
	}
	_, errs, code = execute(t, "predict", "--workdir", w, "photo.png")
	if code == 0 || !strings.Contains(errs, "verify failed, so export refuses the model") || !strings.Contains(errs, "--model "+filepath.Join(w, "condense")) {
		t.Errorf("predict after a failed verification: code %d, %s", code, errs)
	}
}

// A run that fails before its data is ready leaves the workdir's settings
// as they were; one whose data is ready is remembered, and naming another
// dataset afterwards drops the remembered one's source and checksum.
func TestSettingsOnlyFromRunsThatFetched(t *testing.T) {
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "-q"); code != 0 {
		t.Fatalf("run all: %d\n%s", code, errs)
	}
	archive := filepath.Join(t.TempDir(), "cifar-10-binary.tar.gz")
	var buf bytes.Buffer
	if err := cifar.WriteArchive(&buf, cifar.CIFAR10Format, &cifar.Dataset{Name: "cifar10", Classes: cifar.SyntheticClasses,
		Train: cifar.Synthetic(1, 20, 10).Train, Test: cifar.Synthetic(1, 20, 10).Test}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(archive, buf.Bytes(), 0o644)
	sum := sha256.Sum256(buf.Bytes())
	wrong := strings.Repeat("0", 64)
	_, errs, code := execute(t, "run", "fetch", "--workdir", w, "--dataset", "cifar10", "--data-url", archive, "--data-sha256", wrong)
	if code == 0 || !strings.Contains(errs, "settings: not remembered") {
		t.Fatalf("fetch with a wrong checksum: code %d\n%s", code, errs)
	}
	if out, _, _ := execute(t, "status", "--workdir", w); !strings.Contains(out, "synthetic") || strings.Count(out, " fresh ") != 5 {
		t.Errorf("status after the failed fetch, want the last good run's settings:\n%s", out)
	}
	if _, errs, code := execute(t, "run", "fetch", "--workdir", w, "--dataset", "cifar10", "--data-url", archive, "--data-sha256", hex.EncodeToString(sum[:])); code != 0 {
		t.Fatalf("fetch with the right checksum: code %d\n%s", code, errs)
	}
	if out, errs, code := execute(t, "status", "--workdir", w, "--dataset", "synthetic"); code != 0 || !strings.Contains(out, "synthetic") {
		t.Errorf("status --dataset synthetic in a workdir remembering a CIFAR-10 archive: code %d\n%s%s", code, out, errs)
	}
}

// A workdir whose image folder has moved still shows its stages, fetch
// stale, and says how to point at the new place; naming it makes fetch
// fresh again (the folder is known by its content).
func TestMovedImageFolder(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "photos")
	for _, split := range []string{"train", "val"} {
		for c, class := range []string{"cat", "dog"} {
			for i := range 3 {
				p := filepath.Join(root, split, class, fmt.Sprintf("%d.png", i))
				os.MkdirAll(filepath.Dir(p), 0o755)
				img := image.NewGray(image.Rect(0, 0, 8, 8))
				for j := range img.Pix {
					img.Pix[j] = uint8(40*i + 100*c + j)
				}
				f, _ := os.Create(p)
				png.Encode(f, img)
				f.Close()
			}
		}
	}
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "fetch", "--workdir", w, "--preset", "quick", "--dataset", "folder:"+root); code != 0 {
		t.Fatalf("fetch: %d\n%s", code, errs)
	}
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	out, errs, code := execute(t, "status", "--workdir", w)
	if code != 0 || !regexp.MustCompile(`fetch +stale .*unreadable`).MatchString(out) || !strings.Contains(errs, "give --dataset folder:NEWPATH") {
		t.Errorf("status after moving the folder: code %d\n%s%s", code, out, errs)
	}
	out, _, code = execute(t, "status", "--workdir", w, "--dataset", "folder:"+moved)
	if code != 0 || !regexp.MustCompile(`fetch +fresh`).MatchString(out) {
		t.Errorf("status naming the folder's new place: code %d\n%s", code, out)
	}
}

// --force condenses for the one command: the workdir does not remember it.
func TestForceNotRemembered(t *testing.T) {
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "-q"); code != 0 {
		t.Fatalf("run all: %d\n%s", code, errs)
	}
	if _, errs, code := execute(t, "run", "condense", "--workdir", w, "--force", "-q"); code != 0 {
		t.Fatalf("run condense --force: %d\n%s", code, errs)
	}
	b, _ := os.ReadFile(filepath.Join(w, "settings.json"))
	if strings.Contains(strings.ReplaceAll(string(b), " ", ""), `"force":true`) {
		t.Errorf("--force was remembered:\n%s", b)
	}
}

// --workdir naming a file says so, in run and in status; inspect without a
// file reads the workdir's export.
func TestWorkdirFileAndInspectDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wfile")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, args := range [][]string{{"run", "fetch", "--dataset", "synthetic"}, {"status"}} {
		_, errs, code := execute(t, append(args, "--workdir", file)...)
		if code != exitUsage || !strings.Contains(errs, "is a file, not a folder") {
			t.Errorf("%s with --workdir a file: code %d, %s", args[0], code, errs)
		}
	}
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "-q"); code != 0 {
		t.Fatalf("run all: %d\n%s", code, errs)
	}
	if out, errs, code := execute(t, "inspect", "--workdir", w); code != 0 || !strings.Contains(out, "opset") {
		t.Errorf("inspect without a file: code %d\n%s%s", code, out, errs)
	}
}

// The report renders in a real browser without console errors. Chromium
// comes from Debian (apt-get install chromium); without it the test skips,
// except under CI=true, where it fails.
func TestReportRendersInChromium(t *testing.T) {
	w := t.TempDir()
	if _, errs, code := execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "-q"); code != 0 {
		t.Fatalf("run all: %d\n%s", code, errs)
	}
	out, errs, code := execute(t, "report", "--workdir", w)
	if code != 0 || !strings.Contains(out, "report.html") {
		t.Fatalf("report: code %d\n%s%s", code, out, errs)
	}
	html, _ := os.ReadFile(filepath.Join(w, "report.html"))
	for _, want := range []string{"data:image/png;base64,", "Condensation schedule", "condensed", "model.onnx",
		"Condensing steps", "as the steps above should leave"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if bytes.Contains(html, []byte("http://")) || bytes.Contains(html, []byte("https://")) {
		t.Error("report.html refers to the network")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed (apt-get install chromium): rendering not checked")
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--window-size=1200,2600", "--screenshot="+shot, "--enable-logging=stderr", "--log-level=0",
		"file://"+filepath.Join(w, "report.html"))
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, log)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			t.Errorf("console message while rendering the report: %s", line)
		}
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (a blank page is a few KB)", shot, err)
	}
}

// Asking for a GPU where there is none exits with status 4 and says what
// is missing.
func TestNoDeviceExitCode(t *testing.T) {
	t.Setenv("CONDENSENET_LIBCUDA", filepath.Join(t.TempDir(), "libcuda.so.1"))
	_, errs, code := execute(t, "bench", "train", "--device", "cuda", "--stages", "1-1-1", "--steps", "1")
	if code != exitNoDevice || !strings.Contains(errs, "libcuda not found") {
		t.Errorf("code %d, want %d; stderr:\n%s", code, exitNoDevice, errs)
	}
	// run refuses before any stage, fetch included, does work.
	w := t.TempDir()
	_, errs, code = execute(t, "run", "all", "--workdir", w, "--config", smallSynthetic(t), "--device", "cuda")
	if code != exitNoDevice || !strings.Contains(errs, "device cuda: libcuda not found") {
		t.Errorf("run all --device cuda: code %d, want %d; stderr:\n%s", code, exitNoDevice, errs)
	}
	if _, err := os.Stat(filepath.Join(w, "fetch")); err == nil {
		t.Errorf("fetch ran before the missing GPU was noticed")
	}
}

func TestDevicesWithoutGPU(t *testing.T) {
	t.Setenv("CONDENSENET_LIBCUDA", filepath.Join(t.TempDir(), "libcuda.so.1"))
	out, _, code := execute(t, "devices")
	for _, want := range []string{"cpu      ", "missing  libcuda not found", "CONDENSENET_LIBCUDA", "--device auto uses cpu"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("code %d, output lacks %q:\n%s", code, want, out)
		}
	}
}

// An error from the pipeline package, which starts with its name, is
// printed with the program's name once.
func TestErrorsNameTheProgramOnce(t *testing.T) {
	var out, errb bytes.Buffer
	g := newGlobals(&out, &errb)
	if code := exitCode(g, fmt.Errorf("%w: work is used by pid 7", pipeline.ErrLocked), nil); code != exitError ||
		errb.String() != "pipeline: workdir in use: work is used by pid 7\n" {
		t.Errorf("code %d, stderr %q", code, errb.String())
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// status and report with a mistyped --workdir say so and create nothing.
func TestMissingWorkdir(t *testing.T) {
	w := filepath.Join(t.TempDir(), "wrok")
	for _, cmd := range []string{"status", "report"} {
		_, errs, code := subprocess(t, cmd, "--workdir", w)
		if code != exitError || !strings.Contains(errs, "no workdir at "+w) {
			t.Errorf("%s: code %d, %s", cmd, code, errs)
		}
		if _, err := os.Stat(w); err == nil {
			t.Fatalf("%s created %s", cmd, w)
		}
	}
}

// On an 80- or 60-column terminal a training epoch's bar stays on one
// line, keeping the fields that matter most (epoch, the run's ETA, loss,
// images/s), and an interrupted task keeps its true count instead of
// jumping to 100%; a note printed while a bar is live gets a line of its
// own.
func TestProgressFitsTerminal(t *testing.T) {
	for columns, want := range map[int]string{
		80:  "epoch 12/300 run ETA 64h12m, loss 2.0002, 975 images/s",
		60:  "epoch 12/300 run ETA 64h12m, loss 2.0002",
		120: "train: epoch 12/300 run ETA 64h12m, loss 2.0002, 975 images/s ",
		200: "train: epoch 12/300 run ETA 64h12m, loss 2.0002, 975 images/s, train top-1 13.0%, lr 0.0539",
	} {
		var buf bytes.Buffer
		rep := &textReporter{err: &buf, live: true, columns: columns}
		p := rep.Progress("train", "epoch 12/300", 781, pipeline.Batches)
		for i := range 3 {
			p.Status(fmt.Sprintf("run ETA 64h12m, loss 2.%04d, 975 images/s, train top-1 13.0%%, lr 0.0539", i))
			p.Add(100)
			time.Sleep(120 * time.Millisecond) // past the bar's throttle
			if i == 1 {
				rep.Note("hello")
			}
		}
		p.Done()
		out := buf.String()
		lines := strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' })
		for _, line := range lines {
			if n := len([]rune(strings.TrimRight(line, " "))); n > columns {
				t.Errorf("%d columns: a line of %d: %q", columns, n, line)
			}
		}
		if !strings.Contains(out, want) || strings.Contains(out, "100%") {
			t.Errorf("the bar at %d columns, want %q:\n%q", columns, want, out)
		}
		if !slices.Contains(lines, "note: hello") {
			t.Errorf("%d columns: the note shares a line with the bar:\n%q", columns, out)
		}
	}
}

// bench --layers books each kind of layer per step; the kinds' shares add
// up to no more than the step.
func TestBenchLayers(t *testing.T) {
	out, errs, code := execute(t, "bench", "train", "--device", "cpu", "--stages", "1-1-1", "--batch", "8", "--steps", "2", "--layers", "--json")
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("bench --layers --json: code %d, %v\n%s%s", code, err, out, errs)
	}
	var share float64
	kinds := map[string]bool{}
	for _, l := range res.Layers {
		share += l.Share
		kinds[l.Kind] = true
	}
	for _, want := range []string{"batchnorm+relu+conv 3×3 G=4 forward", "batchnorm+relu+conv 3×3 G=4 backward", "SGD update"} {
		if !kinds[want] {
			t.Errorf("no %q in %+v", want, res.Layers)
		}
	}
	if share <= 0.3 || share > 1.05 || res.PeakShare <= 0 {
		t.Errorf("layers cover %.2f of the step, peak share %.3f", share, res.PeakShare)
	}
}

// Every stage runs on an image folder: the network gets a class per class
// folder, and predict names those classes.
func TestRunAllOnImageFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "shapes")
	for ci, class := range []string{"circle", "square", "triangle"} {
		for i := range 15 {
			split, name := "train", fmt.Sprintf("%d.png", i)
			if i >= 12 {
				split = "val"
			}
			img := image.NewRGBA(image.Rect(0, 0, 24+i, 32))
			for k := range img.Pix {
				img.Pix[k] = uint8(k*(ci+3) + i)
			}
			p := filepath.Join(root, split, class, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, _ := os.Create(p)
			png.Encode(f, img)
			f.Close()
		}
	}
	cfg := filepath.Join(t.TempDir(), "tiny.json")
	os.WriteFile(cfg, []byte(`{"model": {"stages": [1, 1, 1], "growth": [4, 4, 4]}, "train": {"epochs": 2, "batch": 8, "images_per_epoch": 0}, "verify": {"tolerance": 100}}`), 0o644)
	w := t.TempDir()
	out, errs, code := execute(t, "run", "all", "--workdir", w, "--preset", "quick", "--config", cfg, "--dataset", "folder:"+root)
	if code != 0 || !strings.Contains(out, "folder:shapes: 36 train, 9 test images of 3x32x32, 3 classes") {
		t.Fatalf("run all: code %d\n%s%s", code, out, errs)
	}
	out, errs, code = execute(t, "predict", "--workdir", w, "--json", filepath.Join(root, "val", "square", "13.png"))
	if code != 0 || !strings.Contains(out, `"name":"square"`) && !strings.Contains(out, `"name":"circle"`) {
		t.Errorf("predict: code %d\n%s%s", code, out, errs)
	}
	predictMatchesVerify(t, w, root)
	out, _, _ = execute(t, "status", "--workdir", w)
	if strings.Count(out, "fresh") != 5 {
		t.Errorf("status after run all:\n%s", out)
	}
	// The workdir remembers the folder by its absolute path: a relative
	// one names the same folder from anywhere.
	b, _ := os.ReadFile(filepath.Join(w, "settings.json"))
	if !strings.Contains(string(b), `"dataset": "folder:`+root+`"`) && !strings.Contains(string(b), `"dataset":"folder:`+root+`"`) {
		t.Errorf("settings.json does not name %s:\n%s", root, b)
	}
}

// The paper's ImageNet network (stride-2 stem, five blocks, 224×224 input)
// goes through every stage on a small image folder, and predict and the
// exported model take 224×224 images.
func TestImageNetPresetOnImageFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tiny-imagenet")
	for ci, class := range []string{"n01", "n02"} {
		for i := range 6 {
			split := "train"
			if i >= 4 {
				split = "val"
			}
			img := image.NewRGBA(image.Rect(0, 0, 180+10*i, 240))
			for k := range img.Pix {
				img.Pix[k] = uint8(k/(ci+1) + 3*i)
			}
			p := filepath.Join(root, split, class, fmt.Sprintf("%d.jpg", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, _ := os.Create(p)
			jpeg.Encode(f, img, nil)
			f.Close()
		}
	}
	cfg := filepath.Join(t.TempDir(), "short.json")
	os.WriteFile(cfg, []byte(`{"train": {"epochs": 1, "batch": 2}, "verify": {"tolerance": 100, "batch": 2}}`), 0o644)
	w := t.TempDir()
	out, errs, code := execute(t, "run", "all", "--workdir", w, "--preset", "condensenet-imagenet", "--config", cfg, "--dataset", "folder:"+root)
	if code != 0 || !strings.Contains(out, "8 train, 4 test images of 3x256x256, 2 classes") || !strings.Contains(out, "export   done") ||
		!strings.Contains(errs, "prepare images: 12 images in") || !strings.Contains(errs, "batches/s") {
		t.Fatalf("run all: code %d\n%s%s", code, out, errs)
	}
	out, errs, code = execute(t, "predict", "--workdir", w, "--json", filepath.Join(root, "val", "n02", "5.jpg"))
	if code != 0 || !strings.Contains(out, `"name":"n0`) {
		t.Errorf("predict: code %d\n%s%s", code, out, errs)
	}
	predictMatchesVerify(t, w, root)
	out, _, _ = execute(t, "inspect", filepath.Join(w, "export", "model.onnx"))
	if !strings.Contains(out, "224") {
		t.Errorf("inspect of the export:\n%s", out)
	}
}

// An image folder whose prepared images are larger than the memory the
// run may use (a soft GOMEMLIMIT of a quarter of them, and a peak RSS
// under half of them) is prepared, trained on and verified: no stage
// holds the dataset in memory.
func TestImageFolderLargerThanMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("prepares 240 MB of images")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc to read the peak RSS from")
	}
	root := filepath.Join(t.TempDir(), "big")
	const train, val = 1200, 16
	for i := range train + val {
		split, class := "train", []string{"n01", "n02"}[i%2]
		if i >= train {
			split = "val"
		}
		img := image.NewRGBA(image.Rect(0, 0, 72, 96))
		for k := range img.Pix {
			img.Pix[k] = uint8(k*(i%7+1) + i)
		}
		p := filepath.Join(root, split, class, fmt.Sprintf("%d.jpg", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, _ := os.Create(p)
		jpeg.Encode(f, img, nil)
		f.Close()
	}
	images := int64(train+val) * 3 * 256 * 256
	cfg := filepath.Join(t.TempDir(), "tiny.json")
	os.WriteFile(cfg, []byte(`{"model": {"stages": [1, 1, 1, 1, 1], "growth": [4, 4, 4, 4, 4]},
		"train": {"epochs": 1, "batch": 4, "images_per_epoch": 16}, "verify": {"tolerance": 100, "batch": 4}}`), 0o644)
	args := []string{"run", "all", "--workdir", t.TempDir(), "--preset", "condensenet-imagenet", "--config", cfg, "--dataset", "folder:" + root}
	cmd := command(t, args...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("GOMEMLIMIT=%d", images/4))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child's own high-water mark, read while it runs: rusage's
	// maxrss would count this test process too, whose memory the child
	// shares until it execs.
	var peak int64
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		case <-time.After(20 * time.Millisecond):
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
				var kb int64
				if i := bytes.Index(b, []byte("VmHWM:")); i >= 0 {
					fmt.Sscanf(string(b[i+6:]), "%d", &kb)
					peak = max(peak, kb<<10)
				}
			}
		}
	}
	out, errs, code := stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d train, %d test images of 3x256x256", train, val)) || !strings.Contains(out, "export   done") {
		t.Fatalf("run all: code %d\n%s%s", code, out, errs)
	}
	if peak == 0 {
		t.Fatal("no VmHWM read from /proc")
	}
	t.Logf("prepared images %.0f MB; peak RSS of the whole run %.0f MB", float64(images)/1e6, float64(peak)/1e6)
	if peak > images/2 {
		t.Errorf("peak RSS %.0f MB for %.0f MB of images", float64(peak)/1e6, float64(images)/1e6)
	}
}

// predictMatchesVerify checks that predict, given the files of the
// folder at root's val/, gets the condensed accuracy that verify reports
// in workdir w.
func predictMatchesVerify(t *testing.T, w, root string) {
	t.Helper()
	out, errs, code := execute(t, "predict", "--workdir", w, "--json", "--top", "1", filepath.Join(root, "val"))
	preds, _ := predictJSON(t, out)
	if code != 0 || len(preds) == 0 {
		t.Fatalf("predict of val/: code %d\n%s%s", code, out, errs)
	}
	right := 0
	for _, p := range preds {
		if p.Classes[0].Name == filepath.Base(filepath.Dir(p.Image)) {
			right++
		}
	}
	store, _ := artifacts.Open(w)
	a, err := store.Get("verify")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := artifacts.LoadReport(a)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := float64(right)/float64(len(preds)), 1-rep.Condensed.Top1Error; math.Abs(got-want) > 1e-9 {
		t.Errorf("predict is right on %d of %d images of val/ (%.4f); verify reports %.4f", right, len(preds), got, want)
	}
}

// A predictLine is one line of predict --json.
type predictLine struct {
	Type    string `json:"message_type"`
	Image   string
	Error   string
	Classes []struct {
		Name        string
		Probability float64
	}
}

// predictJSON splits predict --json's lines into predictions and
// failures, after the line that names the model.
func predictJSON(t *testing.T, out string) (preds, fails []predictLine) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l predictLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || i == 0 && l.Type != "predict" {
			t.Fatalf("predict --json line %d: %v\n%s", i+1, err, out)
		}
		switch l.Type {
		case "prediction":
			preds = append(preds, l)
		case "failure":
			fails = append(fails, l)
		}
	}
	return preds, fails
}

// bench --preset times the preset's network; --stages still changes it.
func TestBenchPreset(t *testing.T) {
	out, errs, code := execute(t, "bench", "infer", "--device", "cpu", "--preset", "quick", "--batch", "2", "--steps", "1", "--workdir", t.TempDir())
	if code != 0 || !strings.Contains(out, "stages [3 3 3] growth [8 16 32]") {
		t.Errorf("bench --preset quick: code %d\n%s%s", code, out, errs)
	}
	out, errs, code = execute(t, "bench", "infer", "--device", "cpu", "--preset", "condensenet-imagenet-g8", "--stages", "1-1-1-1-1", "--condensed", "--batch", "1", "--steps", "1", "--workdir", t.TempDir())
	if code != 0 || !strings.Contains(out, "stages [1 1 1 1 1] growth [8 16 32 64 128]") {
		t.Errorf("bench --preset condensenet-imagenet-g8 --stages 1-1-1-1-1: code %d\n%s%s", code, out, errs)
	}
}

// A read-only workdir (as another user, when the test runs as root, who
// may write anywhere): the reading commands work, run all with every stage
// fresh succeeds with nothing to write, a run with work to do says which
// stage would run, and report writes elsewhere with --out.
func TestReadOnlyWorkdir(t *testing.T) {
	cfg := smallSynthetic(t)
	w := t.TempDir()
	if out, errs, code := execute(t, "run", "all", "--workdir", w, "--config", cfg); code != 0 {
		t.Fatalf("run all: code %d\n%s%s", code, out, errs)
	}
	shared := t.TempDir() // what the other user reads and writes: the binary, an image, the report
	bin := filepath.Join(shared, "pipeline.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, b, 0o755)
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	f, _ := os.Create(filepath.Join(shared, "photo.png"))
	png.Encode(f, img)
	f.Close()
	changed := filepath.Join(shared, "longer.json")
	c, _ := os.ReadFile(cfg)
	os.WriteFile(changed, bytes.Replace(c, []byte(`"epochs": 2`), []byte(`"epochs": 3`), 1), 0o644)
	for _, d := range []string{shared, filepath.Dir(shared), filepath.Dir(cfg), filepath.Dir(filepath.Dir(cfg)), filepath.Dir(w)} {
		os.Chmod(d, 0o777)
	}
	os.Chmod(cfg, 0o644)
	setMode := func(dirs, files os.FileMode) {
		filepath.WalkDir(w, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, dirs)
			} else if err == nil {
				os.Chmod(p, files)
			}
			return nil
		})
	}
	setMode(0o555, 0o444)
	t.Cleanup(func() { setMode(0o755, 0o644) })
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := command(t, args...)
		cmd.Path, cmd.Args = bin, []string{bin}
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			cmd.Env = append(cmd.Env, "HOME="+shared)
		}
		return runChild(t, cmd, args)
	}
	if out, errs, code := run("run", "all", "--workdir", w); code != 0 || strings.Count(out, "read-only") != 5 {
		t.Errorf("run all, every stage fresh: code %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run("status", "--workdir", w); code != 0 || strings.Count(out, "fresh") != 5 {
		t.Errorf("status: code %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run("predict", "--workdir", w, filepath.Join(shared, "photo.png")); code != 0 || !strings.Contains(out, "%") {
		t.Errorf("predict: code %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run("run", "all", "--workdir", w, "--config", changed); code == 0 || !strings.Contains(errs, "train would run") || !strings.Contains(errs, "writable") {
		t.Errorf("run all with more epochs: code %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run("run", "verify", "--redo", "--workdir", w); code == 0 || !strings.Contains(errs, "writable") {
		t.Errorf("run verify --redo: code %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run("report", "--workdir", w); code == 0 || !strings.Contains(errs, "--out") {
		t.Errorf("report: code %d\n%s%s", code, out, errs)
	}
	page := filepath.Join(shared, "report.html")
	if out, errs, code := run("report", "--workdir", w, "--out", page); code != 0 {
		t.Errorf("report --out: code %d\n%s%s", code, out, errs)
	}
	if b, err := os.ReadFile(page); err != nil || !bytes.Contains(b, []byte("Settings")) {
		t.Errorf("report --out wrote no page with the settings: %v", err)
	}
}
