package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/onnxio"
	"github.com/condensenet/condensenet/stages"
)

// PredictOptions are the predict command's flags.
type PredictOptions struct {
	Model string
	Top   int
}

func newPredictCommand(g *Globals) *cobra.Command {
	var opts PredictOptions
	cmd := &cobra.Command{
		Use:   "predict IMAGE|FOLDER...",
		Short: "Classify images with the exported model",
		Long: `predict classifies PNG or JPEG images of any size with an exported ONNX
model, run by this program's own evaluator (no other runtime needed), or
with a condensed model on the engine (--model work/condense), and prints the
most likely classes with their probabilities.

A folder stands for the PNG and JPEG files in it and its subfolders. An
image that cannot be read is reported by name and the others are still
classified; the exit status is then 1. A model that is one of a workdir's
artifacts is checked against its manifest first (a damaged file is
refused, naming it), and predict warns when the workdir's settings would
rebuild it.

Each image is resized to 32×32 by bilinear interpolation of the whole
picture (the aspect ratio is not kept; crop first for better results),
then normalised as in training unless the model includes that step.`,
		Example: `  pipeline predict cat.png dog.jpg
  pipeline predict photos/
  pipeline predict --model work/export/model.onnx --top 3 --json photo.jpg
  pipeline predict --model work/condense photo.jpg`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return runPredict(opts, g, args) },
	}
	cmd.Flags().StringVar(&opts.Model, "model", "", "an ONNX file, or a condensed model's folder (work/condense) to run on the engine (default: the workdir's export, work/export/model.onnx)")
	cmd.Flags().IntVar(&opts.Top, "top", 5, "how many classes to print per image")
	return cmd
}

// prediction is one image's result.
type prediction struct {
	Image   string  `json:"image"`
	Classes []class `json:"classes"`
}

type class struct {
	Name        string  `json:"name"`
	Probability float64 `json:"probability"`
}

// failure is an image that could not be classified.
type failure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

// classifier classifies one image file.
type classifier func(path string) ([]class, error)

func runPredict(opts PredictOptions, g *Globals, args []string) error {
	if opts.Top < 1 {
		return usageError{fmt.Errorf("--top %d: want 1 or more", opts.Top)}
	}
	images, failed := expandImages(args)
	path := opts.Model
	if path == "" {
		path = filepath.Join(g.Workdir, "export", "model.onnx")
	}
	var classify classifier
	var err error
	if st, serr := os.Stat(path); serr == nil && st.IsDir() {
		classify, err = condensedClassifier(g, path, opts.Top)
	} else {
		classify, err = onnxClassifier(g, path, opts)
	}
	if err != nil {
		return err
	}
	var results []prediction
	for _, p := range images {
		cs, err := classify(p)
		if err != nil {
			failed = append(failed, failure{p, err.Error()})
			continue
		}
		results = append(results, prediction{Image: p, Classes: cs})
	}
	if err := printPredictions(g, path, results, failed); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d images could not be classified (see above)", len(failed), len(results)+len(failed))
	}
	return nil
}

// expandImages turns the arguments into image files: a folder stands for
// the PNG and JPEG files in it and its subfolders, in name order (links to
// folders are not followed). A path that cannot be read is a failure.
func expandImages(args []string) (images []string, failed []failure) {
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			failed = append(failed, failure{a, err.Error()})
			continue
		}
		if !st.IsDir() {
			images = append(images, a)
			continue
		}
		n := len(images)
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				failed = append(failed, failure{p, err.Error()})
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".png", ".jpg", ".jpeg":
				if d.Type().IsRegular() {
					images = append(images, p)
				}
			}
			return nil
		})
		if err == nil && len(images) == n {
			failed = append(failed, failure{a, "a folder with no PNG or JPEG images in it"})
		}
	}
	return images, failed
}

// onnxClassifier loads an exported model for this program's ONNX
// evaluator. The workdir's own export is verified against its manifest
// first, and a warning says when it is stale.
func onnxClassifier(g *Globals, path string, opts PredictOptions) (classifier, error) {
	if g.flags.Changed("device") && g.Device != "cpu" {
		return nil, usageError{fmt.Errorf("--device %s: an ONNX model runs on this program's CPU evaluator; give a condensed model (--model %s) to run on a device",
			g.Device, filepath.Join(g.Workdir, "condense"))}
	}
	if err := checkArtifactFile(g, path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && opts.Model == "" {
		return nil, fmt.Errorf("no exported model at %s: run \"pipeline run export\" first, or pass --model", path)
	}
	if err != nil {
		return nil, err
	}
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := onnxio.Summarize(m)
	var names []string
	if err := json.Unmarshal([]byte(s.Metadata["classes"]), &names); err != nil || len(names) == 0 {
		return nil, fmt.Errorf("%s has no class names in its metadata: was it exported by this program?", path)
	}
	raw := strings.Contains(s.Metadata["input_layout"], "raw")
	return func(p string) ([]class, error) {
		x, err := loadImage(p, raw)
		if err != nil {
			return nil, err
		}
		out, err := onnxio.Eval(m, map[string]onnxio.Tensor{"input": {Dims: []int{1, 3, 32, 32}, Data: x}})
		if err != nil {
			return nil, err
		}
		return topClasses(out["logits"].Data, names, opts.Top), nil
	}, nil
}

// checkArtifactFile verifies a file that lies in an artifact's folder (one
// with a manifest) against the manifest, and warns when that artifact is
// not what the workdir's settings would make now.
func checkArtifactFile(g *Globals, path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(filepath.Join(dir, artifacts.ManifestName)); err != nil {
		return nil // a file of the user's own
	}
	if _, _, err := openArtifact(dir); err != nil {
		return err
	}
	warnStale(g, dir)
	return nil
}

// openArtifact opens and verifies the artifact in dir, and the store that
// holds it.
func openArtifact(dir string) (*artifacts.Store, *artifacts.Artifact, error) {
	store, err := artifacts.Open(filepath.Dir(dir))
	if err != nil {
		return nil, nil, err
	}
	a, err := store.Get(filepath.Base(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w; run \"pipeline run all\" to rebuild it", dir, err)
	}
	return store, a, nil
}

// warnStale warns when dir is one of the workdir's artifacts and a run
// with the workdir's settings would rebuild it.
func warnStale(g *Globals, dir string) {
	abs, err1 := filepath.Abs(filepath.Dir(dir))
	wd, err2 := filepath.Abs(g.Workdir)
	if err1 != nil || err2 != nil || abs != wd {
		return
	}
	if s, ok := staleStages(g)[filepath.Base(dir)]; ok {
		fmt.Fprintf(g.stderr, "pipeline: warning: %s is %s for the workdir's settings (%s): run \"pipeline run all\" to bring it up to date\n",
			workdirPath(dir), s.State, s.Reason)
	}
}

// condensedClassifier runs a CondensedModel artifact on the engine; the
// class names come from the same workdir's dataset.
func condensedClassifier(g *Globals, dir string, top int) (classifier, error) {
	store, a, err := openArtifact(dir)
	if err != nil {
		return nil, fmt.Errorf("--model %w", err)
	}
	warnStale(g, dir)
	arch, tensors, err := stages.LoadCondensed(a)
	if err != nil {
		return nil, err
	}
	names, err := datasetClasses(store)
	if err != nil {
		return nil, err
	}
	// A few images run fastest on the CPU, which needs no start-up; an
	// explicit --device (cuda, say) is obeyed.
	be, _, err := stages.NewBackend(cmp.Or(g.Device, "cpu"), 0, func(s string) { fmt.Fprintln(g.stderr, s) })
	if err != nil {
		return nil, err
	}
	net, err := model.NewCondensed(arch, tensors, 1, be)
	if err != nil {
		stages.CloseBackend(be)
		return nil, err
	}
	logits := make([]float32, arch.Config.Classes)
	return func(p string) ([]class, error) {
		x, err := loadImage(p, false)
		if err != nil {
			return nil, err
		}
		nhwc := make([]float32, len(x)) // the engine is channels-last
		for c := range cifar.C {
			for i := range cifar.H * cifar.W {
				nhwc[i*cifar.C+c] = x[c*cifar.H*cifar.W+i]
			}
		}
		net.Forward(logits, nhwc)
		if err := be.Sync(); err != nil {
			return nil, err
		}
		return topClasses(logits, names, top), nil
	}, nil
}

// datasetClasses reads the class names of the workdir's dataset.
func datasetClasses(store *artifacts.Store) ([]string, error) {
	a, err := store.Get("fetch")
	if err != nil {
		return nil, fmt.Errorf("class names: %w", err)
	}
	b, err := a.ReadFile("dataset.json")
	if err != nil {
		return nil, err
	}
	var d struct{ Classes []string }
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	return d.Classes, nil
}

func printPredictions(g *Globals, model string, results []prediction, failed []failure) error {
	if g.JSON {
		msg := map[string]any{"message_type": "predict", "model": model, "predictions": results}
		if len(failed) > 0 {
			msg["failed"] = failed
		}
		return json.NewEncoder(g.stdout).Encode(msg)
	}
	for _, r := range results {
		fmt.Fprintf(g.stdout, "%s\n", r.Image)
		for _, c := range r.Classes {
			fmt.Fprintf(g.stdout, "  %-20s %6.2f%%\n", c.Name, 100*c.Probability)
		}
	}
	for _, f := range failed {
		fmt.Fprintf(g.stderr, "pipeline: %s: %s\n", f.Image, f.Error)
	}
	return nil
}

// loadImage decodes an image, resizes it to 32×32 and returns it NCHW,
// normalised unless raw.
func loadImage(path string, raw bool) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("not a readable PNG or JPEG image (%v)", err)
	}
	r := img.Bounds()
	if r.Dx() < 1 || r.Dy() < 1 {
		return nil, fmt.Errorf("empty %s image", format)
	}
	x := make([]float32, cifar.ImageSize)
	for y := range cifar.H {
		for xx := range cifar.W {
			rgb := bilinear(img, (float64(xx)+0.5)*float64(r.Dx())/cifar.W-0.5, (float64(y)+0.5)*float64(r.Dy())/cifar.H-0.5)
			for c := range cifar.C {
				v := float32(rgb[c])
				if !raw {
					v = (v - cifar.Mean[c]) / cifar.Std[c]
				}
				x[(c*cifar.H+y)*cifar.W+xx] = v
			}
		}
	}
	return x, nil
}

// bilinear samples img at (fx, fy), pixel centres at integers, edges
// clamped, as RGB in [0, 1].
func bilinear(img image.Image, fx, fy float64) [3]float64 {
	r := img.Bounds()
	clamp := func(v, lo, hi int) int { return max(lo, min(hi, v)) }
	x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
	ax, ay := fx-float64(x0), fy-float64(y0)
	var out [3]float64
	for _, s := range []struct {
		dx, dy int
		w      float64
	}{{0, 0, (1 - ax) * (1 - ay)}, {1, 0, ax * (1 - ay)}, {0, 1, (1 - ax) * ay}, {1, 1, ax * ay}} {
		px := clamp(r.Min.X+x0+s.dx, r.Min.X, r.Max.X-1)
		py := clamp(r.Min.Y+y0+s.dy, r.Min.Y, r.Max.Y-1)
		cr, cg, cb, _ := img.At(px, py).RGBA()
		out[0] += s.w * float64(cr) / 65535
		out[1] += s.w * float64(cg) / 65535
		out[2] += s.w * float64(cb) / 65535
	}
	return out
}

// topClasses returns the k most probable classes under softmax(logits).
func topClasses(logits []float32, names []string, k int) []class {
	m := logits[0]
	for _, v := range logits {
		m = max(m, v)
	}
	var sum float64
	p := make([]float64, len(logits))
	for i, v := range logits {
		p[i] = math.Exp(float64(v - m))
		sum += p[i]
	}
	cs := make([]class, len(logits))
	for i := range cs {
		cs[i] = class{Name: names[i], Probability: p[i] / sum}
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].Probability > cs[b].Probability })
	return cs[:min(max(k, 1), len(cs))]
}
