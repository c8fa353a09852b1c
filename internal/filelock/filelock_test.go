package filelock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSecondLockRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("second TryLock = %v, want HeldError naming pid %d", err, os.Getpid())
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l, err = TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if l.Stale != 0 {
		t.Errorf("Stale = %d after a clean unlock, want 0", l.Stale)
	}
	l.Unlock()
}

func TestDeadHolderTakenOver(t *testing.T) {
	// A lock file left behind by a process that no longer exists.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, []byte(strconv.Itoa(dead)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock over a dead holder's file: %v", err)
	}
	defer l.Unlock()
	if l.Stale != dead {
		t.Errorf("Stale = %d, want %d", l.Stale, dead)
	}
	b, _ := os.ReadFile(path)
	if got, _ := strconv.Atoi(string(b[:len(b)-1])); got != os.Getpid() {
		t.Errorf("lock file names pid %q, want %d", b, os.Getpid())
	}
}

// TestOtherProcess holds the lock in a child process (this test binary run
// again) and checks that the parent is refused with the child's PID.
func TestOtherProcess(t *testing.T) {
	if path := os.Getenv("FILELOCK_HOLD"); path != "" {
		if _, err := TryLock(path); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		os.Stdin.Read(make([]byte, 1)) // hold until the parent closes stdin
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestOtherProcess$")
	cmd.Env = append(os.Environ(), "FILELOCK_HOLD="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("child did not take the lock: %q %v", buf, err)
	}
	_, err := TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != cmd.Process.Pid {
		t.Errorf("TryLock while child holds it = %v, want HeldError naming pid %d", err, cmd.Process.Pid)
	}
	// Kill the child without unlocking: the kernel releases the lock.
	cmd.Process.Kill()
	cmd.Wait()
	stdin.Close()
	l, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after the holder was killed: %v", err)
	}
	if l.Stale != cmd.Process.Pid {
		t.Errorf("Stale = %d, want the killed child's %d", l.Stale, cmd.Process.Pid)
	}
	l.Unlock()
}

// Holder sees a held lock and its PID, and asking leaves no trace: the
// lock stays free and a dead holder's PID stays recorded.
func TestHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if pid, held, err := Holder(path); err != nil || held || pid != 0 {
		t.Fatalf("no lock file: %d %v %v", pid, held, err)
	}
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if pid, held, err := Holder(path); err != nil || !held || pid != os.Getpid() {
		t.Errorf("while held: %d %v %v", pid, held, err)
	}
	l.Unlock()
	os.WriteFile(path, []byte("424242\n"), 0o644) // a holder that died
	if pid, held, err := Holder(path); err != nil || held || pid != 0 {
		t.Errorf("after release: %d %v %v", pid, held, err)
	}
	l, err = TryLock(path)
	if err != nil || l.Stale != 424242 {
		t.Fatalf("TryLock after Holder: %v, stale %d", err, l.Stale)
	}
	l.Unlock()
}
