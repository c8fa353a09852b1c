package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/internal/atomicfile"
	"github.com/condensenet/condensenet/model"
)

// A checkpoint is everything needed to continue training exactly: the
// network's tensors (weights, BN statistics, masks and condensation
// counters, momentum) in a checksummed safetensors file, and trainState in
// its metadata. Random streams (data order, crops, flips, dropout) are
// derived from the seed and the iteration, so they need no saved state.
//
// Files are checkpoint-<iteration>.safetensors in the stage's state
// folder, written to a temporary name, synced and renamed; the newest two
// are kept, so a damaged newest one falls back to the one before.

const (
	checkpointFormat  = "condensenet-checkpoint"
	checkpointVersion = "1"
	keepCheckpoints   = 2
)

// trainState is the non-tensor part of a checkpoint.
type trainState struct {
	Iteration int                `json:"iteration"`        // next iteration to run
	NetStep   uint64             `json:"net_step"`         // training forwards so far (seeds dropout)
	Metrics   []artifacts.Metric `json:"metrics"`          // finished epochs
	Epoch     epochSums          `json:"epoch"`            // the current epoch so far
	Device    string             `json:"device,omitempty"` // the backend that wrote it
}

// epochSums accumulates an epoch's training statistics.
type epochSums struct {
	Loss    float64 `json:"loss"`
	Top1    int     `json:"top1"`
	Top5    int     `json:"top5"`
	Seen    int     `json:"seen"`
	Steps   int     `json:"steps"`
	Seconds float64 `json:"seconds"`
}

func checkpointName(iteration int) string {
	return fmt.Sprintf("checkpoint-%09d.safetensors", iteration)
}

// saveCheckpoint writes a checkpoint atomically and prunes old ones.
func saveCheckpoint(dir string, key artifacts.Key, net *model.Net, st trainState) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	meta := map[string]string{"format": checkpointFormat, "version": checkpointVersion, "key": key.String(), "state": string(state),
		"rng": "none saved: data order, crops, flips and dropout derive from the seed and the iteration"}
	if err := model.WriteChecked(&buf, net.Tensors(true), meta); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	path := filepath.Join(dir, checkpointName(st.Iteration))
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	names, err := checkpoints(dir)
	if err != nil {
		return err
	}
	for _, old := range names[min(len(names), keepCheckpoints):] {
		os.Remove(filepath.Join(dir, old)) // an old checkpoint left behind costs only disk
	}
	return nil
}

// checkpoints lists the folder's checkpoints, newest first.
func checkpoints(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "checkpoint-") && strings.HasSuffix(n, ".safetensors") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

// loadCheckpoint restores the newest usable checkpoint made under one of
// keys into net. Damaged checkpoints and ones from other settings are
// reported through warn and skipped; ok is false when none is usable.
func loadCheckpoint(dir string, keys []artifacts.Key, net *model.Net, warn func(string)) (st trainState, ok bool, err error) {
	names, err := checkpoints(dir)
	if err != nil {
		return st, false, err
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			warn(fmt.Sprintf("cannot read %s (%v); trying an older checkpoint", path, err))
			continue
		}
		ts, meta, err := model.ReadChecked(b)
		if err == nil && (meta["format"] != checkpointFormat || meta["version"] != checkpointVersion) {
			err = fmt.Errorf("format %q version %q, want %s %s", meta["format"], meta["version"], checkpointFormat, checkpointVersion)
		}
		if err != nil {
			warn(fmt.Sprintf("checkpoint %s is damaged (%v); trying an older one", path, err))
			continue
		}
		if !slices.ContainsFunc(keys, func(k artifacts.Key) bool { return meta["key"] == k.String() }) {
			warn(fmt.Sprintf("checkpoint %s was made with other settings or inputs; not resuming from it", path))
			continue
		}
		if err := json.Unmarshal([]byte(meta["state"]), &st); err != nil {
			warn(fmt.Sprintf("checkpoint %s has unreadable state (%v); trying an older one", path, err))
			continue
		}
		if err := net.LoadTensors(ts, true); err != nil {
			warn(fmt.Sprintf("checkpoint %s does not fit this network (%v); trying an older one", path, err))
			continue
		}
		net.SetStep(st.NetStep)
		return st, true, nil
	}
	return st, false, nil
}
