package cifar

import (
	"bytes"
	"testing"
)

func TestSyntheticDeterministic(t *testing.T) {
	a, b := Synthetic(7, 50, 20), Synthetic(7, 50, 20)
	if !bytes.Equal(a.Train.Images, b.Train.Images) || !bytes.Equal(a.Test.Images, b.Test.Images) {
		t.Error("same seed gave different images")
	}
	if c := Synthetic(8, 50, 20); bytes.Equal(a.Train.Images, c.Train.Images) {
		t.Error("different seeds gave the same images")
	}
	// The test split does not depend on the train count.
	if d := Synthetic(7, 30, 20); !bytes.Equal(a.Test.Images, d.Test.Images) {
		t.Error("changing the train count changed the test images")
	}
	if bytes.Equal(a.Train.Images[:ImageSize*20], a.Test.Images) {
		t.Error("train and test splits are the same images")
	}
}

func TestSyntheticBalanced(t *testing.T) {
	d := Synthetic(1, 1000, 200)
	var n [10]int
	for _, l := range d.Train.Labels {
		n[l]++
	}
	for c, k := range n {
		if k != 100 {
			t.Errorf("class %d has %d of 1000 train images, want 100", c, k)
		}
	}
	if len(d.Train.Images) != 1000*ImageSize || len(d.Classes) != 10 {
		t.Errorf("%d image bytes, %d classes", len(d.Train.Images), len(d.Classes))
	}
}

// The classes must be told apart by something a small network can learn. A
// nearest-centroid classifier on two crude features, how much the image
// changes along rows and along columns, already separates stripe
// orientations; that is a floor, not the goal.
func TestSyntheticStripesSeparable(t *testing.T) {
	d := Synthetic(3, 400, 100)
	grad := func(img []byte) (gx, gy float64) {
		for y := range H - 1 {
			for x := range W - 1 {
				p := float64(img[y*W+x])
				gx += abs(float64(img[y*W+x+1]) - p)
				gy += abs(float64(img[(y+1)*W+x]) - p)
			}
		}
		return gx, gy
	}
	right, total := 0, 0
	for i, l := range d.Test.Labels {
		if l != 5 && l != 6 { // horizontal vs vertical stripes
			continue
		}
		gx, gy := grad(d.Test.Images[i*ImageSize:])
		if (gy > gx) == (l == 5) {
			right++
		}
		total++
	}
	if right < total*9/10 {
		t.Errorf("stripe orientation told from gradients in %d of %d images, want 90%%", right, total)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
