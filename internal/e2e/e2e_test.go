// Package e2e drives the built pipeline binary as a user would, and breaks
// it: kill -9 at random moments, SIGINT and SIGTERM, damaged artifacts,
// concurrent runs. Everything runs offline on a CIFAR-format archive of
// synthetic images served by a local, deliberately slow HTTP server.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/condensenet/condensenet/cifar"
)

var (
	bin     string // the pipeline binary
	archive []byte // served at /cifar-10-binary.tar.gz
	archSum string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "pipeline")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/pipeline").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	d := cifar.Synthetic(11, 640, 64)
	d.Name = "cifar10"
	d.Classes = strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")
	var buf bytes.Buffer
	if err := cifar.WriteArchive(&buf, cifar.CIFAR10Format, d); err != nil {
		panic(err)
	}
	archive = buf.Bytes()
	h := sha256.Sum256(archive)
	archSum = hex.EncodeToString(h[:])
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// slowServer serves the archive in 32 KB pieces 10 ms apart (with Range
// support), so a download takes long enough to be interrupted, and counts
// the requests that start from byte 0.
func slowServer(t *testing.T) (url string, fresh *atomic.Int32) {
	fresh = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			fmt.Sscanf(rg, "bytes=%d-", &start)
			if start >= len(archive) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(archive)-1, len(archive)))
			w.Header().Set("Content-Length", fmt.Sprint(len(archive)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			fresh.Add(1)
			w.Header().Set("Content-Length", fmt.Sprint(len(archive)))
		}
		for off := start; off < len(archive); off += 32 << 10 {
			if _, err := w.Write(archive[off:min(len(archive), off+32<<10)]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/cifar-10-binary.tar.gz", fresh
}

// config is a tiny run: CondenseNet 1-1-1, two epochs.
const config = `{"model": {"stages": [1, 1, 1], "growth": [4, 4, 4]},
 "train": {"epochs": 2, "batch": 32, "images_per_epoch": 0, "eval_every": 1},
 "verify": {"tolerance": 100}}`

// pipeline returns a command running the binary on workdir w.
func pipeline(t *testing.T, url, w, cache string, args ...string) *exec.Cmd {
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(config), 0o644)
	all := append(args, "--workdir", w, "--cache-dir", cache, "--preset", "quick", "--config", cfg,
		"--data-url", url, "--data-sha256", archSum, "--quiet")
	return exec.Command(bin, all...)
}

// outputs are the files a finished run must reproduce byte for byte.
var outputs = []string{"fetch/train-images.u8", "train/model.safetensors", "condense/model.safetensors", "export/model.onnx"}

func read(t *testing.T, w string) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range outputs {
		b, err := os.ReadFile(filepath.Join(w, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m[f] = b
	}
	return m
}

// compare returns the bytes of want that got does not reproduce.
func compare(got, want map[string][]byte) (lost int) {
	for f, b := range want {
		if !bytes.Equal(got[f], b) {
			lost += len(b)
		}
	}
	return lost
}

func TestReliability(t *testing.T) {
	url, _ := slowServer(t)
	ref := t.TempDir()
	start := time.Now()
	if out, err := pipeline(t, url, ref, t.TempDir(), "run", "all").CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	total := time.Since(start)
	want := read(t, ref)

	// kill -9 at seeded random moments over a whole run, then run again.
	const kills = 20
	rng := rand.New(rand.NewPCG(2026, 11))
	recovered, lost := 0, 0
	for k := range kills {
		w, cache := t.TempDir(), t.TempDir()
		at := time.Duration(rng.Float64() * float64(total))
		cmd := pipeline(t, url, w, cache, "run", "all")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(at)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if out, err := pipeline(t, url, w, cache, "run", "all").CombinedOutput(); err != nil {
			t.Errorf("kill point %d (%v of %v): the run after it failed: %v\n%s", k, at, total, err, out)
			continue
		}
		if n := compare(read(t, w), want); n > 0 {
			t.Errorf("kill point %d (%v): %d bytes differ from the uninterrupted run", k, at, n)
			lost += n
			continue
		}
		recovered++
	}

	// Damage one artifact file at a time: the next run names it, rebuilds
	// it, leaves the others alone, and ends with the same bytes.
	detected := 0
	for _, f := range outputs {
		w := t.TempDir()
		os.CopyFS(w, os.DirFS(ref))
		manifests := map[string][]byte{}
		for _, g := range outputs {
			manifests[g], _ = os.ReadFile(filepath.Join(w, filepath.Dir(g), "manifest.json"))
		}
		p := filepath.Join(w, f)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x10
		os.WriteFile(p, b, 0o644)
		status, _ := pipeline(t, url, w, t.TempDir(), "status").Output()
		if !strings.Contains(string(status), "corrupt") || !strings.Contains(string(status), filepath.Base(f)) {
			t.Errorf("status after damaging %s does not name it:\n%s", f, status)
			continue
		}
		if out, err := pipeline(t, url, w, t.TempDir(), "run", "all").CombinedOutput(); err != nil {
			t.Errorf("run after damaging %s: %v\n%s", f, err, out)
			continue
		}
		if n := compare(read(t, w), want); n > 0 {
			t.Errorf("after damaging %s: %d bytes differ", f, n)
			lost += n
			continue
		}
		for _, g := range outputs {
			if g == f {
				continue
			}
			before, after := manifests[g], must(os.ReadFile(filepath.Join(w, filepath.Dir(g), "manifest.json")))
			if !bytes.Equal(before, after) {
				t.Errorf("damaging %s rebuilt %s, which was valid", f, filepath.Dir(g))
			}
		}
		detected++
	}
	fmt.Printf("reliability: %d kill points tried, %d runs recovered, %d of %d corruptions detected, %d bytes lost\n",
		kills, recovered, detected, len(outputs), lost)
	t.Logf("reliability: %d kill points tried, %d runs recovered, %d of %d corruptions detected, %d bytes lost",
		kills, recovered, detected, len(outputs), lost)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// SIGINT and SIGTERM stop training cleanly: a checkpoint, exit 130 or 143,
// a hint to resume; resuming reproduces the uninterrupted run.
func TestSignals(t *testing.T) {
	url, _ := slowServer(t)
	ref := t.TempDir()
	if out, err := pipeline(t, url, ref, t.TempDir(), "run", "all").CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	want := read(t, ref)
	for _, sig := range []struct {
		s    syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		w, cache := t.TempDir(), t.TempDir()
		cmd := pipeline(t, url, w, cache, "run", "all")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Start()
		// Wait until training has checkpointed once, then interrupt it.
		deadline := time.Now().Add(60 * time.Second)
		for {
			if m, _ := filepath.Glob(filepath.Join(w, "state", "train", "checkpoint-*")); len(m) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(sig.s)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != sig.code || !strings.Contains(stderr.String(), "run the same command again") {
			t.Errorf("%v: exit %d, stderr %q; want %d and a hint", sig.s, code, stderr.String(), sig.code)
		}
		if out, err := pipeline(t, url, w, cache, "run", "all").CombinedOutput(); err != nil {
			t.Fatalf("%v: resume: %v\n%s", sig.s, err, out)
		}
		if n := compare(read(t, w), want); n > 0 {
			t.Errorf("%v: %d bytes differ after resuming", sig.s, n)
		}
	}
}

// Two runs on one workdir: the second refuses, naming the first. Two runs
// on two workdirs sharing the download cache: both finish, one download.
func TestConcurrentRuns(t *testing.T) {
	url, fresh := slowServer(t)
	w, cache := t.TempDir(), t.TempDir()
	first := pipeline(t, url, w, cache, "run", "fetch")
	first.Start()
	time.Sleep(150 * time.Millisecond) // the first holds the workdir lock, downloading
	out, err := pipeline(t, url, w, cache, "run", "fetch").CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("pid %d", first.Process.Pid)) {
		t.Errorf("a second run on the same workdir: %v\n%s\nwant a refusal naming pid %d", err, out, first.Process.Pid)
	}
	first.Wait()

	shared := t.TempDir()
	fresh.Store(0)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []byte
			out, errs[i] = pipeline(t, url, t.TempDir(), shared, "run", "fetch").CombinedOutput()
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%v: %s", errs[i], out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fresh.Load(); n != 1 {
		t.Errorf("%d downloads for two workdirs sharing a cache, want 1", n)
	}
}
