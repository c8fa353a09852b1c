package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/imagefolder"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// errUsage marks errors in how the command was called (exit status 2).
var errUsage = errors.New("usage")

type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, errUsage} }

// usageArgs marks a command's argument errors as usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// Globals are the flags every command shares, and the terminal.
type Globals struct {
	Workdir    string
	ConfigFile string
	Preset     string
	Seed       uint64
	Quiet      bool
	JSON       bool
	NoVerify   bool
	// Data flags override the config's data section.
	Dataset, DataURL, DataSHA256, DataMD5, CacheDir string
	Device                                          string
	Force                                           bool
	Opset                                           int
	Preprocess                                      bool

	// remembered is set when config started from the workdir's settings
	// (settings.json) rather than from a preset.
	remembered bool
	// liveRun is the process whose settings config took, a run in
	// progress in the workdir; 0 if none.
	liveRun int
	// forceBefore is condense.force as it was before --force changed it:
	// what the workdir goes on remembering.
	forceBefore bool

	stdout, stderr io.Writer
	// interactive is set when stderr is a terminal: live progress bars,
	// fitted to its width in columns.
	interactive bool
	columns     int
	flags       interface{ Changed(string) bool }
}

func newGlobals(stdout, stderr io.Writer) *Globals {
	g := &Globals{stdout: stdout, stderr: stderr}
	if f, ok := stderr.(*os.File); ok {
		g.interactive = term.IsTerminal(int(f.Fd()))
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			g.columns = w
		}
	}
	return g
}

func (g *Globals) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.Workdir, "workdir", "work", "folder for artifacts and run state")
	f.StringVar(&g.ConfigFile, "config", "", "JSON config file applied on top of the preset")
	f.StringVar(&g.Preset, "preset", stages.DefaultPreset, fmt.Sprintf("starting configuration %v", stages.Presets()))
	f.Uint64Var(&g.Seed, "seed", 0, "random seed (data order, initialisation, synthetic data)")
	f.BoolVarP(&g.Quiet, "quiet", "q", false, "print only warnings and errors")
	f.BoolVar(&g.JSON, "json", false, "machine-readable output: one JSON object per line")
	f.BoolVar(&g.NoVerify, "no-verify", false, "trust artifact files' sizes without re-hashing them")
	f.StringVar(&g.Dataset, "dataset", "", "dataset: cifar10, cifar100, synthetic, or folder:PATH for PATH/train/<class>/ and PATH/val/<class>/ folders of PNG or JPEG images (default from the preset)")
	f.StringVar(&g.DataURL, "data-url", "", "download the archive from this http(s) or file:// URL or path instead")
	f.StringVar(&g.DataSHA256, "data-sha256", "", "expected sha256 of the archive at --data-url")
	f.StringVar(&g.DataMD5, "data-md5", "", "expected md5 of the archive at --data-url")
	f.StringVar(&g.CacheDir, "cache-dir", "", "download cache shared by all workdirs (default: the user cache folder)")
	f.BoolVar(&g.Force, "force", false, "condense a model whose condensation has not finished (keeps each group's in/C most important inputs); for this command only, not remembered")
	f.IntVar(&g.Opset, "opset", 13, "ONNX opset of the exported model (13 to 17)")
	f.BoolVar(&g.Preprocess, "include-preprocessing", false, "export: add the normalisation to the model, so it takes raw RGB in [0, 1]")
	f.StringVar(&g.Device, "device", "", "compute device: auto, cpu, cuda or cuda:N (training and verify: default from the preset, auto; bench: auto; predict: cpu)")
	g.flags = f
}

// config builds the run's configuration: the preset named by --preset, or
// else the settings the workdir was last run with, or else the default
// preset; then the config file, then the flags the user set; then checks it.
// workdirIsFile is the error for a --workdir that names a file.
func workdirIsFile(path string) error {
	return usageError{fmt.Errorf("--workdir %s is a file, not a folder: give the workdir's folder", path)}
}

func (g *Globals) config() (stages.Config, error) {
	if st, err := os.Stat(g.Workdir); err == nil && !st.IsDir() {
		return stages.Config{}, workdirIsFile(g.Workdir)
	}
	cfg, err := stages.Preset(g.Preset)
	if err != nil {
		return cfg, usageError{err}
	}
	if !g.flags.Changed("preset") {
		saved, ok, err := loadSettings(g.Workdir)
		if err != nil {
			return cfg, usageError{err}
		}
		if ok {
			cfg, g.remembered = saved, true
		}
		// A run in progress in the workdir is what reading commands
		// describe: its settings are remembered only when it ends.
		if live, running := pipeline.ReadLiveRun(g.Workdir); running && len(live.Settings) > 0 {
			if now, err := parseSettings(live.Settings, "the run in progress"); err == nil {
				cfg, g.remembered, g.liveRun = now, true, live.PID
			}
		}
	}
	g.Preset = cfg.Preset
	if g.ConfigFile != "" {
		if err := cfg.ReadConfigFile(g.ConfigFile); err != nil {
			return cfg, usageError{err}
		}
	}
	set := func(flag string, dst *string, v string) {
		if g.flags.Changed(flag) {
			*dst = v
		}
	}
	if g.flags.Changed("dataset") && g.Dataset != cfg.Data.Dataset && g.remembered {
		// The remembered source and folder settings were the remembered
		// dataset's; another dataset starts without them.
		d := &cfg.Data
		d.URL, d.SHA256, d.MD5, d.ImageSize, d.Mean, d.Std, d.Strict = "", "", "", 0, nil, nil, false
	}
	set("dataset", &cfg.Data.Dataset, g.Dataset)
	set("data-url", &cfg.Data.URL, g.DataURL)
	set("data-sha256", &cfg.Data.SHA256, g.DataSHA256)
	set("data-md5", &cfg.Data.MD5, g.DataMD5)
	set("cache-dir", &cfg.Data.CacheDir, g.CacheDir)
	set("device", &cfg.Train.Device, g.Device)
	if g.flags.Changed("opset") {
		cfg.Export.Opset = g.Opset
	}
	if g.flags.Changed("include-preprocessing") {
		cfg.Export.IncludePreprocessing = g.Preprocess
	}
	if g.flags.Changed("force") {
		g.forceBefore = cfg.Condense.Force
		cfg.Condense.Force = g.Force
	}
	if g.flags.Changed("seed") {
		cfg.Seed = g.Seed
	}
	if root, ok := stages.FolderPath(cfg.Data.Dataset); ok && root != "" {
		// Remembered as an absolute path, for commands run from elsewhere;
		// "~/" is the home folder, which a shell does not expand after
		// "folder:".
		if rest, ok := strings.CutPrefix(root, "~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				root = filepath.Join(home, rest)
			}
		}
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
		cfg.Data.Dataset = "folder:" + root
		// The network has a class per class folder.
		classes, err := imagefolder.Classes(root)
		switch {
		case err == nil:
			cfg.Model.Classes = len(classes)
		case g.remembered && !g.flags.Changed("dataset") && cfg.Model.Classes > 0:
			// A remembered folder that has gone (moved, renamed): the
			// workdir can still be shown, with its fetch stale.
			fmt.Fprintf(g.stderr, "pipeline: warning: the workdir's image folder cannot be read (%v): if it moved, give --dataset folder:NEWPATH\n", err)
		default:
			return cfg, usageError{fmt.Errorf("--dataset folder:%s: %w", root, err)}
		}
	}
	if err := cfg.Check(); err != nil {
		return cfg, usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return cfg, nil
}

// needWorkdir refuses a workdir that does not exist, for the commands that
// only read one: a mistyped --workdir must not leave an empty folder.
func (g *Globals) needWorkdir() error {
	st, err := os.Stat(g.Workdir)
	if err == nil && st.IsDir() {
		return nil
	}
	if err == nil {
		return workdirIsFile(g.Workdir)
	}
	return fmt.Errorf("no workdir at %s: check --workdir, or make one with \"pipeline run all --workdir %s\"", g.Workdir, g.Workdir)
}

// runner opens the workdir's store and wires the stages to rep.
func (g *Globals) runner(cfg stages.Config, rep pipeline.Reporter) (*pipeline.Runner, error) {
	store, err := artifacts.Open(g.Workdir)
	if err != nil {
		return nil, err
	}
	store.NoVerify = g.NoVerify
	r := &pipeline.Runner{Store: store, Stages: stages.All(cfg), Report: rep}
	if os.Getenv("PIPELINE_DEBUG") == "keyhash" {
		r.KeyDebug = g.stderr
	}
	return r, nil
}

// workdirPath shows an artifact's folder relative to the current one when
// that is shorter.
func workdirPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && len(rel) < len(p) {
			return rel
		}
	}
	return p
}
