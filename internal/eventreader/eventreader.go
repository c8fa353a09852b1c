// Package eventreader reads TensorBoard event files for tests with a
// reader that no one here wrote: the npm packages tfrecord and protobufjs
// (npm install --prefix .node --ignore-scripts tfrecord@0.2.0
// protobufjs@7.5.4, from the repository root), run by node.
package eventreader

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

//go:embed reader.js
var script []byte

// An Event is a record as the reader decoded it.
type Event struct {
	Wall        float64 `json:"wallTime"`
	Step        int64   `json:"step"`
	FileVersion string  `json:"fileVersion"`
	Summary     struct {
		Value []struct {
			Tag   string  `json:"tag"`
			Value float64 `json:"simpleValue"`
		} `json:"value"`
	} `json:"summary"`
}

// String is the step, the file version if any, and each tag=value.
func (e Event) String() string {
	s := fmt.Sprintf("%d %s", e.Step, e.FileVersion)
	for _, v := range e.Summary.Value {
		s += fmt.Sprintf(" %s=%.6g", v.Tag, v.Value)
	}
	return strings.TrimSpace(strings.ReplaceAll(s, "  ", " "))
}

// Read reads the event file at path. Without node and the packages it
// skips the test, or fails it under CI=true.
func Read(t testing.TB, path string) []Event {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	modules := filepath.Join(filepath.Dir(here), "..", "..", ".node", "node_modules")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(modules, "tfrecord")); err != nil || serr != nil {
		msg := "node and the npm packages tfrecord and protobufjs are needed: npm install --prefix .node --ignore-scripts tfrecord@0.2.0 protobufjs@7.5.4 (from the repository root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	js := filepath.Join(t.TempDir(), "reader.js")
	if err := os.WriteFile(js, script, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, js, path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node reading %s: %v", path, err)
	}
	var events []Event
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		events = append(events, e)
	}
	return events
}
