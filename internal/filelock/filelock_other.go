//go:build !unix

package filelock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// Without flock, the only portable exclusion is a file created exclusively;
// a crash leaves it behind, so it is not used: locking is a no-op here and
// concurrent runs on one workdir are the user's responsibility.
func lockFile(f *os.File) error   { return nil }
func unlockFile(f *os.File) error { return nil }
