package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/engine/timing"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// BenchOptions are the bench command's flags.
type BenchOptions struct {
	Stages, Growth string
	Batch, Steps   int
	Warmup, Jobs   int
	Profile        string
	Condensed      bool
	Int8           bool
	Layers         bool
}

func (o *BenchOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Stages, "stages", "14-14-14", "layers per dense block (default with --preset: the preset's)")
	f.StringVar(&o.Growth, "growth", "8-16-32", "growth rate per block (default with --preset: the preset's)")
	f.IntVar(&o.Batch, "batch", 64, "batch size")
	f.IntVar(&o.Steps, "steps", 5, "timed steps")
	f.IntVar(&o.Warmup, "warmup", 1, "untimed steps first")
	f.IntVar(&o.Jobs, "jobs", 0, "worker goroutines per kernel (0: one per core)")
	f.StringVar(&o.Profile, "profile", "", "write a CPU profile of the timed steps to this file (go tool pprof reads it)")
	f.BoolVar(&o.Condensed, "condensed", false, "infer: time the condensed network instead of the masked one")
	f.BoolVar(&o.Int8, "int8", false, "infer --condensed: time its int8 form (on the CPU; calibrated on the random input)")
	f.BoolVar(&o.Layers, "layers", false, "also time each kind of layer (waiting for the device after each operation) and its share of the peak")
}

func newBenchCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time training steps or inference passes on synthetic input",
		Example: `  pipeline bench train --stages 14-14-14 --growth 8-16-32 --batch 64 --steps 5
  pipeline bench infer --condensed --batch 1 --steps 50 --json
  pipeline bench infer --preset condensenet-imagenet --condensed --batch 1`,
		Long: `bench times the engine on random input after a warm-up and prints images/s,
the GFLOP/s the convolutions and classifier achieved (a training step
counts three forward passes of work) and their share of the CPU's peak
(measured: one core's rate with its widest FMAs, times the workers), and
the process's peak RSS. --layers adds the time of each kind of layer per
step, so the next bottleneck is visible (int8 layers in GOP/s against the
peak of 512-bit VPDPBUSDs).`,
	}
	for _, mode := range []string{"train", "infer"} {
		var opts BenchOptions
		c := &cobra.Command{
			Use:   mode,
			Short: map[string]string{"train": "Time training steps (forward, backward, SGD update)", "infer": "Time inference passes (running BN statistics, no dropout)"}[mode],
			Example: fmt.Sprintf(`  pipeline bench %s
  pipeline bench %s --stages 8-8-8 --batch 32 --steps 10 --json`, mode, mode),
			Args: usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runBench(cmd.Context(), opts, cmd.Flags().Changed, g, mode == "train")
			},
		}
		opts.AddFlags(c)
		cmd.AddCommand(c)
	}
	cmd.AddCommand(newBenchServeCommand(g))
	return cmd
}

func parseInts(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, "-") {
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, usageError{fmt.Errorf("--%s %q: want positive integers joined by '-', like 14-14-14", flag, s)}
		}
		out = append(out, v)
	}
	return out, nil
}

// benchResult is bench --json's output.
type benchResult struct {
	MessageType   string     `json:"message_type"`
	Mode          string     `json:"mode"`
	Device        string     `json:"device"`
	Stages        []int      `json:"stages"`
	Growth        []int      `json:"growth"`
	Batch         int        `json:"batch"`
	Steps         int        `json:"steps"`
	Workers       int        `json:"workers"`
	ImagesPerSec  float64    `json:"images_per_sec"`
	SecondsPerRun float64    `json:"seconds_per_step"`
	GFLOPs        float64    `json:"gflops"`
	PeakShare     float64    `json:"peak_share"`
	PeakRSSMB     float64    `json:"peak_rss_mb"`
	DeviceMB      float64    `json:"device_mb,omitempty"` // peak device memory, on a GPU
	Loss          float64    `json:"loss"`
	Layers        []layerRow `json:"layers,omitempty"` // with --layers
}

// layerRow is one kind of layer in bench --layers, per step.
type layerRow struct {
	Kind      string  `json:"kind"`
	Calls     int     `json:"calls_per_step"`
	Millis    float64 `json:"ms_per_step"`
	Share     float64 `json:"share_of_step"`
	GFLOPs    float64 `json:"gflops,omitempty"`
	PeakShare float64 `json:"peak_share,omitempty"`
}

// layerRows turns timed kinds into rows per step; peak is the workers'
// GFLOP/s and peak8 their int8 GOP/s, which int8 layers are taken
// against (0 on a device).
func layerRows(kinds []timing.Kind, steps int, perStep, peak, peak8 float64) []layerRow {
	var rows []layerRow
	for _, k := range kinds {
		r := layerRow{Kind: k.Name, Calls: k.Calls / steps, Millis: 1e3 * k.Seconds / float64(steps), Share: k.Seconds / float64(steps) / perStep}
		of := peak
		if strings.Contains(k.Name, "int8") {
			of = peak8
		}
		if k.FLOPs > 0 && k.Seconds > 0 {
			r.GFLOPs = k.FLOPs / k.Seconds / 1e9
			if of > 0 {
				r.PeakShare = r.GFLOPs / of
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func printLayers(w io.Writer, rows []layerRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  layer kind\tcalls\tms/step\tof step\tG(FL)OP/s\tof peak\t")
	for _, r := range rows {
		gf, pk := "", ""
		if r.GFLOPs > 0 {
			gf = fmt.Sprintf("%.1f", r.GFLOPs)
		}
		if r.PeakShare > 0 {
			pk = fmt.Sprintf("%.0f%%", 100*r.PeakShare)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.1f%%\t%s\t%s\t\n", r.Kind, r.Calls, r.Millis, 100*r.Share, gf, pk)
	}
	tw.Flush()
}

func runBench(ctx context.Context, opts BenchOptions, changed func(flag string) bool, g *Globals, train bool) error {
	// CondenseNet-86, or the network of a --preset given; --stages and
	// --growth change either.
	cfg := model.CondenseNet86()
	var err error
	fromPreset := g.flags.Changed("preset")
	if fromPreset {
		p, err := stages.Preset(g.Preset)
		if err != nil {
			return usageError{err}
		}
		cfg = p.Model
	}
	if !fromPreset || changed("stages") {
		if cfg.Stages, err = parseInts("stages", opts.Stages); err != nil {
			return err
		}
	}
	if !fromPreset || changed("growth") {
		if cfg.Growth, err = parseInts("growth", opts.Growth); err != nil {
			return err
		}
	}
	if opts.Batch < 1 || opts.Steps < 1 || opts.Warmup < 0 {
		return usageError{fmt.Errorf("--batch %d, --steps %d, --warmup %d: want ≥ 1, ≥ 1, ≥ 0", opts.Batch, opts.Steps, opts.Warmup)}
	}
	if opts.Condensed && train {
		return usageError{fmt.Errorf("--condensed: the condensed network is for inference only (bench infer)")}
	}
	if opts.Int8 && !opts.Condensed {
		return usageError{fmt.Errorf("--int8: only the condensed network has an int8 form (add --condensed)")}
	}
	device := cmp.Or(g.Device, "auto")
	be, which, err := stages.NewBackend(device, opts.Jobs, func(s string) { fmt.Fprintln(g.stderr, s) })
	if err != nil {
		return err
	}
	defer stages.CloseBackend(be)
	var timed *timing.Backend
	if opts.Layers {
		timed = timing.New(be)
		be = timed
	}
	net, err := model.NewNet(cfg, opts.Batch, be, g.Seed)
	if err != nil {
		return usageError{err}
	}
	var condensed *model.Condensed
	if opts.Condensed {
		arch, tensors, err := net.ConvertCurrent()
		if err != nil {
			return err
		}
		if opts.Int8 {
			condensed, err = benchInt8(arch, tensors, opts, be, g.Seed)
		} else {
			condensed, err = model.NewCondensed(arch, tensors, opts.Batch, be)
		}
		if err != nil {
			return err
		}
	}
	images, labels := model.RandomBatch(opts.Batch, cfg.Input(), cfg.Classes, g.Seed)
	logits := make([]float32, opts.Batch*cfg.Classes)
	// A step is what training's and verify's are: the batch goes in, the
	// logits come out (on a device, an upload and a download, which
	// --layers times); it ends with Sync, so that queued work is timed too.
	step := func() error {
		switch {
		case condensed != nil:
			condensed.Forward(logits, images)
		case !train:
			net.SetInput(images, labels)
			net.Forward(false)
			net.Logits(logits)
		default:
			net.SetInput(images, labels)
			net.Forward(true)
			net.ZeroGrad()
			net.Backward()
			net.Update(0.1, 0.9, 1e-4)
			net.Logits(logits)
		}
		return be.Sync()
	}
	mode := map[bool]string{true: "train", false: "infer"}[train]
	var rep reporter = g.reporter()
	for range opts.Warmup {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}
	if opts.Profile != "" {
		f, err := os.Create(opts.Profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if g.JSON {
		rep = &textReporter{quiet: true} // --json prints the one result object only
	}
	if timed != nil {
		timed.Reset()
	}
	prog := rep.Progress("bench", mode+" steps", int64(opts.Steps), pipeline.Batches)
	start := time.Now()
	for range opts.Steps {
		if err := ctx.Err(); err != nil {
			prog.Done()
			return err
		}
		if err := step(); err != nil {
			prog.Done()
			return err
		}
		prog.Add(1)
	}
	el := time.Since(start)
	prog.Done()
	perStep := el.Seconds() / float64(opts.Steps)
	work := float64(net.FLOPs())
	if train {
		work *= 3 // backward does twice the forward's multiply-adds
	}
	if condensed != nil {
		mode = "infer --condensed"
		if opts.Int8 {
			mode += " --int8"
		}
		work = 2 * float64(cfg.CondensedCost().FLOPs) * float64(opts.Batch) // 2 per multiply-add, as above
	}
	workers := 0 // a device backend has none
	if timed != nil {
		be = timed.Backend
	}
	if c, ok := be.(*cpu.Backend); ok {
		workers = c.Workers()
		which = fmt.Sprintf("cpu (%s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	res := benchResult{
		MessageType: "bench", Mode: mode, Device: which,
		Stages: cfg.Stages, Growth: cfg.Growth, Batch: opts.Batch, Steps: opts.Steps, Workers: workers,
		ImagesPerSec: float64(opts.Batch) / perStep, SecondsPerRun: perStep, GFLOPs: work / perStep / 1e9,
		PeakRSSMB: peakRSSMB(), Loss: net.Loss(),
	}
	if dev, ok := be.(interface{ PeakMemory() int64 }); ok {
		res.DeviceMB = float64(dev.PeakMemory()) / 1e6
	}
	peak, peak8 := 0.0, 0.0 // GFLOP/s and int8 GOP/s of the workers' cores
	if workers > 0 {
		peak = cpu.PeakGFLOPs() * float64(min(workers, runtime.NumCPU()))
		peak8 = cpu.PeakInt8GOPs() * float64(min(workers, runtime.NumCPU()))
		res.PeakShare = res.GFLOPs / peak
		if opts.Int8 && peak8 > 0 { // nearly all its work is int8
			res.PeakShare = res.GFLOPs / peak8
		}
	}
	if timed != nil {
		res.Layers = layerRows(timed.Kinds(), opts.Steps, perStep, peak, peak8)
	}
	if g.JSON {
		return json.NewEncoder(g.stdout).Encode(res)
	}
	on := res.Device
	if workers > 0 {
		on = fmt.Sprintf("%d workers, %s", workers, res.Device)
	}
	fmt.Fprintf(g.stdout, "bench %s: CondenseNet stages %v growth %v, batch %d, %s\n", mode, cfg.Stages, cfg.Growth, opts.Batch, on)
	fmt.Fprintf(g.stdout, "  %.1f images/s (%.3f s per step over %d steps)\n", res.ImagesPerSec, perStep, opts.Steps)
	fmt.Fprintf(g.stdout, "  %.1f GFLOP/s in convolutions and classifier (%.2f GFLOP per image)", res.GFLOPs, work/float64(opts.Batch)/1e9)
	switch {
	case workers > 0 && opts.Int8 && peak8 > 0:
		fmt.Fprintf(g.stdout, ", %.0f%% of the %.0f GOP/s int8 peak of %d cores (%s)", 100*res.PeakShare, peak8, min(workers, runtime.NumCPU()), cpu.Kernels())
	case workers > 0:
		fmt.Fprintf(g.stdout, ", %.0f%% of the %.0f GFLOP/s peak of %d cores (%s)", 100*res.PeakShare, peak, min(workers, runtime.NumCPU()), cpu.Kernels())
	}
	fmt.Fprintln(g.stdout)
	if res.Layers != nil {
		printLayers(g.stdout, res.Layers)
	}
	fmt.Fprintf(g.stdout, "  peak RSS %.0f MB", res.PeakRSSMB)
	if res.DeviceMB > 0 {
		fmt.Fprintf(g.stdout, ", device memory %.0f MB", res.DeviceMB)
	}
	fmt.Fprintln(g.stdout)
	return nil
}

// benchInt8 returns the int8 form of the condensed network, calibrated on
// a random batch; it runs on the CPU alone.
func benchInt8(arch *model.Architecture, tensors []model.Named, opts BenchOptions, be engine.Backend, seed uint64) (*model.Condensed, error) {
	inner := be
	if t, ok := be.(*timing.Backend); ok {
		inner = t.Backend
	}
	if _, ok := inner.(*cpu.Backend); !ok {
		return nil, usageError{fmt.Errorf("--int8: int8 inference runs on the CPU; add --device cpu")}
	}
	calib, _ := model.RandomBatch(opts.Batch, arch.Config.Input(), arch.Config.Classes, seed+1)
	scales, err := model.Calibrate(arch, tensors, calib, opts.Batch, be)
	if err != nil {
		return nil, err
	}
	return model.NewCondensedInt8(arch, tensors, scales, opts.Batch, be)
}
