package cifar

import (
	"math"
	"slices"
	"testing"
)

func TestBatcherEvaluation(t *testing.T) {
	d := Synthetic(1, 10, 5)
	b := &Batcher{Images: d.Test.Images, Labels: d.Test.Labels, Batch: 2, Mean: Mean[:], Std: Std[:]}
	if b.Steps() != 3 {
		t.Fatalf("Steps = %d for 5 examples in batches of 2, want 3 (last one padded)", b.Steps())
	}
	x, labels := make([]float32, 2*ImageSize), make([]int32, 2)
	if n := b.Fill(x, labels, 0, 2); n != 1 || labels[0] != int32(d.Test.Labels[4]) {
		t.Fatalf("last batch: %d real, labels %v", n, labels)
	}
	// Pixel (y=3, x=5) of channel 1 of example 4, normalised, channels last.
	want := (float32(d.Test.Images[4*ImageSize+1*1024+3*32+5])/255 - Mean[1]) / Std[1]
	if got := x[(3*32+5)*3+1]; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("normalised pixel = %v, want %v", got, want)
	}
	for _, v := range x[ImageSize:] {
		if v != 0 {
			t.Fatal("padding slot of the last batch is not zero")
		}
	}
}

func TestBatcherAugmentation(t *testing.T) {
	d := Synthetic(2, 64, 0)
	b := &Batcher{Images: d.Train.Images, Labels: d.Train.Labels, Batch: 16, Seed: 7, Augment: true, Mean: Mean[:], Std: Std[:]}
	x1, l1 := make([]float32, 16*ImageSize), make([]int32, 16)
	x2, l2 := make([]float32, 16*ImageSize), make([]int32, 16)
	b.Fill(x1, l1, 3, 1)
	// A fresh batcher (as after a restart) rebuilds the same batch.
	(&Batcher{Images: d.Train.Images, Labels: d.Train.Labels, Batch: 16, Seed: 7, Augment: true, Mean: Mean[:], Std: Std[:]}).Fill(x2, l2, 3, 1)
	if !slices.Equal(x1, x2) || !slices.Equal(l1, l2) {
		t.Fatal("the same (seed, epoch, step) gave different batches")
	}
	b.Fill(x2, l2, 4, 1)
	if slices.Equal(l1, l2) {
		t.Error("epochs 3 and 4 have the same order")
	}
	// Every example of an epoch appears exactly once.
	seen := map[int32]int{}
	for step := range b.Steps() {
		b.Fill(x1, l1, 0, step)
		for _, l := range l1 {
			seen[l]++
		}
	}
	for c, n := range seen {
		if n != 64/10+map[bool]int{true: 1}[int(c) < 64%10] {
			t.Errorf("class %d seen %d times in an epoch", c, n)
		}
	}
}

// The crop and flip match their definitions: out(y, x) = padded(y+dy, x'+dx)
// with x' = 31−x when flipped, padding 4 zero pixels.
func TestBatcherCropFlip(t *testing.T) {
	src := make([]byte, ImageSize)
	for i := range src {
		src[i] = byte(i * 7)
	}
	b := &Batcher{Mean: []float32{0.1, 0.2, 0.3}, Std: []float32{0.5, 0.6, 0.7}} // not CIFAR's
	dst := make([]float32, ImageSize)
	for _, tc := range []struct {
		dy, dx int
		flip   bool
	}{{4, 4, false}, {0, 8, true}, {8, 0, false}, {3, 6, true}} {
		b.write(dst, src, tc.dy, tc.dx, tc.flip)
		for y := range H {
			for x := range W {
				xx := x
				if tc.flip {
					xx = W - 1 - x
				}
				py, px := y+tc.dy-4, xx+tc.dx-4
				for c := range C {
					raw := float32(0)
					if py >= 0 && py < H && px >= 0 && px < W {
						raw = float32(src[c*1024+py*32+px]) / 255
					}
					if want := (raw - b.Mean[c]) / b.Std[c]; dst[(y*W+x)*C+c] != want {
						t.Fatalf("%+v: out(%d,%d,%d) = %v, want %v", tc, y, x, c, dst[(y*W+x)*C+c], want)
					}
				}
			}
		}
	}
}
