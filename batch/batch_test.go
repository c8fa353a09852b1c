package batch

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/imageprep"
)

const (
	imageSize = cifar.ImageSize
	H, W, C   = cifar.H, cifar.W, cifar.C
)

func TestBatcherEvaluation(t *testing.T) {
	d := cifar.Synthetic(1, 10, 5)
	b := &Batcher{Images: bytes.NewReader(d.Test.Images), Labels: widen(d.Test.Labels), Batch: 2, Mean: artifacts.CIFARMean[:], Std: artifacts.CIFARStd[:], Size: 32}
	if b.Steps() != 3 {
		t.Fatalf("Steps = %d for 5 examples in batches of 2, want 3 (last one padded)", b.Steps())
	}
	x, labels := make([]float32, 2*imageSize), make([]int32, 2)
	if n, err := b.Fill(x, labels, 0, 2); err != nil || n != 1 || labels[0] != int32(d.Test.Labels[4]) {
		t.Fatalf("last batch: %d real, labels %v", n, labels)
	}
	// Pixel (y=3, x=5) of channel 1 of example 4, normalised, channels last.
	want := (float32(d.Test.Images[4*imageSize+1*1024+3*32+5])/255 - artifacts.CIFARMean[1]) / artifacts.CIFARStd[1]
	if got := x[(3*32+5)*3+1]; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("normalised pixel = %v, want %v", got, want)
	}
	for _, v := range x[imageSize:] {
		if v != 0 {
			t.Fatal("padding slot of the last batch is not zero")
		}
	}
}

func TestBatcherAugmentation(t *testing.T) {
	d := cifar.Synthetic(2, 64, 0)
	b := &Batcher{Images: bytes.NewReader(d.Train.Images), Labels: widen(d.Train.Labels), Batch: 16, Seed: 7, Augment: true, Mean: artifacts.CIFARMean[:], Std: artifacts.CIFARStd[:], Size: 32}
	x1, l1 := make([]float32, 16*imageSize), make([]int32, 16)
	x2, l2 := make([]float32, 16*imageSize), make([]int32, 16)
	b.Fill(x1, l1, 3, 1)
	// A fresh batcher (as after a restart) rebuilds the same batch.
	(&Batcher{Images: bytes.NewReader(d.Train.Images), Labels: widen(d.Train.Labels), Batch: 16, Seed: 7, Augment: true, Mean: artifacts.CIFARMean[:], Std: artifacts.CIFARStd[:], Size: 32}).Fill(x2, l2, 3, 1)
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
	src := make([]byte, imageSize)
	for i := range src {
		src[i] = byte(i * 7)
	}
	b := &Batcher{Mean: []float32{0.1, 0.2, 0.3}, Std: []float32{0.5, 0.6, 0.7}, Size: 32} // not CIFAR's
	dst := make([]float32, imageSize)
	for _, tc := range []struct {
		dy, dx int
		flip   bool
	}{{4, 4, false}, {0, 8, true}, {8, 0, false}, {3, 6, true}} {
		b.padCrop(dst, src, tc.dy, tc.dx, tc.flip)
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

// The large-image regime: evaluation takes the centre of the stored
// square, as imageprep.Centre does; training crops at random within the
// whole square and resizes to the output, the same crop for the same
// (seed, epoch, position).
func TestBatcherResized(t *testing.T) {
	const n, out = 64, 56
	img := make([]byte, 3*n*n) // each value is its column: a ramp left to right
	for c := range 3 {
		for y := range n {
			for x := range n {
				img[(c*n+y)*n+x] = byte(3 * x)
			}
		}
	}
	one := []float32{1, 1, 1}
	zero := []float32{0, 0, 0}
	b := &Batcher{Images: bytes.NewReader(img), Labels: []uint16{0}, Size: out, Side: n, Batch: 1, Mean: zero, Std: one, Resized: true}
	x, l := make([]float32, 3*out*out), make([]int32, 1)
	b.Fill(x, l, 0, 0)
	centre := imageprep.Centre(img, n, out) // (C, H, W)
	for y := range out {
		for j := range out {
			if got, want := x[(y*out+j)*3+1], centre[(out+y)*out+j]; got != want || want != float32(3*(j+4))/255 {
				t.Fatalf("evaluation (%d, %d) = %v, imageprep.Centre %v, want %v", y, j, got, want, float32(3*(j+4))/255)
			}
		}
	}
	b.Augment, b.Seed = true, 3
	y1, y2 := make([]float32, 3*out*out), make([]float32, 3*out*out)
	b.Fill(y1, l, 2, 0)
	(&Batcher{Images: bytes.NewReader(img), Labels: []uint16{0}, Size: out, Side: n, Batch: 1, Mean: zero, Std: one, Resized: true, Augment: true, Seed: 3}).Fill(y2, l, 2, 0)
	if !slices.Equal(y1, y2) {
		t.Fatal("the same (seed, epoch, position) gave different crops")
	}
	distinct := map[float32]bool{}
	lowest := float32(1)
	for e := range 20 {
		b.Fill(y1, l, e, 0)
		for _, v := range y1 {
			if v < 0 || v > 3*float32(n-1)/255+1e-6 {
				t.Fatalf("epoch %d: value %v outside the image's", e, v)
			}
			lowest = min(lowest, v)
		}
		distinct[y1[0]] = true
	}
	if len(distinct) < 5 {
		t.Errorf("20 epochs gave %d different first pixels: crops do not vary", len(distinct))
	}
	if lowest >= 3*4.0/255 {
		t.Errorf("20 epochs never reached the stored square's margin (lowest value %v): crops keep to the centre", lowest*255)
	}
}

func widen(b []byte) []uint16 {
	out := make([]uint16, len(b))
	for i, v := range b {
		out[i] = uint16(v)
	}
	return out
}

// An image the file no longer holds (a dataset truncated after it was
// opened) is an error that says which, not a batch of zeros.
func TestFillReadError(t *testing.T) {
	img := make([]byte, 2*3*4*4)
	b := &Batcher{Images: bytes.NewReader(img[:len(img)-1]), Labels: []uint16{0, 0}, Size: 4, Batch: 2, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}
	n, err := b.Fill(make([]float32, b.Floats()), make([]int32, 2), 0, 0)
	if err == nil || n != 1 || !strings.Contains(err.Error(), "read image 2 of 2") {
		t.Errorf("Fill of a truncated split = %d, %v", n, err)
	}
}
