package tfevents

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Any bytes read as a whole-record prefix, and reopening them keeps a
// file that reads back.
func FuzzRead(f *testing.F) {
	f.Add(record(marshal(Event{Step: 3, Scalars: []Scalar{{"a", 1}}})), int64(2))
	f.Add(append(record(marshal(Event{FileVersion: fileVersion})), 1, 2, 3), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, through int64) {
		dir := t.TempDir()
		p := filepath.Join(dir, "events.out.tfevents.1.h.train")
		os.WriteFile(p, b, 0o644)
		if _, err := ReadFile(p); err != nil {
			t.Fatal(err)
		}
		w, err := Open(dir, "train", through)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(through+1, time.Unix(1, 0), Scalar{"b", 2})
		w.Close()
		events, err := ReadFile(p)
		if err != nil || len(events) == 0 || events[len(events)-1].Step != through+1 {
			t.Errorf("after reopening through %d: %+v, %v", through, events, err)
		}
	})
}
