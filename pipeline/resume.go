package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/internal/atomicfile"
)

// A ResumePoint says how far a stage's resumable state (its checkpoints)
// has come, so that status can tell an interrupted stage from one never
// run. A stage that keeps such state writes one beside it with
// WriteResumePoint each time it saves.
type ResumePoint struct {
	Key   artifacts.Key `json:"key"` // the stage's key when it was saved
	Done  int           `json:"done"`
	Total int           `json:"total"`
	Unit  string        `json:"unit"` // what Done and Total count: "iterations"
	Note  string        `json:"note,omitempty"`
	Saved time.Time     `json:"saved"`
}

const resumeFile = "resume.json"

// WriteResumePoint records p in a stage's state folder, atomically.
func WriteResumePoint(stateDir string, p ResumePoint) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(stateDir, resumeFile), b)
}

// ReadResumePoint returns the resume point in a stage's state folder, if
// it has a readable one.
func ReadResumePoint(stateDir string) (ResumePoint, bool) {
	var p ResumePoint
	b, err := os.ReadFile(filepath.Join(stateDir, resumeFile))
	if err != nil || json.Unmarshal(b, &p) != nil || p.Total <= 0 {
		return p, false
	}
	return p, true
}

func (p ResumePoint) String() string {
	s := fmt.Sprintf("%s %d of %d", p.Unit, p.Done, p.Total)
	if p.Note != "" {
		s += " (" + p.Note + ")"
	}
	return s + ", saved " + p.Saved.Local().Format("2006-01-02 15:04:05")
}
