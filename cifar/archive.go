package cifar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// A Format describes one of the binary CIFAR archives.
type Format struct {
	Name        string   // dataset name: "cifar10" or "cifar100"
	Train, Test []string // member base names, in order
	ClassFile   string   // member holding one class name per line
	Classes     int      // number of classes
	// LabelBytes is the number of label bytes before each image; the label
	// used is the last one (CIFAR-100 stores coarse, then fine).
	LabelBytes int
}

// The two official formats.
var (
	CIFAR10Format = Format{
		Name:       "cifar10",
		Train:      []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
		Test:       []string{"test_batch.bin"},
		ClassFile:  "batches.meta.txt",
		Classes:    10,
		LabelBytes: 1,
	}
	CIFAR100Format = Format{
		Name:       "cifar100",
		Train:      []string{"train.bin"},
		Test:       []string{"test.bin"},
		ClassFile:  "fine_label_names.txt",
		Classes:    100,
		LabelBytes: 2,
	}
)

// RecordSize is the size of one record in bytes.
func (f Format) RecordSize() int { return f.LabelBytes + ImageSize }

// ReadArchive parses a .tar.gz archive in format f; name identifies it in
// errors. Members are matched by base name, so the top folder may be renamed.
// It returns a *FormatError for anything that breaks the format: a truncated
// or damaged archive, a missing or repeated member, a member whose size is
// not a whole number of records, a label out of range.
func ReadArchive(r io.Reader, name string, f Format) (*Dataset, error) {
	bad := func(member string, record int, format string, args ...any) error {
		return &FormatError{Archive: name, Member: member, Record: record, Reason: fmt.Sprintf(format, args...)}
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return nil, bad("", -1, "not a gzip file: %v", err)
	}
	want := map[string]bool{f.ClassFile: true}
	for _, m := range append(append([]string{}, f.Train...), f.Test...) {
		want[m] = true
	}
	members := map[string][]byte{}
	seen := map[string]bool{} // every member's name, for telling the formats apart
	tr := tar.NewReader(zr)
	for first := true; ; first = false {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && first && errors.Is(err, io.ErrUnexpectedEOF) {
			// The tar header ended early: a cut download also does this,
			// but then the gzip stream itself is cut short.
			if _, gerr := io.Copy(io.Discard, zr); gerr == nil {
				return nil, bad("", -1, "not a tar archive: the file is whole gzip data, but what it holds is not a tar archive (CIFAR comes as a .tar.gz)")
			}
		}
		if err != nil {
			return nil, bad("", -1, "%s", readError(err))
		}
		base := path.Base(h.Name)
		seen[base] = true
		if h.Typeflag != tar.TypeReg || !want[base] {
			continue
		}
		if _, dup := members[base]; dup {
			return nil, bad(h.Name, -1, "appears twice in the archive")
		}
		// Check the size before allocating: a member larger than the
		// biggest real one (CIFAR-100's train.bin, 153 MB) is not CIFAR.
		if h.Size < 0 || h.Size > 50000*int64(f.RecordSize()) {
			return nil, bad(h.Name, -1, "size %d is beyond any CIFAR member", h.Size)
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			return nil, bad(h.Name, -1, "%s", readError(err))
		}
		members[base] = b
	}
	// Reading to the end checks the gzip trailer's CRC.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, bad("", -1, "%s", readError(err))
	}
	for m := range want {
		if _, ok := members[m]; !ok {
			if other := otherFormat(f, seen); other != "" {
				return nil, bad("", -1, "this is the %s archive, not %s's: give --dataset %s, or the %s archive", other, f.Name, other, f.Name)
			}
			return nil, bad(m, -1, "missing from the archive")
		}
	}

	classes := parseClassNames(members[f.ClassFile])
	if len(classes) != f.Classes {
		return nil, bad(f.ClassFile, -1, "lists %d class names, want %d", len(classes), f.Classes)
	}
	d := &Dataset{Name: f.Name, Classes: classes}
	for _, sp := range []struct {
		split   *Split
		members []string
	}{{&d.Train, f.Train}, {&d.Test, f.Test}} {
		n := 0
		for _, m := range sp.members {
			n += len(members[m]) / f.RecordSize()
		}
		sp.split.Images = make([]byte, 0, n*ImageSize)
		sp.split.Labels = make([]byte, 0, n)
		for _, m := range sp.members {
			if err := f.appendRecords(sp.split, members[m], func(record int, format string, args ...any) error {
				return bad(m, record, format, args...)
			}); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// appendRecords splits one member into records and appends them to s.
func (f Format) appendRecords(s *Split, b []byte, bad func(record int, format string, args ...any) error) error {
	rs := f.RecordSize()
	if len(b) == 0 || len(b)%rs != 0 {
		return bad(-1, "size %d is not a whole number of %d-byte records", len(b), rs)
	}
	for i := range len(b) / rs {
		rec := b[i*rs : (i+1)*rs]
		label := rec[f.LabelBytes-1]
		if int(label) >= f.Classes {
			return bad(i, "label %d out of range 0..%d", label, f.Classes-1)
		}
		s.Labels = append(s.Labels, label)
		s.Images = append(s.Images, rec[f.LabelBytes:]...)
	}
	return nil
}

// parseClassNames reads one name per line, skipping blank lines.
func parseClassNames(b []byte) []string {
	var names []string
	for _, l := range strings.Split(string(bytes.ReplaceAll(b, []byte("\r"), nil)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	return names
}

// readError words an archive read failure; a short file is the common case.
func readError(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "archive is truncated (the file ends early: an interrupted download or copy?)"
	}
	return "archive is damaged: " + err.Error()
}

// WriteArchive writes d as a .tar.gz archive in format f, the inverse of
// ReadArchive: train examples are spread evenly over f's train members.
// It serves tests and mirrors of datasets made here (such as Synthetic);
// CIFAR-100's coarse labels, which d does not hold, are written as 0.
func WriteArchive(w io.Writer, f Format, d *Dataset) error {
	if len(d.Classes) != f.Classes {
		return fmt.Errorf("cifar: dataset has %d classes, format %s has %d", len(d.Classes), f.Name, f.Classes)
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	dir := map[string]string{"cifar10": "cifar-10-batches-bin/", "cifar100": "cifar-100-binary/"}[f.Name]
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: dir + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put(f.ClassFile, []byte(strings.Join(d.Classes, "\n")+"\n")); err != nil {
		return err
	}
	for _, sp := range []struct {
		s       *Split
		members []string
	}{{&d.Train, f.Train}, {&d.Test, f.Test}} {
		n, k := sp.s.Len(), len(sp.members)
		for m, name := range sp.members {
			lo, hi := n*m/k, n*(m+1)/k
			b := make([]byte, 0, (hi-lo)*f.RecordSize())
			for i := lo; i < hi; i++ {
				b = append(b, make([]byte, f.LabelBytes-1)...)
				b = append(b, sp.s.Labels[i])
				b = append(b, sp.s.Images[i*ImageSize:(i+1)*ImageSize]...)
			}
			if err := put(name, b); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// otherFormat names the CIFAR format whose members an archive that lacks
// f's holds (CIFAR-10's given as CIFAR-100, say), or "".
func otherFormat(f Format, seen map[string]bool) string {
	for _, o := range []Format{CIFAR10Format, CIFAR100Format} {
		if o.Name == f.Name {
			continue
		}
		all := seen[o.ClassFile]
		for _, m := range append(slices.Clone(o.Train), o.Test...) {
			all = all && seen[m]
		}
		if all {
			return o.Name
		}
	}
	return ""
}
