// Package serve serves a condensed CondenseNet over HTTP on the Open
// Inference Protocol's REST endpoints (the "v2" protocol of KServe, Triton,
// Seldon and MLServer), with its binary tensor data extension, and a page
// where a person drops an image and sees its top classes.
//
// The model takes one input per request, either
//
//	"input"  FP32  [N, 3, S, S]  images as an exported model takes them:
//	                             prepared and normalised, channels first
//	"image"  BYTES [N]           PNG or JPEG files (base64 strings in JSON,
//	                             length-prefixed bytes in binary data)
//
// and answers with up to three outputs: "probabilities" FP32 [N, classes],
// and the top k classes (the request parameter "top_k", 5 unless set) as
// "labels" BYTES [N, k] and "scores" FP32 [N, k].
//
// Images of all requests are queued together, gathered for Window, and run
// on the engine's one-image-per-core path (package classify). The body of
// a request is read whole, within MaxBody and ReadTimeout, before any of
// its images is queued, so a slow or stalled client holds no core; more
// than MaxRequests requests at once are refused with 503. Memory is
// bounded by MaxRequests bodies, MaxImages prepared images across the
// requests, and a core's worth of images being decoded.
package serve

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/internal/semaphore"
)

// Options configure a Server; zero values take the defaults named.
type Options struct {
	Name        string        // the model's name in the URLs ("condensenet")
	Window      time.Duration // how long an image waits for others to run with (0: none)
	MaxBatch    int           // images gathered at most (64)
	MaxBody     int64         // bytes of a request's body at most (64 MiB)
	MaxRequests int           // requests handled at once; more get 503 (64)
	MaxImages   int           // images in one request, and prepared across requests, at most (256)
	// Report, if set, renders the run's report page, served at /report
	// and linked from the page at /.
	Report func() ([]byte, error)
}

func (o *Options) defaults() {
	o.Name = cmp.Or(o.Name, "condensenet")
	o.MaxBatch = cmp.Or(o.MaxBatch, 64)
	o.MaxBody = cmp.Or(o.MaxBody, 64<<20)
	o.MaxRequests = cmp.Or(o.MaxRequests, 64)
	o.MaxImages = cmp.Or(o.MaxImages, 256)
}

// A Server is the HTTP handler of one model. Close it after the HTTP
// server has shut down.
type Server struct {
	m        *classify.Model
	o        Options
	mux      *http.ServeMux
	queue    chan *job
	inflight chan struct{}       // a token per request being handled
	images   *semaphore.Weighted // images prepared, across requests
	decoding *semaphore.Weighted // images being decoded
	draining atomic.Bool
	wg       sync.WaitGroup
}

// New returns a Server of m.
func New(m *classify.Model, o Options) *Server {
	o.defaults()
	s := &Server{m: m, o: o, mux: http.NewServeMux(), queue: make(chan *job, o.MaxBatch), inflight: make(chan struct{}, o.MaxRequests),
		images: semaphore.New(int64(o.MaxImages)), decoding: semaphore.New(int64(runtime.GOMAXPROCS(0)))}
	s.routes()
	s.wg.Go(s.gather)
	return s
}

// Drain makes readiness say no, for a load balancer to stop sending
// requests while those in flight finish (http.Server.Shutdown).
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops the batching; no request may be in flight.
func (s *Server) Close() {
	close(s.queue)
	s.wg.Wait()
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// NewHTTPServer returns an http.Server for h with timeouts that keep slow
// clients from holding connections: a request has 60 s to arrive and its
// answer 60 s to be read.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

//go:embed page.html
var page []byte

func (s *Server) routes() {
	model := "/v2/models/{name}"
	for _, prefix := range []string{model, model + "/versions/{version}"} {
		s.mux.HandleFunc("GET "+prefix, s.modelOnly(s.metadata))
		s.mux.HandleFunc("GET "+prefix+"/ready", s.modelOnly(s.modelReady))
		s.mux.HandleFunc("POST "+prefix+"/infer", s.modelOnly(s.infer))
	}
	s.mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	s.mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	s.mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": "condensenet-pipeline", "version": "2", "extensions": []string{"binary_tensor_data"}})
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	s.mux.HandleFunc("GET /page.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"model": s.o.Name, "report": s.o.Report != nil})
	})
	s.mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		if s.o.Report == nil {
			fail(w, http.StatusNotFound, "no report: this server serves a model file, not a workdir")
			return
		}
		b, err := s.o.Report()
		if err != nil {
			fail(w, http.StatusInternalServerError, "report: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint (GET /v2/health/live, /v2/health/ready, /v2/models/%s, /v2/models/%s/ready; POST /v2/models/%s/infer)",
			r.Method, r.URL.Path, s.o.Name, s.o.Name, s.o.Name))
	})
}

// modelOnly answers 404 for a model other than the one served.
func (s *Server) modelOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name := r.PathValue("name"); name != s.o.Name {
			fail(w, http.StatusNotFound, fmt.Sprintf("unknown model %q: this server serves %q", name, s.o.Name))
			return
		}
		if v := r.PathValue("version"); v != "" && v != "1" {
			fail(w, http.StatusNotFound, fmt.Sprintf("unknown version %q of %s: it has version 1", v, s.o.Name))
			return
		}
		h(w, r)
	}
}

// A metadataTensor describes an input or output; -1 is any size.
type metadataTensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	n, k := int64(s.m.InputSize()), int64(len(s.m.Classes()))
	writeJSON(w, http.StatusOK, map[string]any{
		"name": s.o.Name, "versions": []string{"1"}, "platform": "condensenet",
		"inputs": []metadataTensor{{"input", "FP32", []int64{-1, 3, n, n}}, {"image", "BYTES", []int64{-1}}},
		"outputs": []metadataTensor{{"probabilities", "FP32", []int64{-1, k}}, {"labels", "BYTES", []int64{-1, -1}},
			{"scores", "FP32", []int64{-1, -1}}},
	})
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": s.o.Name, "ready": true})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// fail answers with the protocol's error object.
func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// A job is one image to classify.
type job struct {
	x    []float32
	res  classify.Result
	err  error
	done chan struct{}
}

// gather takes queued images, waits up to Window for more (to MaxBatch),
// and sends each batch to the cores.
func (s *Server) gather() {
	for first := range s.queue {
		batch := []*job{first}
		var timeout <-chan time.Time
		if s.o.Window > 0 {
			timeout = time.After(s.o.Window)
		}
	fill:
		for len(batch) < s.o.MaxBatch {
			var j *job
			ok := true
			if timeout == nil { // only what is queued already
				select {
				case j, ok = <-s.queue:
				default:
					break fill
				}
			} else {
				select {
				case j, ok = <-s.queue:
				case <-timeout:
					break fill
				}
			}
			if !ok {
				break
			}
			batch = append(batch, j)
		}
		s.wg.Go(func() { s.run(batch) })
	}
}

// run classifies a batch, a core per share of it.
func (s *Server) run(batch []*job) {
	workers := min(len(batch), runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(batch); i += workers {
				j := batch[i]
				j.res, j.err = s.m.ClassifyPrepared(j.x)
				close(j.done)
			}
		})
	}
	wg.Wait()
}
