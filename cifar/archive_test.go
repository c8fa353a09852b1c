package cifar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// member is one file of a test archive.
type member struct {
	name string
	data []byte
}

// makeArchive writes members as a .tar.gz.
func makeArchive(t testing.TB, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// records makes n CIFAR records; record i has label labels(i) and every
// pixel byte equal to byte(i + seed).
func records(f Format, n, seed int, labels func(i int) int) []byte {
	var b []byte
	for i := range n {
		lab := make([]byte, f.LabelBytes)
		lab[f.LabelBytes-1] = byte(labels(i))
		b = append(b, lab...)
		b = append(b, bytes.Repeat([]byte{byte(i + seed)}, ImageSize)...)
	}
	return b
}

func classNames(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "class_%d\n", i)
	}
	b.WriteString("\n") // the official file ends with blank lines
	return []byte(b.String())
}

// cifar10Members is a valid CIFAR-10 archive with perBatch records per batch.
func cifar10Members(perBatch int) []member {
	f := CIFAR10Format
	ms := []member{{"cifar-10-batches-bin/batches.meta.txt", classNames(10)}}
	for b, name := range append(f.Train, f.Test...) {
		ms = append(ms, member{"cifar-10-batches-bin/" + name, records(f, perBatch, 10*b, func(i int) int { return i % 10 })})
	}
	return ms
}

func TestReadCIFAR10(t *testing.T) {
	d, err := ReadArchive(bytes.NewReader(makeArchive(t, cifar10Members(20)...)), "test.tar.gz", CIFAR10Format)
	if err != nil {
		t.Fatal(err)
	}
	if d.Train.Len() != 100 || d.Test.Len() != 20 || len(d.Classes) != 10 || d.Classes[3] != "class_3" {
		t.Fatalf("got %d train, %d test, classes %q", d.Train.Len(), d.Test.Len(), d.Classes)
	}
	// Record 7 of data_batch_2 is train example 27: label 7, pixels 10+7.
	img := d.Train.Images[27*ImageSize : 28*ImageSize]
	if d.Train.Labels[27] != 7 || img[0] != 17 || img[ImageSize-1] != 17 {
		t.Errorf("train[27]: label %d, pixels %d..%d; want 7, 17..17", d.Train.Labels[27], img[0], img[ImageSize-1])
	}
	if d.Test.Labels[19] != 9 || d.Test.Images[19*ImageSize] != 50+19 {
		t.Errorf("test[19]: label %d, pixel %d", d.Test.Labels[19], d.Test.Images[19*ImageSize])
	}
}

func TestReadCIFAR100UsesFineLabel(t *testing.T) {
	f := CIFAR100Format
	train := records(f, 5, 0, func(i int) int { return 90 + i })
	train[0] = 19 // coarse label of record 0, must be ignored
	arc := makeArchive(t,
		member{"cifar-100-binary/fine_label_names.txt", classNames(100)},
		member{"cifar-100-binary/train.bin", train},
		member{"cifar-100-binary/test.bin", records(f, 2, 0, func(i int) int { return i })},
	)
	d, err := ReadArchive(bytes.NewReader(arc), "c100", f)
	if err != nil {
		t.Fatal(err)
	}
	if d.Train.Len() != 5 || d.Train.Labels[0] != 90 || d.Train.Labels[4] != 94 || len(d.Classes) != 100 {
		t.Errorf("labels %v, %d classes", d.Train.Labels, len(d.Classes))
	}
}

func TestReadArchiveRejects(t *testing.T) {
	replace := func(name string, data []byte) []member {
		ms := cifar10Members(3)
		for i := range ms {
			if strings.HasSuffix(ms[i].name, "/"+name) {
				ms[i].data = data
			}
		}
		return ms
	}
	badLabel := records(CIFAR10Format, 3, 0, func(i int) int { return i })
	badLabel[2*3073] = 10
	without := func(name string) []member {
		var ms []member
		for _, m := range cifar10Members(3) {
			if !strings.HasSuffix(m.name, "/"+name) {
				ms = append(ms, m)
			}
		}
		return ms
	}
	valid := makeArchive(t, cifar10Members(3)...)
	for _, tc := range []struct {
		name    string
		archive []byte
		want    string // substring of the error
	}{
		{"record size", makeArchive(t, replace("data_batch_3.bin", make([]byte, 3*3073-1))...), "data_batch_3.bin: size 9218 is not a whole number of 3073-byte records"},
		{"empty member", makeArchive(t, replace("test_batch.bin", nil)...), "test_batch.bin: size 0"},
		{"label range", makeArchive(t, replace("data_batch_4.bin", badLabel)...), "data_batch_4.bin: record 2: label 10 out of range 0..9"},
		{"missing member", makeArchive(t, without("data_batch_5.bin")...), "data_batch_5.bin: missing from the archive"},
		{"missing classes", makeArchive(t, without("batches.meta.txt")...), "batches.meta.txt: missing"},
		{"class count", makeArchive(t, replace("batches.meta.txt", classNames(9))...), "lists 9 class names, want 10"},
		{"repeated member", makeArchive(t, append(cifar10Members(3), cifar10Members(3)[2])...), "appears twice"},
		{"not gzip", []byte("PK\x03\x04 this is a zip"), "not a gzip file"},
		{"empty file", nil, "not a gzip file"},
		{"gzip, not tar", gzipped(t, []byte("hello, not a tar file\n")), "not a tar archive: the file is whole gzip data"},
		{"gzip of zeros", gzipped(t, make([]byte, 600)), "not a tar archive"},
		{"truncated at 100", valid[:100], "truncated"},
		{"truncated mid-way", valid[:len(valid)/2], "truncated"},
		{"truncated trailer", valid[:len(valid)-4], "truncated"},
		{"damaged", flipByte(valid, len(valid)/3), "archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadArchive(bytes.NewReader(tc.archive), "x.tar.gz", CIFAR10Format)
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadArchive = %v\nwant ErrFormat containing %q", err, tc.want)
			}
		})
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

func TestWriteArchiveRoundTrip(t *testing.T) {
	for _, f := range []Format{CIFAR10Format, CIFAR100Format} {
		d := Synthetic(5, 23, 7)
		for i := range d.Train.Labels {
			d.Train.Labels[i] = byte(i * 7 % f.Classes)
		}
		d.Name = f.Name
		d.Classes = strings.Split(strings.TrimSpace(string(classNames(f.Classes))), "\n")
		var buf bytes.Buffer
		if err := WriteArchive(&buf, f, d); err != nil {
			t.Fatal(err)
		}
		got, err := ReadArchive(&buf, "round trip", f)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(got.Train.Images, d.Train.Images) || !bytes.Equal(got.Train.Labels, d.Train.Labels) ||
			!bytes.Equal(got.Test.Images, d.Test.Images) || !bytes.Equal(got.Test.Labels, d.Test.Labels) ||
			strings.Join(got.Classes, ",") != strings.Join(d.Classes, ",") {
			t.Errorf("%s: read back differs from what was written", f.Name)
		}
	}
}

// The CIFAR-10 archive given as CIFAR-100 is named for what it is.
func TestArchiveOfTheOtherFormat(t *testing.T) {
	var buf bytes.Buffer
	d := Synthetic(1, 20, 10)
	d.Name = "cifar10"
	if err := WriteArchive(&buf, CIFAR10Format, d); err != nil {
		t.Fatal(err)
	}
	_, err := ReadArchive(bytes.NewReader(buf.Bytes()), "cifar-10-binary.tar.gz", CIFAR100Format)
	if err == nil || !strings.Contains(err.Error(), "this is the cifar10 archive, not cifar100's: give --dataset cifar10") {
		t.Errorf("the CIFAR-10 archive read as CIFAR-100: %v", err)
	}
}
