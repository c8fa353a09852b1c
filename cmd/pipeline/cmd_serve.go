package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/serve"
)

// ServeOptions are the serve command's flags.
type ServeOptions struct {
	Model string
	Addr  string
	serve.Options
}

func newServeCommand(g *Globals) *cobra.Command {
	var opts ServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the condensed model over HTTP (Open Inference Protocol)",
		Long: `serve answers inference requests for the condensed model over HTTP, on
the Open Inference Protocol's REST endpoints (the "v2" protocol that
KServe, Triton, Seldon and MLServer speak), with its binary tensor data
extension:

  GET  /v2/health/live, /v2/health/ready
  GET  /v2/models/NAME            inputs, outputs, datatypes, shapes
  GET  /v2/models/NAME/ready
  POST /v2/models/NAME/infer

The model takes one input: "input", FP32 [N, 3, S, S], images prepared and
normalised as the exported model takes them; or "image", BYTES [N], PNG
or JPEG files (base64 strings in JSON; length-prefixed bytes as binary
data), prepared as predict prepares them. It answers with
"probabilities" FP32 [N, classes], and the top k classes (request
parameter "top_k", default 5) as "labels" BYTES [N, k] and "scores" FP32
[N, k]. Errors are 4xx with {"error": "..."}.

At / a page takes a dropped image and shows its top classes, and links to
the workdir's report (/report, made afresh on each visit).

Images of all requests run on the engine, an image per core; --window
holds them to run together. A request's body is read whole (within
--max-body and 60 s) before its images are queued, so a slow client holds
no core; beyond --max-requests at once, requests get 503. SIGINT or
SIGTERM stops accepting requests and lets those in flight finish.`,
		Example: `  pipeline serve                              # the workdir's condensed model on :8080
  pipeline serve --model work/export/model.onnx --addr 127.0.0.1:9000
  curl -s localhost:8080/v2/models/condensenet`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), opts, g) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", "", "an ONNX file or a condensed model's folder (default: the workdir's condense/)")
	f.StringVar(&opts.Addr, "addr", ":8080", "the address to listen on")
	f.StringVar(&opts.Name, "name", "condensenet", "the model's name in the URLs")
	f.DurationVar(&opts.Window, "window", 0, "how long an image waits for others to run with (0: runs at once)")
	f.IntVar(&opts.MaxBatch, "max-batch", 64, "images run together at most")
	f.Int64Var(&opts.MaxBody, "max-body", 64<<20, "bytes of a request at most")
	f.IntVar(&opts.MaxRequests, "max-requests", 64, "requests handled at once; more get 503")
	f.IntVar(&opts.MaxImages, "max-images", 256, "images in one request at most, and prepared at once across requests")
	return cmd
}

func runServe(ctx context.Context, opts ServeOptions, g *Globals) error {
	if opts.MaxBatch < 1 || opts.MaxBody < 1 || opts.MaxRequests < 1 || opts.MaxImages < 1 || opts.Window < 0 {
		return usageError{errors.New("--max-batch, --max-body, --max-requests and --max-images must be 1 or more, and --window 0 or more")}
	}
	path := opts.Model
	if path == "" {
		path = filepath.Join(g.Workdir, "condense")
	}
	var m *classify.Model
	var err error
	if st, serr := os.Stat(path); serr == nil && st.IsDir() {
		m, err = openCondensed(g, path)
	} else {
		m, err = openONNX(g, path, PredictOptions{Model: opts.Model})
	}
	if err != nil {
		return err
	}
	if opts.Model == "" {
		opts.Report = func() ([]byte, error) { return renderReport(g, 10*time.Second) }
	}
	s := serve.New(m, opts.Options)
	defer s.Close()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return usageError{fmt.Errorf("--addr %s: %w", opts.Addr, err)}
	}
	srv := serve.NewHTTPServer(opts.Addr, s)
	fmt.Fprintf(g.stdout, "serving %s (%d classes, input %d×%d) as %q on http://%s/\n", path, len(m.Classes()), m.InputSize(), m.InputSize(), opts.Name, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// SIGINT or SIGTERM (main cancels ctx): new connections are refused at
	// once; requests in flight finish.
	s.Drain()
	fmt.Fprintln(g.stderr, "serve: stopping; finishing the requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	<-done
	return nil
}
