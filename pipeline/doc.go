// Package pipeline runs stages in order and decides which of them need to run.
//
// A stage's output artifact is fresh when the key stored in its manifest
// equals the key the stage would have now: the hash of the stage's name and
// code version, the configuration fields it reads and the IDs of its input
// artifacts (see Key). Fresh stages are skipped; the others run and replace
// their artifact atomically. Because artifact IDs depend only on content, a
// stage that re-runs and produces identical bytes leaves everything after it
// fresh, as the go command's build cache does.
//
// The runner is generic: it knows the Stage interface and the artifact store,
// never a concrete stage. Only one run at a time may use a workdir; the lock
// is released by the kernel when a run dies, so a crash never leaves it stuck.
package pipeline

import "errors"

var (
	// ErrLocked means another live process is running in the same workdir.
	ErrLocked = errors.New("pipeline: workdir in use")
	// ErrReadOnly means a run had work to do in a workdir it cannot write.
	ErrReadOnly = errors.New("pipeline: workdir read-only")
	// ErrNondeterministic means --verify-cache found a stage whose output
	// changed although its key did not.
	ErrNondeterministic = errors.New("stage output is not reproducible")
	// ErrVerifyFailed means the verify stage measured the condensed network's
	// accuracy below its tolerance.
	ErrVerifyFailed = errors.New("verification failed")
)
