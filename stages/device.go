package stages

import (
	"fmt"
	"io"
	"os"
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
// cuda or cuda:N) and says in words which it chose. auto takes the GPU when
// cuda.Available says it can start, and the CPU otherwise, giving the
// reason; a GPU that is available but then fails to start is an error, not
// a silent fall back, since the train stage's key already names it (see
// engineKind). CPU backends use workers goroutines (0: one per core); note,
// if not nil, hears of slow one-time work such as compiling GPU kernels.
// Release it with CloseBackend.
func NewBackend(device string, workers int, note func(string)) (engine.Backend, string, error) {
	d, err := parseDevice(device)
	if err != nil {
		return nil, "", fmt.Errorf("device %q: %w", device, err)
	}
	d, reason := d.resolve()
	if d.kind == "cuda" {
		// CONDENSENET_CUDA_SYNC=1 locates a GPU fault: the run is slower,
		// and the error names the kernel that failed.
		b, err := cuda.Open(d.index, cuda.Options{Log: note, SyncEach: os.Getenv("CONDENSENET_CUDA_SYNC") == "1"})
		if err != nil {
			return nil, "", err
		}
		return b, b.Name(), nil
	}
	b := cpu.New(workers)
	return b, fmt.Sprintf("cpu, %d workers%s", b.Workers(), reason), nil
}

// CheckDevice returns an error wrapping engine.ErrNoDevice when a
// train.device setting asks for a GPU that cannot start, so that a command
// can refuse before doing any work.
func CheckDevice(setting string) error {
	d, err := parseDevice(setting)
	if err != nil || d.kind != "cuda" {
		return err
	}
	if err := cuda.Available(); err != nil {
		return fmt.Errorf("%w: device %s: %w", engine.ErrNoDevice, setting, err)
	}
	return nil
}

// resolve turns auto into cuda when cuda.Available says the GPU can start,
// and into cpu otherwise, with the reason in words.
func (d device) resolve() (device, string) {
	if d.kind != "auto" {
		return d, ""
	}
	err := cuda.Available()
	switch {
	case err == nil:
		return device{kind: "cuda"}, ""
	case cuda.NoDevice(err):
		return device{kind: "cpu"}, " (auto: no CUDA device)"
	}
	return device{kind: "cpu"}, " (auto: a GPU is there but CUDA is not usable: " + err.Error() + ")"
}

// engineKind returns the kind of backend NewBackend would pick for a
// train.device setting: "cpu" or "cuda". It goes into the train stage's key,
// since the two round differently.
func engineKind(setting string) string {
	d, _ := parseDevice(setting)
	d, _ = d.resolve()
	return d.kind
}

// CloseBackend releases a device backend's memory; the CPU's needs nothing.
func CloseBackend(b engine.Backend) {
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
}
