package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/imageprep"
)

// PredictOptions are the predict command's flags.
type PredictOptions struct {
	Model string
	Top   int
	Batch int
}

func newPredictCommand(g *Globals) *cobra.Command {
	var opts PredictOptions
	cmd := &cobra.Command{
		Use:   "predict IMAGE|FOLDER...",
		Short: "Classify images with the exported model",
		Long: `predict classifies PNG or JPEG images of any size with an exported ONNX
model (rebuilt on this program's engine from the file's weights and
metadata: no other runtime needed) or with a condensed model folder
(--model work/condense), and prints the most likely classes with their
probabilities.

A folder stands for the PNG and JPEG files in it and its subfolders. An
image that cannot be read is reported by name and the others are still
classified; the exit status is then 1. A model that is one of a workdir's
artifacts is checked against its manifest first (a damaged file is
refused, naming it), and predict warns when the workdir's settings would
rebuild it.

Each image is prepared as verify prepared the test images, so that
predict gives the accuracy verify reports: for the CIFAR networks the
whole picture is resized to 32×32 (the aspect ratio is not kept); for the
ImageNet networks its short side is resized to 256 and the centre 224×224
taken, as the official code evaluates. Each pixel is the average of the
picture under it, or interpolated where the picture is smaller, and is
normalised with the training data's mean and std (the export's metadata,
key "preprocessing", says the same). The model runs on this program's
engine, on the CPU, as package classify runs it for Go programs: no ONNX
runtime is needed.`,
		Example: `  pipeline predict cat.png dog.jpg
  pipeline predict --batch 256 photos/
  pipeline predict --model work/export/model.onnx --top 3 --json photo.jpg
  pipeline predict --model work/condense photo.jpg`,
		Args: usageArgs(func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("predict needs images: give PNG or JPEG files or folders of them, as in \"pipeline predict photo.jpg photos/\"")
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error { return runPredict(opts, g, args) },
	}
	cmd.Flags().StringVar(&opts.Model, "model", "", "an ONNX file, or a condensed model's folder (work/condense) to run on the engine (default: the workdir's export, work/export/model.onnx)")
	cmd.Flags().IntVar(&opts.Top, "top", 5, "how many classes to print per image")
	cmd.Flags().IntVar(&opts.Batch, "batch", 64, "how many images to decode and classify at once (all cores share them)")
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

func runPredict(opts PredictOptions, g *Globals, args []string) error {
	if opts.Top < 1 || opts.Batch < 1 {
		if opts.Top < 1 {
			return usageError{fmt.Errorf("--top %d: want 1 or more", opts.Top)}
		}
		return usageError{fmt.Errorf("--batch %d: want 1 or more", opts.Batch)}
	}
	if g.flags.Changed("device") && g.Device != "cpu" {
		return usageError{fmt.Errorf("--device %s: predict runs on the CPU, an image at a time per core, which a few images need no device for", g.Device)}
	}
	images, failed := expandImages(args)
	path := opts.Model
	if path == "" {
		path = filepath.Join(g.Workdir, "export", "model.onnx")
	}
	path, err := modelPath(path)
	if err != nil {
		return usageError{err}
	}
	var m *classify.Model
	if st, serr := os.Stat(path); serr == nil && st.IsDir() {
		m, err = openCondensed(g, path)
	} else {
		m, err = openONNX(g, path, opts)
	}
	if err != nil {
		return err
	}
	if g.JSON {
		json.NewEncoder(g.stdout).Encode(map[string]any{"message_type": "predict", "model": path})
	}
	classified := 0
	for start := 0; start < len(images); start += opts.Batch {
		batch := images[start:min(len(images), start+opts.Batch)]
		imgs, errs := decodeAll(batch)
		var ok []image.Image
		var names []string
		for i, p := range batch {
			if errs[i] != nil {
				failed = append(failed, failure{p, imageprep.Reason(errs[i])})
				continue
			}
			ok, names = append(ok, imgs[i]), append(names, p)
		}
		res, err := m.ClassifyAll(ok)
		if err != nil {
			return err
		}
		var results []prediction
		for i, r := range res {
			var cs []class
			for _, c := range r.Top(opts.Top) {
				cs = append(cs, class{Name: c.Class, Probability: c.Probability})
			}
			results = append(results, prediction{Image: names[i], Classes: cs})
		}
		printPredictions(g, results) // a batch at a time: thousands of images show progress
		classified += len(results)
	}
	printFailures(g, failed)
	if len(failed) > 0 {
		where := "named above"
		if g.JSON {
			where = "the failure lines say why"
		}
		return fmt.Errorf("%d of %d images could not be classified (%s)", len(failed), classified+len(failed), where)
	}
	return nil
}

// decodeAll reads image files, a core each at a time.
func decodeAll(paths []string) ([]image.Image, []error) {
	imgs, errs := make([]image.Image, len(paths)), make([]error, len(paths))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			slots <- struct{}{}
			imgs[i], errs[i] = imageprep.Open(p)
			<-slots
		})
	}
	wg.Wait()
	return imgs, errs
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

// openONNX loads an exported model onto the engine. The workdir's own
// export is verified against its manifest first, and a warning says when
// it is stale.
func openONNX(g *Globals, path string, opts PredictOptions) (*classify.Model, error) {
	if err := checkArtifactFile(g, path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && opts.Model == "" {
		if store, serr := artifacts.Open(g.Workdir); serr == nil {
			if a, gerr := store.Get("verify"); gerr == nil {
				if why := verifyFailure(a); why != "" {
					return nil, fmt.Errorf("no exported model at %s: verify failed, so export refuses the model (%s); or pass --model %s to classify with it anyway",
						path, why, filepath.Join(g.Workdir, "condense"))
				}
			}
		}
		return nil, fmt.Errorf("no exported model at %s: run \"pipeline run export\" first, or pass --model", path)
	}
	if err != nil {
		return nil, err
	}
	m, err := classify.FromONNX(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
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

// modelPath turns --model into an ONNX file or a condensed model folder: a
// workdir stands for its export (or, without one, its condense folder),
// an export folder for its model.onnx. Another folder is an error that
// says which to give.
func modelPath(path string) (string, error) {
	path = filepath.Clean(path)
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return path, nil // a file, or nothing: opening it says what is wrong
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, p := range []string{filepath.Join(path, "export", "model.onnx"), filepath.Join(path, "model.onnx")} {
		if exists(p) {
			return p, nil
		}
	}
	if exists(filepath.Join(path, "condense", "manifest.json")) {
		return filepath.Join(path, "condense"), nil
	}
	var m struct{ Kind string }
	if b, err := os.ReadFile(filepath.Join(path, "manifest.json")); err == nil && json.Unmarshal(b, &m) == nil {
		if m.Kind == artifacts.KindCondensedModel {
			return path, nil
		}
		work := filepath.Dir(path)
		return "", fmt.Errorf("--model %s holds the %s artifact, not a model: give the workdir (%s), its export (%s) or its condense folder (%s)",
			path, m.Kind, work, filepath.Join(work, "export", "model.onnx"), filepath.Join(work, "condense"))
	}
	return "", fmt.Errorf("--model %s is neither a workdir with a model nor a model's folder: give an ONNX file, a workdir, or a workdir's condense folder", path)
}

// openCondensed loads a CondensedModel artifact onto the engine; the class
// names and normalisation come from the same workdir's dataset.
func openCondensed(g *Globals, dir string) (*classify.Model, error) {
	m, err := classify.Open(dir) // verifies the artifact's files
	if err != nil {
		return nil, fmt.Errorf("--model: %w; run \"pipeline run all\" to rebuild it", err)
	}
	warnStale(g, dir)
	return m, nil
}

// printPredictions writes results: with --json a JSON line per image
// ("message_type": "prediction"), else the image and its classes.
func printPredictions(g *Globals, results []prediction) {
	enc := json.NewEncoder(g.stdout)
	for _, r := range results {
		if g.JSON {
			enc.Encode(struct {
				Type string `json:"message_type"`
				prediction
			}{"prediction", r})
			continue
		}
		fmt.Fprintf(g.stdout, "%s\n", r.Image)
		for _, c := range r.Classes {
			fmt.Fprintf(g.stdout, "  %-20s %6.2f%%\n", c.Name, 100*c.Probability)
		}
	}
}

// printFailures names the images that could not be classified: with
// --json a JSON line each ("message_type": "failure"), else on stderr.
func printFailures(g *Globals, failed []failure) {
	enc := json.NewEncoder(g.stdout)
	for _, f := range failed {
		if g.JSON {
			enc.Encode(struct {
				Type string `json:"message_type"`
				failure
			}{"failure", f})
			continue
		}
		fmt.Fprintf(g.stderr, "pipeline: %s: %s\n", f.Image, f.Error)
	}
}
