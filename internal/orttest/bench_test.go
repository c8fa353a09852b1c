//go:build cgo

package orttest

import (
	"fmt"
	"os"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/stages"
)

// BenchmarkCondensedAgainstORT times the condensed CondenseNet-86 on the
// engine and the same network, exported, in ONNX Runtime with as many
// threads as the engine has workers, in one sitting: for each batch size
// the two run in turns of about a second, three turns each, and the
// fastest turn of each counts. It reports both speeds and their ratio
// (ours / ONNX Runtime), and the condensed network against the masked one
// it came from.
//
//	go test -run '^$' -bench CondensedAgainstORT -benchtime 1x ./internal/orttest
func BenchmarkCondensedAgainstORT(b *testing.B) {
	ort.SetSharedLibraryPath(runtimeLibrary(b))
	if err := ort.InitializeEnvironment(); err != nil {
		b.Fatal(err)
	}
	defer ort.DestroyEnvironment()
	be := cpu.New(0)
	// CondenseNet-86, or the network of the preset CONDENSENET_BENCH_PRESET
	// names (condensenet-imagenet, say, at batch 16 and 1).
	cfg, batches := model.CondenseNet86(), []int{64, 1}
	if name := os.Getenv("CONDENSENET_BENCH_PRESET"); name != "" {
		p, err := stages.Preset(name)
		if err != nil {
			b.Fatal(err)
		}
		cfg, batches = p.Model, []int{16, 1}
	}
	for _, n := range batches {
		net, err := model.NewNet(cfg, n, be, 1)
		if err != nil {
			b.Fatal(err)
		}
		images, labels := model.RandomBatch(n, cfg.Input(), cfg.Classes, 1)
		net.SetInput(images, labels)
		masked := func() { net.Forward(false) }
		arch, tensors, err := net.ConvertCurrent()
		if err != nil {
			b.Fatal(err)
		}
		condensed, err := model.NewCondensed(arch, tensors, n, be)
		if err != nil {
			b.Fatal(err)
		}
		logits := make([]float32, n*cfg.Classes)
		ours := func() { condensed.Forward(logits, images) }
		theirs := ortSession(b, arch, tensors, n, be.Workers(), images)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			var best [3]float64 // images/s: ours, ONNX Runtime, masked
			for range b.N {
				for range 3 {
					for i, f := range []func(){ours, theirs, masked} {
						best[i] = max(best[i], imagesPerSec(f, n))
					}
				}
			}
			b.ReportMetric(best[0], "ours-img/s")
			b.ReportMetric(best[1], "ort-img/s")
			b.ReportMetric(best[0]/best[1], "ours/ort")
			b.ReportMetric(best[0]/best[2], "condensed/masked")
		})
	}
}

// imagesPerSec runs f (a pass over n images) for about a second.
func imagesPerSec(f func(), n int) float64 {
	f() // warm
	start, passes := time.Now(), 0
	for time.Since(start) < time.Second {
		f()
		passes++
	}
	return float64(passes*n) / time.Since(start).Seconds()
}

// ortSession returns one ONNX Runtime pass over images (NHWC, as the engine
// takes them; converted to the exported model's NCHW once).
func ortSession(b *testing.B, arch *model.Architecture, tensors []model.Named, n, threads int, images []float32) func() {
	onnx, err := stages.ONNX(arch, tensors, 13)
	if err != nil {
		b.Fatal(err)
	}
	size := arch.Config.Input()
	in, err := ort.NewTensor(ort.NewShape(int64(n), 3, int64(size), int64(size)), relayout(images, n, size, false))
	if err != nil {
		b.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(arch.Config.Classes)))
	if err != nil {
		b.Fatal(err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		b.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	s, err := ort.NewAdvancedSessionWithONNXData(onnx, []string{"input"}, []string{"logits"}, []ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		b.Fatalf("ONNX Runtime refused the model: %v", err)
	}
	b.Cleanup(func() { s.Destroy(); in.Destroy(); out.Destroy(); opts.Destroy() })
	return func() {
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
