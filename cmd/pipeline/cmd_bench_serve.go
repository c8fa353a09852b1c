package main

import (
	"bufio"
	"bytes"
	"cmp"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/serve"
)

//go:embed ort_server.js
var ortServer []byte

// BenchServeOptions are bench serve's flags.
type BenchServeOptions struct {
	Model    string
	Clients  string
	Duration time.Duration
	Window   time.Duration
	ORT      string
}

func newBenchServeCommand(g *Globals) *cobra.Command {
	var opts BenchServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Time pipeline serve against ONNX Runtime behind Node's http, on the same model",
		Long: `bench serve starts this program's server (as pipeline serve runs it) on an
exported ONNX model and loads it with clients that each send one image
after another (FP32 binary data, one image a request, answered with JSON
probabilities) for --duration; then the same with a minimal server that
runs the same file in ONNX Runtime for Node.js (onnxruntime-node, found
with --ort, one process with its default threads). It prints requests/s
and the median and 99th-percentile latency at each number of clients.`,
		Example: `  pipeline bench serve --model work/export/model.onnx --clients 1,8,64 --duration 10s`,
		Args:    usageArgs(cobra.NoArgs),
		RunE:    func(cmd *cobra.Command, args []string) error { return runBenchServe(opts, g) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", "", "the exported model (default: the workdir's export/model.onnx)")
	f.StringVar(&opts.Clients, "clients", "1,8,64", "numbers of concurrent clients, comma-separated")
	f.DurationVar(&opts.Duration, "duration", 10*time.Second, "how long each load runs")
	f.DurationVar(&opts.Window, "window", 0, "serve's --window")
	f.StringVar(&opts.ORT, "ort", ".ort/node_modules", "the node_modules folder holding onnxruntime-node (\"\": ours alone)")
	return cmd
}

// loadResult is one load's measure.
type loadResult struct {
	Server      string  `json:"server"`
	Clients     int     `json:"clients"`
	Requests    int     `json:"requests"`
	PerSec      float64 `json:"requests_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Failed      int     `json:"failed"`
	MessageType string  `json:"message_type"`
}

func runBenchServe(opts BenchServeOptions, g *Globals) error {
	var clients []int
	for _, f := range strings.Split(opts.Clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return usageError{fmt.Errorf("--clients %q: want positive integers joined by commas, like 1,8,64", opts.Clients)}
		}
		clients = append(clients, n)
	}
	path := cmp.Or(opts.Model, filepath.Join(g.Workdir, "export", "model.onnx"))
	m, err := classify.Open(path)
	if err != nil {
		return err
	}
	if opts.ORT != "" {
		if _, err := os.Stat(filepath.Join(opts.ORT, "onnxruntime-node")); err != nil {
			return usageError{fmt.Errorf("--ort %s: no onnxruntime-node there (npm install --prefix .ort --ignore-scripts onnxruntime-node@1.30.0, or --ort \"\" to time ours alone)", opts.ORT)}
		}
	}
	body := benchRequest(m.InputSize())
	var results []loadResult
	// Ours, in this process as pipeline serve runs it.
	s := serve.New(m, serve.Options{Window: opts.Window, MaxRequests: 1024})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := serve.NewHTTPServer("", s)
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/v2/models/condensenet/infer"
	for _, n := range clients {
		results = append(results, load("pipeline serve", url, body, n, opts.Duration))
	}
	srv.Close()
	s.Close()
	if opts.ORT != "" {
		ort, stop, err := startORT(path, opts.ORT)
		if err != nil {
			return err
		}
		for _, n := range clients {
			results = append(results, load("ONNX Runtime (node)", ort+"/v2/models/ort/infer", body, n, opts.Duration))
		}
		stop()
	}
	if g.JSON {
		enc := json.NewEncoder(g.stdout)
		for _, r := range results {
			r.MessageType = "bench_serve"
			enc.Encode(r)
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "server\tclients\trequests/s\tp50 ms\tp99 ms\tfailed\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%d\n", r.Server, r.Clients, r.PerSec, r.P50ms, r.P99ms, r.Failed)
	}
	tw.Flush()
	return nil
}

// A benchBody is a request's body and the length of its JSON header.
type benchBody struct {
	b    []byte
	head int
}

// benchRequest is one random normalised image as binary FP32 data,
// asking for the probabilities in JSON.
func benchRequest(size int) benchBody {
	head, _ := json.Marshal(map[string]any{
		"inputs":  []any{map[string]any{"name": "input", "shape": []int{1, 3, size, size}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": 12 * size * size}}},
		"outputs": []any{map[string]any{"name": "probabilities"}},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	b := slices.Clone(head)
	for range 3 * size * size {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(rng.NormFloat64())))
	}
	return benchBody{b, len(head)}
}

// load runs n clients, each sending body after body for d, and measures.
func load(server, url string, body benchBody, n int, d time.Duration) loadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	var mu sync.Mutex
	var lat []float64
	failed := 0
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body.b))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(body.head))
				t0 := time.Now()
				resp, err := client.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				el := time.Since(t0).Seconds()
				mu.Lock()
				if ok {
					lat = append(lat, el)
				} else {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := time.Since(start).Seconds()
	client.CloseIdleConnections()
	slices.Sort(lat)
	r := loadResult{Server: server, Clients: n, Requests: len(lat), PerSec: float64(len(lat)) / total, Failed: failed}
	if len(lat) > 0 {
		r.P50ms = 1e3 * lat[len(lat)/2]
		r.P99ms = 1e3 * lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// startORT runs the ONNX Runtime reference server on model and returns
// its address and how to stop it.
func startORT(model, modules string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "ort-server-")
	if err != nil {
		return "", nil, err
	}
	script := filepath.Join(dir, "ort_server.js")
	if err := os.WriteFile(script, ortServer, 0o644); err != nil {
		return "", nil, err
	}
	abs, _ := filepath.Abs(modules)
	cmd := exec.Command("node", script, model)
	cmd.Env = append(os.Environ(), "NODE_PATH="+abs)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("node: %w", err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
	line, _ := bufio.NewReader(out).ReadString('\n')
	port := regexp.MustCompile(`listening on (\d+)`).FindStringSubmatch(line)
	if port == nil {
		stop()
		return "", nil, errors.New("the ONNX Runtime server did not start: " + line)
	}
	return "http://127.0.0.1:" + port[1], stop, nil
}
