package main

import (
	"fmt"
	"regexp"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the module version the binary was built from ("devel" for a
// build from a checkout) and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return v + " (" + bi.GoVersion + ")"
}

func newRootCommand(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "pipeline",
		Short: "Train, condense, verify and export CondenseNet on CIFAR or your own images",
		Long: `pipeline trains CondenseNet with learned group convolutions on CIFAR-10,
CIFAR-100 or a folder of your own images (--dataset folder:PATH), on the
CPU or an NVIDIA GPU, condenses it into a network of standard group
convolutions, verifies both networks' accuracy and exports the condensed
one as ONNX.

Stages pass typed artifacts through the workdir (one folder each). A stage
whose inputs and settings have not changed is skipped; an interrupted run
continues where it stopped when started again.`,
		Example: `  pipeline run all --preset quick        # the whole pipeline, small and fast
  pipeline status                        # what exists, what is stale, and why
  pipeline run fetch --data-url ./cifar-10-binary.tar.gz --data-sha256 HEX
  pipeline run all --from train          # keep the data, redo the rest`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetUsageTemplate(root.UsageTemplate() + "\n" + exitHelp)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{plainFlagError(err)} })
	g.addFlags(root)
	root.AddCommand(newRunCommand(g), newStatusCommand(g), newBenchCommand(g), newInfoCommand(g), newInspectCommand(g), newPredictCommand(g), newReportCommand(g), newServeCommand(g), newDevicesCommand(g))
	return root
}

// numberFlag matches pflag's message for a number that did not parse.
var numberFlag = regexp.MustCompile(`^invalid argument "(.*)" for "(.*)" flag: strconv\.Parse(Uint|Int|Float)`)

// plainFlagError says what a number flag wants instead of quoting strconv.
func plainFlagError(err error) error {
	m := numberFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	want := map[string]string{"Uint": "a whole number, 0 or more", "Int": "a whole number", "Float": "a number"}[m[3]]
	return fmt.Errorf("%s %s: want %s", m[2], m[1], want)
}
