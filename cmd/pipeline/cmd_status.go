package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/pipeline"
)

func newStatusCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each stage's artifact: fresh, stale, missing or corrupt, and why",
		Long: `status compares every stage's stored artifact with what the current
configuration (preset, --config and flags) would produce, and says in words
why a stage would run: never run, a setting or input changed, or a file
failed verification. It changes nothing and does not wait for a running
pipeline.`,
		Example: `  pipeline status
  pipeline status --dataset synthetic    # would switching datasets redo everything?
  pipeline status --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runStatus(g) },
	}
}

// stageStatus is one stage in status --json.
type stageStatus struct {
	Stage    string     `json:"stage"`
	State    string     `json:"state"`
	Reason   string     `json:"reason"`
	Kind     string     `json:"kind,omitempty"`
	Artifact string     `json:"artifact,omitempty"`
	Path     string     `json:"path,omitempty"`
	Created  *time.Time `json:"created,omitempty"`
}

func runStatus(g *Globals) error {
	if err := g.needWorkdir(); err != nil {
		return err
	}
	cfg, err := g.config()
	if err != nil {
		return err
	}
	r, err := g.runner(cfg, pipeline.Discard)
	if err != nil {
		return err
	}
	var rows []stageStatus
	failed := ""
	for _, s := range r.Status() {
		row := stageStatus{Stage: s.Stage, State: string(s.State), Reason: s.Reason}
		// A failed verification is a fresh artifact, and export refuses it:
		// both rows say so, and what to do.
		if s.Stage == "verify" && s.State == pipeline.Fresh {
			if why := verifyFailure(s.Artifact); why != "" {
				row.State, row.Reason, failed = "failed", why, why
			}
		}
		if s.Stage == "export" && failed != "" && s.State != pipeline.Fresh {
			row.Reason = "refused: verify failed"
		}
		if a := s.Artifact; a != nil {
			row.Kind, row.Artifact, row.Path, row.Created = a.Kind, a.ID.String(), a.Dir, &a.Created
		}
		rows = append(rows, row)
	}
	if g.JSON {
		return json.NewEncoder(g.stdout).Encode(map[string]any{
			"message_type": "status", "workdir": g.Workdir, "preset": g.Preset, "remembered_settings": g.remembered, "stages": rows})
	}
	from := ""
	switch {
	case g.liveRun != 0:
		from = fmt.Sprintf(" (the settings of the run in progress, process %d: %s)", g.liveRun, describe(cfg))
	case g.remembered:
		from = " (the settings of its last run: " + describe(cfg) + ")"
	}
	fmt.Fprintf(g.stdout, "workdir %s, preset %s%s\n\n", workdirPath(r.Store.Dir()), g.Preset, from)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTATE\tARTIFACT\tWHY")
	for _, row := range rows {
		id := "-"
		if row.Artifact != "" {
			id = row.Artifact[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Stage, row.State, id, row.Reason)
	}
	return tw.Flush()
}

// verifyFailure says how a verify artifact failed and the two ways on;
// "" if it passed or cannot be read.
func verifyFailure(a *artifacts.Artifact) string {
	if a == nil {
		return ""
	}
	r, err := artifacts.LoadReport(a)
	if err != nil || r.Passed {
		return ""
	}
	return fmt.Sprintf("condensing raised the top-1 error by %.2f points, more than the tolerance of %.2f: train longer, or accept it with a higher verify.tolerance (--config)",
		100*r.Difference, r.Tolerance)
}
