package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/engine/cuda"
)

func newDevicesCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "devices",
		Short: "List the compute devices and what --device auto would choose",
		Long: `devices shows the CPU and, for the CUDA backend, where the driver, cuBLAS
and NVRTC were found and which GPUs the driver sees, without starting
anything, and what the kernels will be compiled to: machine code (a
cubin) for the GPU's own architecture, with PTX for the driver to compile
as the fallback. An NVRTC newer than the driver is skipped, since the
driver refuses its PTX. Whatever is missing is listed with where it was looked for;
CONDENSENET_LIBCUDA, CONDENSENET_LIBCUBLAS and CONDENSENET_LIBNVRTC name
a library file to use instead of searching.`,
		Example: `  pipeline devices
  pipeline devices --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runDevices(g) },
	}
}

func runDevices(g *Globals) error {
	p := cuda.Detect()
	auto := "cpu"
	if len(p.Problems) == 0 { // what cuda.Available requires
		auto = "cuda:0"
	}
	cpuLine := fmt.Sprintf("%d cores, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpu.Kernels())
	if g.JSON {
		return json.NewEncoder(g.stdout).Encode(struct {
			MessageType string     `json:"message_type"`
			CPU         string     `json:"cpu"`
			CUDA        cuda.Probe `json:"cuda"`
			Auto        string     `json:"auto"`
		}{"devices", cpuLine, p, auto})
	}
	w := g.stdout
	fmt.Fprintf(w, "cpu      %s\n", cpuLine)
	if p.Driver != "" {
		fmt.Fprintf(w, "driver   %s\n", p.Driver)
	}
	for i, d := range p.Devices {
		fmt.Fprintf(w, "cuda:%-3d %s\n", i, d)
	}
	if p.CUBLAS != "" {
		fmt.Fprintf(w, "cuBLAS   %s\n", p.CUBLAS)
	}
	if p.NVRTC != "" {
		fmt.Fprintf(w, "NVRTC    %s\n", p.NVRTC)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "skipped  %s\n", s)
	}
	for _, k := range p.Kernels {
		fmt.Fprintf(w, "kernels  %s\n", k)
	}
	for _, m := range p.Problems {
		fmt.Fprintf(w, "missing  %s\n", m)
	}
	fmt.Fprintf(w, "--device auto uses %s\n", auto)
	return nil
}
