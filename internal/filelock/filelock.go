// Package filelock is an inter-process lock on a file that records its
// holder's PID. The lock is released by the kernel when the holder dies, so a
// crashed run never leaves it stuck; the PID only serves the error message.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrLocked is returned (wrapped in a *HeldError) when another live process
// holds the lock.
var ErrLocked = errors.New("filelock: held by another process")

// A HeldError names the process that holds a lock.
type HeldError struct {
	Path string
	PID  int // 0 when the holder's PID could not be read
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by process %d", e.Path, e.PID)
}

func (e *HeldError) Unwrap() error { return ErrLocked }

// A Lock is a held lock. Release it with Unlock.
type Lock struct {
	f    *os.File
	path string
	// Stale is the PID recorded by an earlier holder that died without
	// unlocking (0 if there was none). The lock now belongs to us.
	Stale int
}

// TryLock takes the lock at path without waiting. It returns a *HeldError if
// another process (or another Lock in this one) holds it.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, &HeldError{Path: path, PID: readPID(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f, path: path, Stale: readPID(path)}
	if err := writePID(f); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("lock %s: record pid: %w", path, err)
	}
	return l, nil
}

// Unlock releases the lock. The file stays (removing it would race with a
// process that has just opened it) but no longer names a holder.
func (l *Lock) Unlock() error {
	// Truncate so that a reader never blames a process that has let go.
	// Ignoring the error is safe: the kernel lock below is what counts.
	_ = l.f.Truncate(0)
	err := unlockFile(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// Holder reports whether another process (or another Lock in this one)
// holds the lock at path, and its PID, without taking the lock for longer
// than the check and without recording itself in the file.
func Holder(path string) (pid int, held bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		if errors.Is(err, errWouldBlock) {
			return readPID(path), true, nil
		}
		return 0, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return 0, false, unlockFile(f)
}
