package stages

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/engine/cpu"
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

// newBackend returns the backend for d and says in words which it chose.
// There is no CUDA backend yet (issue #7): auto means the CPU, and asking
// for CUDA is an error wrapping engine.ErrNoDevice.
func newBackend(d device, workers int) (engine.Backend, string, error) {
	switch d.kind {
	case "cuda":
		return nil, "", fmt.Errorf("%w: the CUDA backend is not built yet (issue #7); use --device cpu", engine.ErrNoDevice)
	case "auto":
		b := cpu.New(workers)
		return b, fmt.Sprintf("cpu, %d workers (auto: no CUDA backend in this build)", b.Workers()), nil
	}
	b := cpu.New(workers)
	return b, fmt.Sprintf("cpu, %d workers", b.Workers()), nil
}
