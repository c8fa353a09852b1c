package artifacts

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func tinyDataset() *Dataset {
	return &Dataset{
		Name: "tiny", Classes: []string{"a", "b", "c"}, C: 3, H: 2, W: 2,
		Mean: []float32{0.5, 0.4, 0.3}, Std: []float32{0.2, 0.25, 0.3},
		Train: Split{Images: Bytes(bytes.Repeat([]byte{1, 2, 3}, 4*4)), Labels: []uint16{0, 1, 2, 2}},
		Test:  Split{Images: Bytes(bytes.Repeat([]byte{9}, 12)), Labels: []uint16{1}},
	}
}

func TestDatasetRoundTrip(t *testing.T) {
	s := testStore(t)
	d := tinyDataset()
	info := d.Info()
	info.Stage, info.Key, info.KeyLines = "fetch", Key{1}, []string{"line"}
	w, err := s.Create("dataset", info)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(w); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	a, err := s.Get("dataset")
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadDataset(a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != d.Name || len(got.Classes) != 3 || got.C != 3 || got.H != 2 || got.W != 2 ||
		!slices.Equal(got.Mean, d.Mean) || !slices.Equal(got.Std, d.Std) ||
		!bytes.Equal(readAll(t, got.Train.Images), readAll(t, d.Train.Images)) || !slices.Equal(got.Train.Labels, d.Train.Labels) ||
		!bytes.Equal(readAll(t, got.Test.Images), readAll(t, d.Test.Images)) || !slices.Equal(got.Test.Labels, d.Test.Labels) {
		t.Errorf("LoadDataset = %+v, want %+v", got, d)
	}
	if a.Key != (Key{1}) || a.Stage != "fetch" || a.KeyLines[0] != "line" {
		t.Errorf("manifest = %+v", a.Manifest)
	}
	desc, err := LoadDatasetInfo(a)
	if err != nil || desc.Name != d.Name || !slices.Equal(desc.Classes, d.Classes) || !slices.Equal(desc.Std, d.Std) || desc.H != 2 || desc.Train.Len() != 0 {
		t.Errorf("LoadDatasetInfo = %+v, %v", desc, err)
	}
}

func TestLoadDatasetRejects(t *testing.T) {
	// A file set that is self-consistent per the manifest but not as a dataset:
	// labels beyond the class list.
	s := testStore(t)
	w, _ := s.Create("dataset", Info{Kind: KindDataset, Schema: datasetSchema})
	d := tinyDataset()
	w.WriteFile(datasetMetaFile, []byte(`{"name":"tiny","classes":["a"],"shape":[3,2,2],"train_count":4,"test_count":1,"mean":[0,0,0],"std":[1,1,1]}`))
	w.WriteFile(trainImagesFile, readAll(t, d.Train.Images))
	w.WriteFile("train-labels.u8", []byte{0, 1, 2, 2})
	w.WriteFile(testImagesFile, readAll(t, d.Test.Images))
	w.WriteFile("test-labels.u8", []byte{1})
	a, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDataset(a); !errors.Is(err, ErrCorrupt) {
		t.Errorf("LoadDataset with labels beyond 1 class = %v, want ErrCorrupt", err)
	}
	other := put(t, s, "other", map[string]string{"f": "x"})
	if _, err := LoadDataset(other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("LoadDataset of a toy artifact = %v, want ErrCorrupt", err)
	}
}

// storeDataset writes d as an artifact in a fresh store and loads it back.
func storeDataset(t *testing.T, d *Dataset) (*Dataset, *Artifact) {
	t.Helper()
	w, err := testStore(t).Create("dataset", d.Info())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(w); err != nil {
		t.Fatal(err)
	}
	a, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadDataset(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { got.Close() })
	return got, a
}

func readAll(t *testing.T, im Images) []byte {
	t.Helper()
	b, err := ReadAll(im)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A dataset that records no normalisation (CIFAR's, and any written
// before image folders) loads with CIFAR-10's, and its dataset.json has
// no such fields, as before.
func TestDatasetDefaultNormalization(t *testing.T) {
	d := tinyDataset()
	d.Mean, d.Std = nil, nil
	got, a := storeDataset(t, d)
	if !slices.Equal(got.Mean, CIFARMean[:]) || !slices.Equal(got.Std, CIFARStd[:]) {
		t.Errorf("normalisation %v / %v, want CIFAR-10's", got.Mean, got.Std)
	}
	if b, _ := a.ReadFile(datasetMetaFile); bytes.Contains(b, []byte("mean")) {
		t.Errorf("dataset.json names a mean:\n%s", b)
	}
}

// More than 256 classes (ImageNet's 1000) store two-byte labels.
func TestDatasetManyClasses(t *testing.T) {
	d := tinyDataset()
	d.Classes = make([]string, 1000)
	for i := range d.Classes {
		d.Classes[i] = fmt.Sprintf("n%05d", i)
	}
	d.Train.Labels = []uint16{999, 0, 256, 511}
	got, a := storeDataset(t, d)
	if !slices.Equal(got.Train.Labels, d.Train.Labels) || len(got.Classes) != 1000 {
		t.Errorf("labels %v, want %v", got.Train.Labels, d.Train.Labels)
	}
	if b, err := a.ReadFile("train-labels.u16"); err != nil || len(b) != 8 {
		t.Errorf("train-labels.u16: %d bytes, %v", len(b), err)
	}
}
