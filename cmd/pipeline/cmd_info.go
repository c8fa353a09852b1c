package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/model"
)

// InfoOptions override the preset's architecture.
type InfoOptions struct {
	Stages, Growth string
}

func newInfoCommand(g *Globals) *cobra.Command {
	var opts InfoOptions
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print a CondenseNet's FLOPs and parameters, training and condensed",
		Long: `info counts FLOPs and parameters by the paper's rules (multiply-adds of
convolutions and the classifier, one op per ReLU element, k·k per average
pooling output, nothing for BatchNorm and index-select) for the training
network (dense 1×1 convolutions under masks) and the condensed one, without
training anything. The architecture comes from the preset and --config
unless --stages and --growth are given.`,
		Example: `  pipeline info
  pipeline info --stages 14-14-14 --growth 8-16-32 --json
  pipeline info --preset quick`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runInfo(opts, g) },
	}
	cmd.Flags().StringVar(&opts.Stages, "stages", "", "layers per dense block, like 14-14-14")
	cmd.Flags().StringVar(&opts.Growth, "growth", "", "growth rate per block, like 8-16-32")
	return cmd
}

func runInfo(opts InfoOptions, g *Globals) error {
	cfg, err := g.config()
	if err != nil {
		return err
	}
	m := cfg.Model
	if opts.Stages != "" {
		if m.Stages, err = parseInts("stages", opts.Stages); err != nil {
			return err
		}
	}
	if opts.Growth != "" {
		if m.Growth, err = parseInts("growth", opts.Growth); err != nil {
			return err
		}
	}
	if err := m.Check(); err != nil {
		return usageError{fmt.Errorf("invalid architecture:\n%w", err)}
	}
	tr, co := m.TrainingCost(), m.CondensedCost()
	if g.JSON {
		return json.NewEncoder(g.stdout).Encode(struct {
			MessageType string       `json:"message_type"`
			Model       model.Config `json:"model"`
			Training    model.Cost   `json:"training"`
			Condensed   model.Cost   `json:"condensed"`
		}{"info", m, tr, co})
	}
	fmt.Fprintf(g.stdout, "CondenseNet stages %v growth %v (G=%d, C=%d, %d classes)\n", m.Stages, m.Growth, m.Group1x1, m.CondenseFactor, m.Classes)
	fmt.Fprintf(g.stdout, "  training network:  %7.1fM FLOPs  %6.2fM params\n", float64(tr.FLOPs)/1e6, float64(tr.Params)/1e6)
	fmt.Fprintf(g.stdout, "  condensed network: %7.1fM FLOPs  %6.2fM params\n", float64(co.FLOPs)/1e6, float64(co.Params)/1e6)
	return nil
}
