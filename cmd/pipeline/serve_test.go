package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/condensenet/condensenet/internal/pipelinetest"
)

// startServe runs pipeline serve on a free port and returns its URL and
// the running command, whose stderr collects in errb.
func startServe(t *testing.T, errb *bytes.Buffer, args ...string) (string, *exec.Cmd) {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)
	cmd := command(t, args...)
	cmd.Stderr = errb
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`on (http://\S+)/`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("serve said %q (%v)\n%s", line, err, errb)
	}
	go io.Copy(io.Discard, out)
	return m[1], cmd
}

func pngOf(img image.Image) []byte {
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// Requests in flight when SIGTERM comes finish; new ones are refused; the
// server exits 0.
func TestServeStopsGracefully(t *testing.T) {
	w := t.TempDir()
	pipelinetest.Run(t, w, pipelinetest.Config())
	var errb bytes.Buffer
	url, cmd := startServe(t, &errb, "--workdir", w, "--window", "400ms")
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "image", "shape": []int{1}, "datatype": "BYTES",
		"data": []string{base64.StdEncoding.EncodeToString(pngOf(image.NewRGBA(image.Rect(0, 0, 8, 8))))}}}})
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Go(func() {
			resp, err := http.Post(url+"/v2/models/condensenet/infer", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Errorf("request %d in flight: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	time.Sleep(150 * time.Millisecond) // the requests wait in the window
	cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d in flight at SIGTERM: status %d", i, c)
		}
	}
	err := cmd.Wait()
	if err != nil || !strings.Contains(errb.String(), "finishing the requests in flight") {
		t.Errorf("serve after SIGTERM: %v\n%s", err, errb.String())
	}
	if _, err := http.Get(url + "/v2/health/live"); err == nil {
		t.Error("a request after the server stopped was answered")
	}
}

// In headless Chromium, an image dropped on the page at / gets its top
// classes from the server; the page links the workdir's report. The
// screenshot goes to the test's artifacts (go test -artifacts).
func TestServePageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	w := t.TempDir()
	pipelinetest.Run(t, w, pipelinetest.Config())
	var errb bytes.Buffer
	url, _ := startServe(t, &errb, "--workdir", w)
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	file := base64.StdEncoding.EncodeToString(pngOf(img))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 900))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil { // starts the browser: no timeout on it
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// The drop: a DataTransfer holding the PNG, as a browser makes one
	// for a file dragged from the desktop.
	drop := fmt.Sprintf(`(() => {
		const bytes = Uint8Array.from(atob(%q), c => c.charCodeAt(0));
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], "cat.png", {type: "image/png"}));
		document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`, file)
	err = chromedp.Do(ctx,
		chromedp.WaitVisible("#model:not(:empty)"),
		chromedp.Evaluate[chromedp.Void](drop),
		chromedp.WaitVisible(`body[data-answered="yes"]`))
	if err != nil {
		t.Fatalf("chromium: %v\nserver: %s", err, errb.String())
	}
	result, err := chromedp.Run(ctx, chromedp.Text("#result"))
	if err != nil {
		t.Fatal(err)
	}
	report, _ := chromedp.Run(ctx, chromedp.AttributeValue("#report", "href"))
	hidden, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("report").hidden`))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(result), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`^\S+ \d+\.\d%$`).MatchString(strings.TrimSpace(lines[0])) {
		t.Errorf("the page shows %q, want five classes with their probabilities", result)
	}
	if report.Value != "/report" || hidden {
		t.Errorf("report link %q, hidden %v", report.Value, hidden)
	}
	p := filepath.Join(t.ArtifactDir(), "serve-page.png")
	if err := os.WriteFile(p, shot, 0o644); err != nil || len(shot) < 10_000 {
		t.Errorf("screenshot: %d bytes, %v", len(shot), err)
	}
	t.Logf("the page shows: %s; screenshot %s", strings.Join(lines, " | "), p)
	resp, err := http.Get(url + "/report")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("<html")) {
		t.Errorf("/report: %d %.200s", resp.StatusCode, b)
	}
}

// bench serve loads our server and the ONNX Runtime one with the same
// requests and reports both; every request succeeds.
func TestBenchServe(t *testing.T) {
	w := t.TempDir()
	onnx := pipelinetest.Run(t, w, pipelinetest.Config())
	ort := "../../.ort/node_modules"
	if _, err := os.Stat(filepath.Join(ort, "onnxruntime-node")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("onnxruntime-node is not installed: npm install --prefix .ort --ignore-scripts onnxruntime-node@1.30.0")
		}
		ort = ""
	}
	out, errs, code := subprocess(t, "bench", "serve", "--model", onnx, "--clients", "1,4", "--duration", "300ms", "--ort", ort, "--json")
	if code != 0 {
		t.Fatalf("bench serve: %d\n%s%s", code, out, errs)
	}
	rows := 0
	for line := range strings.Lines(out) {
		var r struct {
			Server   string  `json:"server"`
			Clients  int     `json:"clients"`
			Requests int     `json:"requests"`
			PerSec   float64 `json:"requests_per_sec"`
			Failed   int     `json:"failed"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Requests == 0 || r.PerSec <= 0 || r.Failed != 0 {
			t.Errorf("bench serve line %q (%v)", line, err)
		}
		rows++
	}
	if want := map[bool]int{true: 2, false: 4}[ort == ""]; rows != want {
		t.Errorf("bench serve gave %d rows, want %d:\n%s", rows, want, out)
	}
}

// While training runs, report --watch keeps the page current: how far it
// is, the time left and the curves so far, reloading itself; after an
// interruption the page says so.
func TestLiveReport(t *testing.T) {
	w := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "long.json")
	os.WriteFile(cfg, []byte(`{"data": {"dataset": "synthetic", "synthetic_train": 640, "synthetic_test": 64},
		"model": {"stages": [1, 1, 1], "growth": [4, 4, 4]}, "train": {"epochs": 500, "batch": 32, "images_per_epoch": 0, "checkpoint_minutes": 0.001}}`), 0o644)
	train := command(t, "run", "train", "--workdir", w, "--preset", "quick", "--config", cfg)
	if err := train.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { train.Process.Kill(); train.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(w, "logs", "train-*", "events.out.tfevents.*.train"))
		_, err := os.Stat(filepath.Join(w, "state", "train", "resume.json"))
		if len(files) == 1 && err == nil {
			if st, _ := os.Stat(files[0]); st.Size() > 2000 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("training logged nothing within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	watch := command(t, "report", "--workdir", w, "--watch", "1s")
	var errb bytes.Buffer
	watch.Stderr = &errb
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	watch.Process.Signal(os.Interrupt)
	if err := watch.Wait(); err != nil || strings.Count(errb.String(), "report: wrote") < 2 {
		t.Errorf("report --watch: %v\n%s", err, errb.String())
	}
	page, _ := os.ReadFile(filepath.Join(w, "report.html"))
	for _, want := range []string{"Training in progress: iteration ", " left (in process", `alt="training curves so far"`, "location.reload()", "1  * 1000);"} {
		if !bytes.Contains(page, []byte(want)) {
			i := bytes.Index(page, []byte("<h2>Training"))
			t.Errorf("the live page lacks %q:\n%.400s\n...%s", want, page[max(i, 0):], page[max(0, len(page)-500):])
		}
	}
	checkScrollKept(t, filepath.Join(w, "report.html"))
	train.Process.Signal(os.Interrupt)
	train.Wait()
	out, errs, code := execute(t, "report", "--workdir", w)
	page, _ = os.ReadFile(filepath.Join(w, "report.html"))
	if code != 0 || !bytes.Contains(page, []byte("Training interrupted: iteration ")) || !bytes.Contains(page, []byte("Run again to continue")) ||
		bytes.Contains(page, []byte("location.reload()")) {
		t.Errorf("report after the interruption: %d %s%s\n%.2000s", code, out, errs, page)
	}
}

// checkScrollKept opens a page made by report --watch in headless
// Chromium, scrolls down, and checks that the page has reloaded itself
// and is back where it was.
func checkScrollKept(t *testing.T, page string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Log("chromium not installed: the reload is not checked in a browser")
		return
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 400))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`window.loadedOnce = true; scrollTo(0, 300)`),
		chromedp.Sleep(2500*time.Millisecond)) // past the reload after 1 s
	if err != nil {
		t.Fatal(err)
	}
	reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedOnce === undefined`))
	if err != nil {
		t.Fatal(err)
	}
	y, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`scrollY`))
	if err != nil {
		t.Fatal(err)
	}
	if !reloaded || y != 300 {
		t.Errorf("after the page's reload: reloaded %v, scrolled to %v, want 300", reloaded, y)
	}
}
