package pipeline

import (
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/condensenet/condensenet/artifacts"
)

// FormatVersion salts every key, so that a change in how keys are built
// never matches a key built the old way.
const FormatVersion = 1

// A KeyHash collects the labelled lines that make up a stage's key.
// Stages write their configuration fields to it, one "name value" line each.
type KeyHash struct {
	config []string
	head   []string
	part   strings.Builder
}

// NewKeyHash starts the key of stage at code version v.
func NewKeyHash(stage string, v int) *KeyHash {
	return &KeyHash{head: []string{
		fmt.Sprintf("pipeline format %d", FormatVersion),
		fmt.Sprintf("stage %s v%d", stage, v),
	}}
}

// Write adds configuration lines. Lines are sorted before hashing, so the
// order in which a stage writes its fields does not matter.
func (h *KeyHash) Write(p []byte) (int, error) {
	h.part.Write(p)
	s := h.part.String()
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		h.config = append(h.config, "config "+s[:i])
		s = s[i+1:]
	}
	h.part.Reset()
	h.part.WriteString(s)
	return len(p), nil
}

// Input adds the ID of the artifact produced by stage.
func (h *KeyHash) Input(stage string, id artifacts.ID) {
	h.head = append(h.head, fmt.Sprintf("input %s %s", stage, id))
}

// Lines returns every line that goes into the key, in hashing order.
func (h *KeyHash) Lines() []string {
	if h.part.Len() > 0 {
		panic("pipeline: key line without trailing newline: " + h.part.String())
	}
	cfg := slices.Clone(h.config)
	slices.Sort(cfg)
	return append(slices.Clone(h.head), cfg...)
}

// Sum returns the key.
func (h *KeyHash) Sum() artifacts.Key {
	s := sha256.New()
	for _, l := range h.Lines() {
		io.WriteString(s, l)
		io.WriteString(s, "\n")
	}
	var k artifacts.Key
	s.Sum(k[:0])
	return k
}

// explainKeyChange says in words how the lines of a stored key differ from
// the current ones: which stage version, input or setting changed.
func explainKeyChange(old, cur []string) string {
	oldBy, curBy := keyFields(old), keyFields(cur)
	var changes []string
	for _, l := range cur {
		name, val := splitKeyLine(l)
		switch was, ok := oldBy[name]; {
		case !ok:
			changes = append(changes, fmt.Sprintf("%s added (%s)", name, val))
		case was != val:
			changes = append(changes, fmt.Sprintf("%s changed: %s → %s", name, shorten(was), shorten(val)))
		}
	}
	for _, l := range old {
		name, val := splitKeyLine(l)
		if _, ok := curBy[name]; !ok {
			changes = append(changes, fmt.Sprintf("%s removed (was %s)", name, shorten(val)))
		}
	}
	if len(changes) == 0 {
		return "key changed"
	}
	return strings.Join(changes, "; ")
}

func keyFields(lines []string) map[string]string {
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		name, val := splitKeyLine(l)
		m[name] = val
	}
	return m
}

// splitKeyLine splits "config lr 0.1" into ("lr", "0.1"), "input fetch ID"
// into ("input fetch", "ID") and "stage train v2" into ("stage train", "v2").
func splitKeyLine(l string) (name, val string) {
	kind, rest, _ := strings.Cut(l, " ")
	n, v, _ := strings.Cut(rest, " ")
	if kind == "config" {
		return n, v
	}
	return kind + " " + n, v
}

// shorten abbreviates 64-digit hashes so that explanations stay readable.
func shorten(v string) string {
	if len(v) == 64 && strings.Trim(v, "0123456789abcdef") == "" {
		return v[:8]
	}
	return v
}
