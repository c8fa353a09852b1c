package stages

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
	"github.com/condensenet/condensenet/engine/cuda"
)

// device is a parsed train.device: auto, cpu or cuda with an index.
type device struct {
	kind  string // "auto", "cpu" or "cuda"
	index int
}

func parseDevice(s string) (device, error) {
	switch {
	case s == "auto" || s == "cpu" || s == "cuda":
		return device{kind: s}, nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || i < 0 {
			return device{}, fmt.Errorf("want auto, cpu, cuda or cuda:N")
		}
		return device{kind: "cuda", index: i}, nil
	}
	return device{}, fmt.Errorf("want auto, cpu, cuda or cuda:N")
}

// NewBackend returns the backend for a train.device setting (auto, cpu,
// cuda or cuda:N) and says in words which it chose: auto takes the GPU
// when a driver and a device are there and the CPU otherwise, giving the
// reason. CPU backends use workers goroutines (0: one per core); note, if
// not nil, hears of slow one-time work such as compiling GPU kernels.
// Release it with CloseBackend.
func NewBackend(device string, workers int, note func(string)) (engine.Backend, string, error) {
	d, err := parseDevice(device)
	if err != nil {
		return nil, "", fmt.Errorf("device %q: %w", device, err)
	}
	switch d.kind {
	case "cuda":
		b, err := cuda.Open(d.index, cuda.Options{Log: note})
		if err != nil {
			return nil, "", err
		}
		return b, b.Name(), nil
	case "auto":
		g, err := cuda.Open(0, cuda.Options{Log: note})
		if err == nil {
			return g, g.Name() + " (auto)", nil
		}
		why := "no CUDA device"
		if !cuda.NoDevice(err) {
			why = "the GPU did not start: " + err.Error()
		}
		b := cpu.New(workers)
		return b, fmt.Sprintf("cpu, %d workers (auto: %s)", b.Workers(), why), nil
	}
	b := cpu.New(workers)
	return b, fmt.Sprintf("cpu, %d workers", b.Workers()), nil
}

// CloseBackend releases a device backend's memory; the CPU's needs nothing.
func CloseBackend(b engine.Backend) {
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
}
