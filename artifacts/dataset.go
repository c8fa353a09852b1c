package artifacts

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KindDataset is the kind of a Dataset artifact.
const (
	KindDataset   = "dataset"
	datasetSchema = 1
)

// CIFARMean and CIFARStd normalise CIFAR-10 images scaled to [0, 1], per
// channel (condensenet.md, "Training recipe"), and every dataset that
// records no normalisation of its own.
var (
	CIFARMean = [3]float32{0.4914, 0.4824, 0.4467}
	CIFARStd  = [3]float32{0.2471, 0.2435, 0.2616}
)

// A Dataset is an image classification dataset: uint8 images in NCHW
// order, read where they are needed (see Images), and its labels in memory.
// A loaded Dataset holds its image files open until Close.
type Dataset struct {
	Name    string   // "cifar10", "cifar100" or "synthetic"
	Classes []string // class names, indexed by label
	C, H, W int      // image shape: 3, 32, 32 for CIFAR
	// Mean and Std normalise images scaled to [0, 1], per channel: the
	// training split's own for an image folder (unless the configuration
	// sets them). A dataset that records none, as CIFAR's do (and every
	// dataset written before image folders), is normalised with CIFAR-10's
	// published constants, which loading fills in.
	Mean, Std []float32
	Train     Split
	Test      Split
}

// A Split is one part of a dataset (train or test).
type Split struct {
	Images Images   // (N, C, H, W); nil when N is 0
	Labels []uint16 // (N), each < len(Classes)
}

// Len returns the number of examples in the split.
func (s *Split) Len() int { return len(s.Labels) }

// Images are a split's pixels, read on demand: a loaded dataset's from its
// artifact's file, so that no stage needs the dataset in memory (an image
// folder can be far larger than memory), a built one's from memory (Bytes)
// or from a file being prepared (ImageFile).
type Images interface {
	io.ReaderAt
	Size() int64
}

// Bytes returns images held in memory.
func Bytes(b []byte) Images { return bytes.NewReader(b) }

// ImageFile returns the images in the open file f, which the dataset's
// Close closes.
func ImageFile(f *os.File) (Images, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &imageFile{f, st.Size()}, nil
}

type imageFile struct {
	*os.File
	size int64
}

func (f *imageFile) Size() int64 { return f.size }

// ReadAll reads all of a split's images into memory.
func ReadAll(im Images) ([]byte, error) {
	if im == nil {
		return nil, nil
	}
	b := make([]byte, im.Size())
	_, err := im.ReadAt(b, 0)
	if err == io.EOF {
		err = nil // ReadAt may say EOF after filling b to the end
	}
	return b, err
}

func size(im Images) int64 {
	if im == nil {
		return 0
	}
	return im.Size()
}

// Close closes the files d's images are read from.
func (d *Dataset) Close() error {
	var errs []error
	for _, im := range []Images{d.Train.Images, d.Test.Images} {
		if c, ok := im.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// datasetMeta is dataset.json. Counts are kept for people and tools reading
// the folder; Load checks them against the files.
type datasetMeta struct {
	Name        string    `json:"name"`
	Classes     []string  `json:"classes"`
	Shape       [3]int    `json:"shape"` // C, H, W
	TrainCount  int       `json:"train_count"`
	TestCount   int       `json:"test_count"`
	TrainPerCls []int     `json:"train_per_class"`
	TestPerCls  []int     `json:"test_per_class"`
	Mean        []float32 `json:"mean,omitempty"`
	Std         []float32 `json:"std,omitempty"`
}

// The files of a Dataset artifact. Labels are a byte each for up to 256
// classes (.u8), else two, little-endian (.u16).
const (
	datasetMetaFile = "dataset.json"
	// datasetSourceFile names an image folder's dataset by the folder
	// ("folder:NAME"), outside the ID; dataset.json then says "folder".
	datasetSourceFile = "source.txt"
	trainImagesFile   = "train-images.u8"
	testImagesFile    = "test-images.u8"
	maxClasses        = 1 << 16
)

// labelFiles returns the names of the label files for a dataset of
// classes classes, and the bytes per label.
func labelFiles(classes int) (train, test string, width int) {
	if classes <= 256 {
		return "train-labels.u8", "test-labels.u8", 1
	}
	return "train-labels.u16", "test-labels.u16", 2
}

func encodeLabels(labels []uint16, width int) []byte {
	b := make([]byte, 0, len(labels)*width)
	for _, l := range labels {
		if width == 1 {
			b = append(b, byte(l))
		} else {
			b = binary.LittleEndian.AppendUint16(b, l)
		}
	}
	return b
}

func decodeLabels(b []byte, width int) ([]uint16, error) {
	if len(b)%width != 0 {
		return nil, fmt.Errorf("%d bytes of %d-byte labels", len(b), width)
	}
	labels := make([]uint16, len(b)/width)
	for i := range labels {
		if width == 1 {
			labels[i] = uint16(b[i])
		} else {
			labels[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
	}
	return labels, nil
}

// Info returns the Dataset's kind and schema for a Writer.
func (d *Dataset) Info() Info { return Info{Kind: KindDataset, Schema: datasetSchema} }

// Summary describes d in one line.
func (d *Dataset) Summary() string {
	return fmt.Sprintf("%s: %d train, %d test images of %dx%dx%d, %d classes",
		d.Name, d.Train.Len(), d.Test.Len(), d.C, d.H, d.W, len(d.Classes))
}

// PerClass counts the examples of each class in s.
func (d *Dataset) PerClass(s *Split) []int {
	n := make([]int, len(d.Classes))
	for _, l := range s.Labels {
		n[l]++
	}
	return n
}

// Write writes d's files into w. It panics if d is inconsistent, which is a
// bug in whatever built it.
func (d *Dataset) Write(w *Writer) error {
	if err := d.check(); err != nil {
		panic(err)
	}
	meta := datasetMeta{
		Name: d.Name, Classes: d.Classes, Shape: [3]int{d.C, d.H, d.W},
		TrainCount: d.Train.Len(), TestCount: d.Test.Len(),
		TrainPerCls: d.PerClass(&d.Train), TestPerCls: d.PerClass(&d.Test),
		Mean: d.Mean, Std: d.Std,
	}
	if kind, _, ok := strings.Cut(d.Name, ":"); ok {
		// "folder:NAME": where the images came from is not what they are,
		// so the name stays out of the artifact's ID (two folders of the
		// same images make the same dataset).
		meta.Name = kind
		if err := w.WriteVolatile(datasetSourceFile, []byte(d.Name+"\n")); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(meta, "", "  ")
	trainLabels, testLabels, width := labelFiles(len(d.Classes))
	for _, f := range []struct {
		name string
		data []byte
	}{
		{datasetMetaFile, append(b, '\n')},
		{trainLabels, encodeLabels(d.Train.Labels, width)},
		{testLabels, encodeLabels(d.Test.Labels, width)},
	} {
		if err := w.WriteFile(f.name, f.data); err != nil {
			return err
		}
	}
	if err := writeImages(w, trainImagesFile, d.Train.Images); err != nil {
		return err
	}
	return writeImages(w, testImagesFile, d.Test.Images)
}

// writeImages copies images into the artifact's file name, a buffer at a
// time.
func writeImages(w *Writer, name string, im Images) error {
	fw, err := w.Create(name)
	if err != nil {
		return err
	}
	if im != nil {
		if _, err := io.Copy(fw, io.NewSectionReader(im, 0, im.Size())); err != nil {
			fw.Close()
			return err
		}
	}
	return fw.Close()
}

// LoadDataset opens a Dataset artifact: its labels are read, its images
// opened to be read as needed; the caller must Close it. It returns a
// *CorruptError if the artifact is of another kind or its files disagree
// with one another.
func LoadDataset(a *Artifact) (*Dataset, error) {
	d, meta, err := loadDatasetMeta(a)
	if err != nil {
		return nil, err
	}
	trainLabels, testLabels, width := labelFiles(len(d.Classes))
	var labels [2][]byte
	for i, name := range []string{trainLabels, testLabels} {
		if labels[i], err = a.ReadFile(name); err != nil {
			return nil, err
		}
	}
	if d.Train.Labels, err = decodeLabels(labels[0], width); err == nil {
		d.Test.Labels, err = decodeLabels(labels[1], width)
	}
	if err != nil {
		return nil, &CorruptError{Dir: a.Dir, Reason: err.Error()}
	}
	if d.Train.Images, err = openImages(a, trainImagesFile); err != nil {
		return nil, err
	}
	if d.Test.Images, err = openImages(a, testImagesFile); err != nil {
		d.Close()
		return nil, err
	}
	err = d.check()
	if err == nil && (d.Train.Len() != meta.TrainCount || d.Test.Len() != meta.TestCount) {
		err = &CorruptError{Dir: a.Dir, File: datasetMetaFile, Reason: fmt.Sprintf("counts %d/%d, files hold %d/%d",
			meta.TrainCount, meta.TestCount, d.Train.Len(), d.Test.Len())}
	} else if err != nil {
		err = &CorruptError{Dir: a.Dir, Reason: err.Error()}
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func openImages(a *Artifact, name string) (Images, error) {
	if !a.Has(name) {
		return nil, &CorruptError{Dir: a.Dir, File: name, Reason: "missing from manifest"}
	}
	f, err := os.Open(a.Path(name))
	if err != nil {
		return nil, err
	}
	im, err := ImageFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return im, nil
}

// LoadDatasetInfo reads what a Dataset artifact says of itself (names,
// classes, shape, normalisation) without reading its images: the splits
// of the result are empty.
func LoadDatasetInfo(a *Artifact) (*Dataset, error) {
	d, _, err := loadDatasetMeta(a)
	if err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, &CorruptError{Dir: a.Dir, File: datasetMetaFile, Reason: err.Error()}
	}
	return d, nil
}

func loadDatasetMeta(a *Artifact) (*Dataset, *datasetMeta, error) {
	if err := a.expect(KindDataset, datasetSchema); err != nil {
		return nil, nil, err
	}
	b, err := a.ReadFile(datasetMetaFile)
	if err != nil {
		return nil, nil, err
	}
	var meta datasetMeta
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return nil, nil, &CorruptError{Dir: a.Dir, File: datasetMetaFile, Reason: err.Error()}
	}
	if a.Has(datasetSourceFile) {
		if b, err := a.ReadFile(datasetSourceFile); err == nil {
			meta.Name = strings.TrimSpace(string(b))
		}
	}
	d := &Dataset{Name: meta.Name, Classes: meta.Classes, C: meta.Shape[0], H: meta.Shape[1], W: meta.Shape[2], Mean: meta.Mean, Std: meta.Std}
	if d.Mean == nil && d.Std == nil {
		d.Mean, d.Std = CIFARMean[:], CIFARStd[:]
	}
	return d, &meta, nil
}

// check reports the first inconsistency in d.
func (d *Dataset) check() error {
	if len(d.Classes) == 0 || len(d.Classes) > maxClasses {
		return fmt.Errorf("dataset %q has %d classes, want 1..%d", d.Name, len(d.Classes), maxClasses)
	}
	if d.C <= 0 || d.H <= 0 || d.W <= 0 {
		return fmt.Errorf("dataset %q has image shape %dx%dx%d", d.Name, d.C, d.H, d.W)
	}
	if (d.Mean != nil || d.Std != nil) && (len(d.Mean) != d.C || len(d.Std) != d.C) {
		return fmt.Errorf("dataset %q has %d means and %d standard deviations for %d channels", d.Name, len(d.Mean), len(d.Std), d.C)
	}
	for _, s := range d.Std {
		if !(s > 0) {
			return fmt.Errorf("dataset %q has a standard deviation of %v", d.Name, s)
		}
	}
	for _, s := range []struct {
		name string
		sp   *Split
	}{{"train", &d.Train}, {"test", &d.Test}} {
		if want := int64(s.sp.Len()) * int64(d.C*d.H*d.W); size(s.sp.Images) != want {
			return fmt.Errorf("%s split: %d image bytes for %d labels, want %d", s.name, size(s.sp.Images), s.sp.Len(), want)
		}
		for i, l := range s.sp.Labels {
			if int(l) >= len(d.Classes) {
				return fmt.Errorf("%s split: label %d of example %d is out of range (%d classes)", s.name, l, i, len(d.Classes))
			}
		}
	}
	return nil
}
