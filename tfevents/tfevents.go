// Package tfevents writes TensorBoard's event files: scalars a training
// run logs, which TensorBoard (and anything reading its format) plots as
// they arrive.
//
// A file is a sequence of TFRecords (a little-endian uint64 length, the
// masked CRC32C of those 8 bytes, the data, the masked CRC32C of the
// data), each holding one tensorflow.Event protocol buffer. The first
// event names the file's version; the others carry a Summary of scalars
// at a step. Only that subset of event.proto and summary.proto is
// written, field by field with protowire, and read back.
package tfevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// A Scalar is one value a step logs, under a tag such as "train/loss"
// (TensorBoard groups tags by what comes before the slash).
type Scalar struct {
	Tag   string
	Value float64
}

// An Event is one record of an event file.
type Event struct {
	Wall        float64 // seconds since 1970
	Step        int64
	FileVersion string // the first event's only field
	Scalars     []Scalar
}

// fileVersion is what TensorBoard expects the first event to say.
const fileVersion = "brain.Event:2"

// The fields of tensorflow.Event, Summary and Summary.Value used here.
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string
	eventSummary     = 5 // Summary
	summaryValue     = 1 // repeated Value
	valueTag         = 1 // string
	valueSimple      = 2 // float
)

// A Writer appends events to one file. Each record is written whole by
// one write, so a process killed at any point leaves whole records; a
// record torn by a crash of the machine is dropped when the file is
// opened again.
type Writer struct {
	f    *os.File
	Path string
}

// Open opens the event file of source ("train") in dir, creating both if
// needed. A file that is there already keeps its records up to step
// through, what a resumed run has done, and loses those after it (an
// interrupted run's past its checkpoint, which the resumed run logs
// again) and any torn record at its end.
func Open(dir, source string, through int64) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*."+source))
	if len(old) > 0 {
		slices.Sort(old) // names start with the time they were made
		return reopen(old[len(old)-1], through)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	// TensorBoard reads every file whose name holds "tfevents".
	p := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s.%s", now.Unix(), strings.ReplaceAll(host, "/", "_"), source))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, Path: p}
	if err := w.write(Event{Wall: seconds(now), FileVersion: fileVersion}); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func reopen(p string, through int64) (*Writer, error) {
	events, ends, err := read(p)
	if err != nil {
		return nil, err
	}
	keep := int64(0)
	for i, e := range events {
		if e.Step > through {
			break
		}
		keep = ends[i]
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return nil, err
	}
	w := &Writer{f: f, Path: p}
	if keep == 0 { // not even the version record survived
		if err := w.write(Event{Wall: seconds(time.Now()), FileVersion: fileVersion}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// Write appends the scalars of step, logged at wall.
func (w *Writer) Write(step int64, wall time.Time, scalars ...Scalar) error {
	return w.write(Event{Wall: seconds(wall), Step: step, Scalars: scalars})
}

func (w *Writer) write(e Event) error {
	if _, err := w.f.Write(record(marshal(e))); err != nil {
		return fmt.Errorf("tfevents: %w", err)
	}
	return nil
}

// Close syncs the file to disk and closes it.
func (w *Writer) Close() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func marshal(e Event) []byte {
	var b []byte
	b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(e.Wall))
	if e.Step != 0 {
		b = protowire.AppendTag(b, eventStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Step))
	}
	if e.FileVersion != "" {
		b = protowire.AppendTag(b, eventFileVersion, protowire.BytesType)
		b = protowire.AppendString(b, e.FileVersion)
	}
	if len(e.Scalars) > 0 {
		var sum []byte
		for _, s := range e.Scalars {
			var v []byte
			v = protowire.AppendTag(v, valueTag, protowire.BytesType)
			v = protowire.AppendString(v, s.Tag)
			v = protowire.AppendTag(v, valueSimple, protowire.Fixed32Type)
			v = protowire.AppendFixed32(v, math.Float32bits(float32(s.Value)))
			sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
			sum = protowire.AppendBytes(sum, v)
		}
		b = protowire.AppendTag(b, eventSummary, protowire.BytesType)
		b = protowire.AppendBytes(b, sum)
	}
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's checksum: CRC32C, rotated and offset so that a
// CRC of data holding CRCs is not degenerate.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

func record(data []byte) []byte {
	b := make([]byte, 12, 16+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(data)))
	binary.LittleEndian.PutUint32(b[8:], maskedCRC(b[:8]))
	b = append(b, data...)
	return binary.LittleEndian.AppendUint32(b, maskedCRC(data))
}

// ReadFile reads the events of a file, up to a torn or damaged record.
func ReadFile(p string) ([]Event, error) {
	events, _, err := read(p)
	return events, err
}

// read returns the whole records' events and the offset each ends at.
func read(p string) ([]Event, []int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	var events []Event
	var ends []int64
	for off := 0; len(b)-off >= 16; {
		n := binary.LittleEndian.Uint64(b[off:])
		if maskedCRC(b[off:off+8]) != binary.LittleEndian.Uint32(b[off+8:]) || n > uint64(len(b)-off-16) {
			break
		}
		data := b[off+12 : off+12+int(n)]
		if maskedCRC(data) != binary.LittleEndian.Uint32(b[off+12+int(n):]) {
			break
		}
		e, err := unmarshal(data)
		if err != nil {
			break
		}
		off += 16 + int(n)
		events, ends = append(events, e), append(ends, int64(off))
	}
	return events, ends, nil
}

var errField = errors.New("tfevents: malformed field")

func unmarshal(b []byte) (Event, error) {
	var e Event
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == eventWallTime && typ == protowire.Fixed64Type:
			e.Wall = math.Float64frombits(x)
		case num == eventStep && typ == protowire.VarintType:
			e.Step = int64(x)
		case num == eventFileVersion && typ == protowire.BytesType:
			e.FileVersion = string(v)
		case num == eventSummary && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != summaryValue || typ != protowire.BytesType {
					return nil
				}
				var s Scalar
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == valueTag && typ == protowire.BytesType:
						s.Tag = string(v)
					case num == valueSimple && typ == protowire.Fixed32Type:
						s.Value = float64(math.Float32frombits(uint32(x)))
					}
					return nil
				})
				e.Scalars = append(e.Scalars, s)
				return err
			})
		}
		return nil
	})
	return e, err
}

// fields calls f for each field of the message b: bytes fields get v,
// numeric ones x.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errField
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errField
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
