package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"sort"
	"strings"
)

// Weight files are safetensors: an 8-byte little-endian header length, a
// JSON header mapping each tensor's name to its dtype, shape and byte range,
// then the raw little-endian data. PyTorch loads them with
// safetensors.torch.load_file.

// ErrFormat means a weight file is not valid safetensors of the kind
// expected.
var ErrFormat = errors.New("model: invalid weight file")

// A FormatError says what is wrong with a weight file.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "model: invalid weight file: " + e.Reason }
func (e *FormatError) Unwrap() error { return ErrFormat }

// A Named is a float32 tensor with its name and shape.
type Named struct {
	Name  string
	Shape []int
	Data  []float32
}

type tensorHeader struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header we accept (a CondenseNet-86 checkpoint's
// is about 100 KB).
const maxHeader = 64 << 20

// WriteSafetensors writes tensors (in name order) and metadata to w.
func WriteSafetensors(w io.Writer, tensors []Named, meta map[string]string) error {
	sorted := append([]Named(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("model: tensor %q written twice", t.Name)
		}
		if n := shapeSize(t.Shape); n != len(t.Data) {
			return fmt.Errorf("model: tensor %s: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		header[t.Name] = tensorHeader{DType: "F32", Shape: t.Shape, Offsets: [2]int64{off, off + 4*int64(len(t.Data))}}
		off += 4 * int64(len(t.Data))
	}
	h, err := json.Marshal(header) // maps marshal in key order: deterministic
	if err != nil {
		return err
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	return writeData(w, sorted)
}

// writeData writes the tensors' values, little-endian, in order.
func writeData(w io.Writer, sorted []Named) error {
	buf := make([]byte, 0, 1<<16)
	for _, t := range sorted {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// checksumKey is the metadata entry WriteChecked adds: the sha256 of the
// data section, which safetensors itself does not protect.
const checksumKey = "data_sha256"

// WriteChecked is WriteSafetensors with the data's sha256 in the metadata,
// for files whose damage must be detected (checkpoints).
func WriteChecked(w io.Writer, tensors []Named, meta map[string]string) error {
	sorted := append([]Named(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	if err := writeData(h, sorted); err != nil {
		return err
	}
	m := maps.Clone(meta)
	if m == nil {
		m = map[string]string{}
	}
	m[checksumKey] = hex.EncodeToString(h.Sum(nil))
	return WriteSafetensors(w, sorted, m)
}

// ReadChecked reads a file written by WriteChecked and verifies its data
// against the recorded sha256, returning a *FormatError on a mismatch.
func ReadChecked(b []byte) (map[string]Named, map[string]string, error) {
	ts, meta, err := ReadSafetensors(b)
	if err != nil {
		return nil, nil, err
	}
	want, ok := meta[checksumKey]
	if !ok {
		return nil, nil, &FormatError{"no " + checksumKey + " in the metadata"}
	}
	hl := binary.LittleEndian.Uint64(b)
	sum := sha256.Sum256(b[8+hl:])
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, nil, &FormatError{fmt.Sprintf("data sha256 %.12s…, the header records %.12s… (the file was damaged)", got, want)}
	}
	return ts, meta, nil
}

// ReadSafetensors parses a whole safetensors file. Only float32 tensors
// are accepted. It returns a *FormatError for anything malformed: a header
// length beyond the file, invalid JSON, byte ranges that overlap, leave
// gaps or disagree with the shape.
func ReadSafetensors(b []byte) (map[string]Named, map[string]string, error) {
	bad := func(format string, args ...any) error { return &FormatError{fmt.Sprintf(format, args...)} }
	if len(b) < 8 {
		return nil, nil, bad("%d bytes, shorter than the 8-byte header length (truncated?)", len(b))
	}
	hl := binary.LittleEndian.Uint64(b)
	if hl > maxHeader || hl > uint64(len(b)-8) {
		return nil, nil, bad("header length %d, file has %d bytes after it (truncated or not safetensors)", hl, len(b)-8)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b[8 : 8+hl]))
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, bad("header is not a JSON object: %v", err)
	}
	data := b[8+hl:]
	var meta map[string]string
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	out := map[string]Named{}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, bad("__metadata__: %v", err)
			}
			continue
		}
		var th tensorHeader
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(&th); err != nil {
			return nil, nil, bad("tensor %q: %v", name, err)
		}
		if th.DType != "F32" {
			return nil, nil, bad("tensor %q has dtype %s, want F32", name, th.DType)
		}
		n := shapeSize(th.Shape)
		start, end := th.Offsets[0], th.Offsets[1]
		if n < 0 || start < 0 || end < start || end > int64(len(data)) || end-start != 4*int64(n) {
			return nil, nil, bad("tensor %q: shape %v and byte range [%d, %d) do not fit %d data bytes", name, th.Shape, start, end, len(data))
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[start+4*int64(i):]))
		}
		out[name] = Named{Name: name, Shape: th.Shape, Data: v}
		spans = append(spans, span{name, start, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var at int64
	for _, s := range spans {
		if s.start != at {
			return nil, nil, bad("tensor %q starts at byte %d, expected %d (overlap or gap)", s.name, s.start, at)
		}
		at = s.end
	}
	if at != int64(len(data)) {
		return nil, nil, bad("%d bytes after the last tensor (truncated or padded?)", int64(len(data))-at)
	}
	return out, meta, nil
}

// shapeSize returns the number of elements of shape, or -1 if a dimension
// is negative or the product overflows.
func shapeSize(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return -1
		}
		n *= d
	}
	return n
}

// checkNames reports the first of want missing from got or of the wrong shape.
func checkNames(got map[string]Named, want []Param, prefix string) error {
	var missing []string
	for _, p := range want {
		t, ok := got[prefix+p.Name]
		if !ok {
			missing = append(missing, prefix+p.Name)
			continue
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(p.Shape) {
			return &FormatError{fmt.Sprintf("tensor %s has shape %v, this network's is %v", p.Name, t.Shape, p.Shape)}
		}
	}
	if len(missing) > 0 {
		if len(missing) > 3 {
			missing = append(missing[:3], fmt.Sprintf("and %d more", len(missing)-3))
		}
		return &FormatError{"missing tensors: " + strings.Join(missing, ", ")}
	}
	return nil
}
