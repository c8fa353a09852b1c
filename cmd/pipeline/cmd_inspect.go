package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/onnxio"
)

func newInspectCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect [FILE.onnx]",
		Short: "Describe an ONNX model: inputs, outputs, opset, operators, parameters, metadata",
		Long: `inspect reads an ONNX file, checks its structure (every node's inputs
defined, initializers the size their dimensions say) and prints what it
holds. A file that is not ONNX, or is damaged, is refused with the reason.
Without a file, it reads the workdir's export (work/export/model.onnx).`,
		Example: `  pipeline inspect work/export/model.onnx
  pipeline inspect model.onnx --json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return runInspect(g, filepath.Join(g.Workdir, "export", "model.onnx"))
			}
			return runInspect(g, args[0])
		},
	}
}

func runInspect(g *Globals, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s := onnxio.Summarize(m)
	if g.JSON {
		return json.NewEncoder(g.stdout).Encode(struct {
			MessageType string `json:"message_type"`
			onnxio.Summary
		}{"inspect", s})
	}
	w := g.stdout
	fmt.Fprintf(w, "%s: IR version %d, opset %d, produced by %s\n", path, s.IRVersion, s.Opset, s.Producer)
	for _, v := range s.Inputs {
		fmt.Fprintf(w, "  input  %s %v\n", v.Name, v.Shape)
	}
	for _, v := range s.Outputs {
		fmt.Fprintf(w, "  output %s %v\n", v.Name, v.Shape)
	}
	fmt.Fprintf(w, "  %d nodes:", s.Nodes)
	for _, op := range s.OpNames() {
		fmt.Fprintf(w, " %s %d", op, s.Ops[op])
	}
	fmt.Fprintf(w, "\n  %d parameters (%.2fM)\n", s.Parameters, float64(s.Parameters)/1e6)
	for _, k := range slices.Sorted(maps.Keys(s.Metadata)) {
		v := s.Metadata[k]
		if len(v) > 100 {
			v = v[:97] + "..."
		}
		fmt.Fprintf(w, "  %s: %s\n", k, v)
	}
	return nil
}
