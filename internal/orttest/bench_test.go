//go:build cgo

package orttest

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/stages"
)

// BenchmarkCondensedAgainstORT times the condensed CondenseNet-86 on the
// engine and the same network, exported, in ONNX Runtime, float32 and
// int8 (the QDQ export of its int8 form, calibrated on the batch), in one
// sitting: for each batch size each runs in turns of about a second,
// three turns each, and the fastest turn counts. ONNX Runtime runs in
// both of its configurations on these cores: one session with a thread
// per worker, and one single-threaded session per worker side by side
// (as processes of a throughput server would); the better one counts.
// It reports the speeds and the ratios ours / ONNX Runtime, int8 /
// float32, and the condensed network against the masked one it came from.
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
	workers := be.Workers()
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
		scales, err := model.Calibrate(arch, tensors, images, n, be)
		if err != nil {
			b.Fatal(err)
		}
		int8, err := model.NewCondensedInt8(arch, tensors, scales, n, be)
		if err != nil {
			b.Fatal(err)
		}
		float, err := stages.ONNX(arch, tensors, 13)
		if err != nil {
			b.Fatal(err)
		}
		qdq, err := stages.ONNXInt8(arch, tensors, scales, 13)
		if err != nil {
			b.Fatal(err)
		}
		logits := make([]float32, n*cfg.Classes)
		type run struct {
			name   string
			images int // per call of f
			f      func()
		}
		runs := []run{
			{"ours", n, func() { condensed.Forward(logits, images) }},
			{"ours-int8", n, func() { int8.Forward(logits, images) }},
			{"masked", n, masked},
			{"ort", n, ortSession(b, float, arch, n, workers, images)},
			{"ort-int8", n, ortSession(b, qdq, arch, n, workers, images)},
		}
		if n > 1 { // a batch of 1 is a latency: one session with every thread
			runs = append(runs, run{"ort-sessions", workers * n, ortSideBySide(b, float, arch, n, workers, images)},
				run{"ort-int8-sessions", workers * n, ortSideBySide(b, qdq, arch, n, workers, images)})
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			best := map[string]float64{} // images/s
			for range b.N {
				for range 3 {
					for _, r := range runs {
						best[r.name] = max(best[r.name], imagesPerSec(r.f, r.images))
					}
				}
			}
			ort, ort8 := max(best["ort"], best["ort-sessions"]), max(best["ort-int8"], best["ort-int8-sessions"])
			for _, r := range runs {
				b.ReportMetric(best[r.name], r.name+"-img/s")
			}
			b.ReportMetric(best["ours"]/ort, "ours/ort")
			b.ReportMetric(best["ours-int8"]/ort8, "ours-int8/ort-int8")
			b.ReportMetric(best["ours-int8"]/best["ours"], "int8/float32")
			b.ReportMetric(best["ours"]/best["masked"], "condensed/masked")
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

// ortSession returns one pass over images (NHWC, as the engine takes
// them; converted to the model's NCHW once) of an ONNX Runtime session of
// onnx with threads threads.
func ortSession(b *testing.B, onnx []byte, arch *model.Architecture, n, threads int, images []float32) func() {
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

// ortSideBySide returns a pass of sessions single-threaded sessions at
// once, each over its own copy of images.
func ortSideBySide(b *testing.B, onnx []byte, arch *model.Architecture, n, sessions int, images []float32) func() {
	var passes []func()
	for range sessions {
		passes = append(passes, ortSession(b, onnx, arch, n, 1, images))
	}
	return func() {
		var wg sync.WaitGroup
		for _, pass := range passes {
			wg.Go(pass)
		}
		wg.Wait()
	}
}
