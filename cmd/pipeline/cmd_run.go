package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// RunOptions are the run command's own flags.
type RunOptions struct {
	From        string
	Redo        bool
	VerifyCache bool
}

func (o *RunOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.From, "from", "", "redo this stage and every later one up to the target, even if fresh")
	cmd.Flags().BoolVar(&o.Redo, "redo", false, "redo the named stage even if fresh (with all: redo every stage)")
	cmd.Flags().BoolVar(&o.VerifyCache, "verify-cache", false, "re-run fresh stages and fail if any output differs from the stored one")
}

var stageNames = []string{"fetch", "train", "condense", "verify", "export"}

func newRunCommand(g *Globals) *cobra.Command {
	var opts RunOptions
	cmd := &cobra.Command{
		Use:   "run all|" + strings.Join(stageNames, "|"),
		Short: "Run the pipeline, or one stage of it",
		Long: `run brings a stage's artifact up to date, first bringing up to date the
stages it reads from. A stage whose artifact is fresh (same inputs, same
settings, same code) is skipped and says so. "all" means every stage.

--redo redoes the named stage even if fresh; --from STAGE redoes STAGE and
every stage after it up to the target. Stages after the target are left
alone: if the redone stage's output changed, pipeline status shows them
stale and the next run redoes them.`,
		Example: `  pipeline run all --preset quick
  pipeline run fetch --dataset synthetic
  pipeline run train --redo
  pipeline run all --from condense`,
		Args:      usageArgs(oneStage),
		ValidArgs: append([]string{"all"}, stageNames...),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), opts, g, args[0])
		},
	}
	opts.AddFlags(cmd)
	return cmd
}

// oneStage checks run's argument: all or one stage's name.
func oneStage(cmd *cobra.Command, args []string) error {
	want := "all, " + strings.Join(stageNames, ", ")
	switch {
	case len(args) == 0:
		return fmt.Errorf("run needs what to run: one of %s", want)
	case len(args) > 1:
		return fmt.Errorf("run takes one of %s, got %d arguments (%s)", want, len(args), strings.Join(args, " "))
	case args[0] != "all" && !slices.Contains(stageNames, args[0]):
		return fmt.Errorf("unknown stage %q: want one of %s", args[0], want)
	}
	return nil
}

func runRun(ctx context.Context, opts RunOptions, g *Globals, target string) error {
	if opts.From != "" && !slices.Contains(stageNames, opts.From) {
		return usageError{fmt.Errorf("--from %q: want one of %s", opts.From, strings.Join(stageNames, ", "))}
	}
	if opts.From != "" && target != "all" && slices.Index(stageNames, opts.From) > slices.Index(stageNames, target) {
		return usageError{fmt.Errorf("--from %s comes after the target %s", opts.From, target)}
	}
	if opts.Redo {
		if opts.From != "" {
			return usageError{fmt.Errorf("--redo and --from: give one")}
		}
		opts.From = target
		if target == "all" {
			opts.From = stageNames[0]
		}
	}
	cfg, err := g.config()
	if err != nil {
		return err
	}
	if target != "fetch" { // every other stage may need the device
		if err := stages.CheckDevice(cfg.Train.Device); err != nil {
			return err
		}
	}
	rep := g.reporter()
	r, err := g.runner(cfg, rep)
	if err != nil {
		return err
	}
	if g.remembered {
		rep.Note("settings: as this workdir was last run (" + describe(cfg) + "); --preset starts from a preset instead")
	}
	settings, err := settingsJSON(cfg)
	if err != nil {
		return err
	}
	err = r.Run(ctx, pipeline.Options{Target: target, From: opts.From, VerifyCache: opts.VerifyCache, Settings: settings})
	// Settings are remembered once they have got a run past fetching: a
	// run that failed there (a wrong dataset, say) would make every later
	// command in the workdir repeat its failure.
	var failed *pipeline.StageError
	switch {
	case errors.Is(err, pipeline.ErrLocked), errors.Is(err, pipeline.ErrReadOnly):
	case errors.As(err, &failed) && failed.Stage == stageNames[0]:
		rep.Note("settings: not remembered, since the run stopped before its data was ready; the workdir keeps those of its last run that got that far")
	default:
		remember := cfg
		if g.flags.Changed("force") { // a one-off: the next run condenses as before
			remember.Condense.Force = g.forceBefore
		}
		if serr := saveSettings(r.Store.Dir(), remember); serr != nil {
			rep.Warn("run", serr.Error())
		}
	}
	if err != nil {
		return err
	}
	rep.finish()
	return nil
}
