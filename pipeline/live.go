package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/condensenet/condensenet/internal/atomicfile"
	"github.com/condensenet/condensenet/internal/filelock"
)

// A LiveRun is what a run holding a workdir says about itself, so that
// status in another process shows the stage it is really at, judged by
// the settings it really runs with (the workdir remembers a run's
// settings only when it ends).
type LiveRun struct {
	PID      int             `json:"pid"`
	Target   string          `json:"target"`
	Settings json.RawMessage `json:"settings,omitempty"` // Options.Settings
	Stage    string          `json:"stage,omitempty"`    // the stage running now
	Since    time.Time       `json:"stage_since"`
}

const liveFile = "running.json"

// ReadLiveRun returns the run holding workdir's lock, if one does. A run
// that has not said what it does yet (or a binary that never says) comes
// back with its PID alone.
func ReadLiveRun(workdir string) (LiveRun, bool) {
	pid, held, _ := filelock.Holder(filepath.Join(workdir, ".lock"))
	if !held {
		return LiveRun{}, false
	}
	var l LiveRun
	b, err := os.ReadFile(filepath.Join(workdir, liveFile))
	if err != nil || json.Unmarshal(b, &l) != nil || l.PID != pid {
		return LiveRun{PID: pid}, true
	}
	return l, true
}

// say records l in the workdir, atomically; a failure costs only what
// status can tell.
func (r *Runner) say(l LiveRun) {
	b, err := json.Marshal(l)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(r.Store.Dir(), liveFile), b)
	}
	if err != nil {
		r.Report.Warn("run", "could not record the run's progress for status: "+err.Error())
	}
}
