package tfevents

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/condensenet/condensenet/internal/eventreader"
)

func scalarsAt(step int64) []Scalar {
	return []Scalar{{"train/loss", 2.5 / float64(step)}, {"train/lr", 0.1 * float64(step)}}
}

// Events read back as written; reopened through a step, the file keeps
// the records up to it and drops the rest and a torn tail.
func TestWriteReopen(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "train", 0)
	if err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 5; step++ {
		if err := w.Write(step, time.Unix(1000+step, 0), scalarsAt(step)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := ReadFile(w.Path)
	if err != nil || len(events) != 6 || events[0].FileVersion != "brain.Event:2" {
		t.Fatalf("read %d events, %v: %+v", len(events), err, events)
	}
	for i, e := range events[1:] {
		step := int64(i + 1)
		want := scalarsAt(step)
		if e.Step != step || e.Wall != float64(1000+step) || len(e.Scalars) != 2 || e.Scalars[0].Tag != want[0].Tag ||
			e.Scalars[0].Value != float64(float32(want[0].Value)) || e.Scalars[1].Value != float64(float32(want[1].Value)) {
			t.Errorf("event %d = %+v", i+1, e)
		}
	}
	// A torn record at the end (a crash mid-write), then a resume from step 3.
	f, _ := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(record(marshal(Event{Step: 6}))[:10])
	f.Close()
	w, err = Open(dir, "train", 3)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(4, time.Unix(2000, 0), Scalar{"train/loss", 9})
	w.Close()
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
		t.Errorf("files %v, want the one reopened", names)
	}
	events, _ = ReadFile(w.Path)
	var steps []int64
	for _, e := range events {
		steps = append(steps, e.Step)
	}
	if !slices.Equal(steps, []int64{0, 1, 2, 3, 4}) || events[4].Wall != 2000 {
		t.Errorf("steps after resuming from 3: %v", steps)
	}
	// Another source gets its own file in the same run folder.
	v, err := Open(dir, "verify", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if v.Path == w.Path || !strings.Contains(filepath.Base(v.Path), "tfevents") {
		t.Errorf("verify's file %s", v.Path)
	}
}

// A damaged record ends what is read, however long it claims to be.
func TestReadDamaged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "events.out.tfevents.1.h.train")
	good := record(marshal(Event{Step: 1, Scalars: []Scalar{{"a", 1}}}))
	bad := record(marshal(Event{Step: 2}))
	bad[len(bad)-1] ^= 1
	huge := slices.Clone(good)
	huge[7] = 0x7f // length and its CRC disagree
	os.WriteFile(p, slices.Concat(good, bad, good, huge), 0o644)
	events, err := ReadFile(p)
	if err != nil || len(events) != 1 || events[0].Step != 1 {
		t.Errorf("read %+v, %v", events, err)
	}
}

// The file reads in a reader no one here wrote (see eventreader).
func TestIndependentReader(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "train", 0)
	if err != nil {
		t.Fatal(err)
	}
	for step := int64(10); step <= 30; step += 10 {
		w.Write(step, time.Unix(5000, 500_000_000), scalarsAt(step)...)
	}
	w.Close()
	events := eventreader.Read(t, w.Path)
	var got []string
	for _, e := range events {
		if e.Step > 0 && math.Abs(e.Wall-5000.5) > 1e-6 {
			t.Errorf("step %d at %v, want 5000.5", e.Step, e.Wall)
		}
		got = append(got, e.String())
	}
	want := []string{"0 brain.Event:2", "10 train/loss=0.25 train/lr=1", "20 train/loss=0.125 train/lr=2", "30 train/loss=0.0833333 train/lr=3"}
	if !slices.Equal(got, want) {
		t.Errorf("the npm reader reads\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
