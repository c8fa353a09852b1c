package pipeline

import (
	"time"

	"github.com/condensenet/condensenet/artifacts"
)

// A Reporter receives what a run is doing. The runner and stages call it;
// only the CLI prints. Implementations must be safe for concurrent use.
type Reporter interface {
	// Note reports something the runner did on its own, such as cleaning up
	// after an interrupted run.
	Note(msg string)
	StageSkip(stage string, a *artifacts.Artifact, reason string)
	StageStart(stage, reason string)
	StageDone(stage string, a *artifacts.Artifact, summary string, elapsed time.Duration)
	// Progress starts a measured task of total units; total -1 means
	// unknown.
	Progress(stage, task string, total int64, unit Unit) Progress
	Warn(stage, msg string)
}

// A Unit is what a measured task counts.
type Unit string

const (
	Batches Unit = "batches"
	Images  Unit = "images"
	Bytes   Unit = "bytes"
)

// A Progress is one measured task. Done must be called once, at the end.
type Progress interface {
	Add(n int64)
	// Status sets a short line shown with the progress (loss, accuracy).
	Status(s string)
	Done()
}

// Discard is a Reporter that reports nothing.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Note(string)                                                  {}
func (discard) StageSkip(string, *artifacts.Artifact, string)                {}
func (discard) StageStart(string, string)                                    {}
func (discard) StageDone(string, *artifacts.Artifact, string, time.Duration) {}
func (discard) Progress(string, string, int64, Unit) Progress                { return discardProgress{} }
func (discard) Warn(string, string)                                          {}

type discardProgress struct{}

func (discardProgress) Add(int64)     {}
func (discardProgress) Status(string) {}
func (discardProgress) Done()         {}
