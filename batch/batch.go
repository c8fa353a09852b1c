// Package batch turns a dataset's stored images into batches of
// normalised float32 images, channels last (N, H, W, C), as the engine
// takes them, with the official code's augmentation for each regime:
// small images (CIFAR) are padded by 4 and cropped at random and flipped;
// large ones (ImageNet) get a random resized crop and a flip for training
// and the centre crop for evaluation (imageprep.CentreCrop's, taken from
// the larger square the dataset stores).
package batch

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
)

// A Batcher makes batches of one split. Everything random is derived from
// Seed, the epoch and the position, so any batch can be rebuilt exactly
// after a restart without saving generator state.
type Batcher struct {
	// Images are (N, 3, Side, Side) bytes as stored, read an image at a
	// time: a dataset's file needs no more memory than a batch.
	Images io.ReaderAt
	Labels []uint16
	Size   int // the side of the images produced
	Side   int // the side of the images stored (0: Size; only Resized may differ)
	Batch  int
	Seed   uint64
	// Mean and Std normalise each channel of the images scaled to [0, 1].
	Mean, Std []float32
	// Augment applies the training augmentation, and shuffles every epoch.
	Augment bool
	// Resized selects the large-image regime (see the package comment).
	Resized bool

	permEpoch int
	perm      []int
	pcg       *rand.PCG  // reseeded for every example
	rng       *rand.Rand // draws from pcg
	stored    []byte     // the image being read
}

// Floats returns the floats of one batch of images.
func (b *Batcher) Floats() int { return b.Batch * 3 * b.Size * b.Size }

// Steps returns the number of batches in an epoch. Training drops the last
// partial batch; evaluation (no Augment) keeps it, padded.
func (b *Batcher) Steps() int {
	n := len(b.Labels)
	if b.Augment {
		return n / b.Batch
	}
	return (n + b.Batch - 1) / b.Batch
}

// Fill writes batch step of epoch into x (Batch·Size·Size·3) and labels,
// and returns how many examples are real: fewer than Batch only for the
// last evaluation batch, whose remaining slots are zero images with label 0.
// Its error is a failure to read Images.
func (b *Batcher) Fill(x []float32, labels []int32, epoch, step int) (int, error) {
	n, size, stored := len(b.Labels), 3*b.Size*b.Size, 3*b.side()*b.side()
	if len(b.stored) != stored {
		b.stored = make([]byte, stored)
	}
	if b.Augment && (b.perm == nil || b.permEpoch != epoch) {
		// The epoch's order: a permutation from (seed, epoch).
		b.perm = rand.New(rand.NewPCG(b.Seed, uint64(epoch))).Perm(n)
		b.permEpoch = epoch
	}
	real := 0
	for i := range b.Batch {
		pos := step*b.Batch + i
		dst := x[i*size : (i+1)*size]
		if pos >= n {
			clear(dst)
			labels[i] = 0
			continue
		}
		idx := pos
		if b.Augment {
			idx = b.perm[pos]
			// Each example's crop and flip come from its own stream.
			if b.pcg == nil {
				b.pcg = rand.NewPCG(0, 0)
				b.rng = rand.New(b.pcg)
			}
			b.pcg.Seed(b.Seed^0x6175676d656e74, uint64(epoch)<<32|uint64(pos))
		}
		src := b.stored
		if _, err := b.Images.ReadAt(src, int64(idx)*int64(stored)); err != nil {
			return real, fmt.Errorf("read image %d of %d: %w", idx+1, n, err)
		}
		if b.Resized {
			b.resized(dst, src)
		} else {
			dy, dx, flip := 4, 4, false
			if b.Augment {
				dy, dx, flip = b.rng.IntN(9), b.rng.IntN(9), b.rng.IntN(2) == 1
			}
			b.padCrop(dst, src, dy, dx, flip)
		}
		labels[i] = int32(b.Labels[idx])
		real++
	}
	return real, nil
}

// padCrop crops the image padded by 4 at offset (dy, dx), flips it if
// asked, and normalises it into dst, channels last. Padding is zero before
// normalisation, as torchvision's RandomCrop(32, padding=4) pads.
func (b *Batcher) padCrop(dst []float32, src []byte, dy, dx int, flip bool) {
	s := b.Size
	for y := range s {
		sy := y + dy - 4
		for x := range s {
			cx := x
			if flip {
				cx = s - 1 - x
			}
			sx := cx + dx - 4
			for c := range 3 {
				v := float32(0)
				if sy >= 0 && sy < s && sx >= 0 && sx < s {
					v = float32(src[(c*s+sy)*s+sx]) / 255
				}
				dst[(y*s+x)*3+c] = (v - b.Mean[c]) / b.Std[c]
			}
		}
	}
}

// side returns the side of the stored images.
func (b *Batcher) side() int { return cmp.Or(b.Side, b.Size) }

// resized writes a crop of the stored image, normalised, into dst. For
// evaluation it is the centre Size × Size, as imageprep.Centre takes it;
// for training torchvision's RandomResizedCrop (8% to all of the area,
// aspect ratio 3/4 to 4/3) resized to Size × Size (bilinear), and a
// random flip.
func (b *Batcher) resized(dst []float32, src []byte) {
	n, s := b.Size, b.side()
	if !b.Augment {
		off := (s - n) / 2
		for y := range n {
			for x := range n {
				for c := range 3 {
					v := float32(src[(c*s+y+off)*s+x+off]) / 255
					dst[(y*n+x)*3+c] = (v - b.Mean[c]) / b.Std[c]
				}
			}
		}
		return
	}
	fs := float64(s)
	x0, y0, w, h := 0.0, 0.0, fs, fs // the whole image if no draw fits
	for range 10 {
		area := fs * fs * (0.08 + 0.92*b.rng.Float64())
		ratio := math.Exp(math.Log(3.0/4) + (math.Log(4.0/3)-math.Log(3.0/4))*b.rng.Float64())
		cw, ch := math.Round(math.Sqrt(area*ratio)), math.Round(math.Sqrt(area/ratio))
		if cw >= 1 && ch >= 1 && cw <= fs && ch <= fs {
			x0, y0, w, h = float64(b.rng.IntN(s-int(cw)+1)), float64(b.rng.IntN(s-int(ch)+1)), cw, ch
			break
		}
	}
	flip := b.rng.IntN(2) == 1
	for y := range n {
		fy := y0 + (float64(y)+0.5)*h/float64(n) - 0.5
		for x := range n {
			cx := x
			if flip {
				cx = n - 1 - x
			}
			fx := x0 + (float64(cx)+0.5)*w/float64(n) - 0.5
			for c := range 3 {
				v := float32(bilinear(src[c*s*s:(c+1)*s*s], s, fx, fy)) / 255
				dst[(y*n+x)*3+c] = (v - b.Mean[c]) / b.Std[c]
			}
		}
	}
}

// bilinear samples a plane of n × n bytes at (fx, fy), pixel centres at
// integers, edges clamped.
func bilinear(plane []byte, n int, fx, fy float64) float64 {
	x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
	ax, ay := fx-float64(x0), fy-float64(y0)
	at := func(x, y int) float64 {
		return float64(plane[max(0, min(n-1, y))*n+max(0, min(n-1, x))])
	}
	return (1-ay)*((1-ax)*at(x0, y0)+ax*at(x0+1, y0)) + ay*((1-ax)*at(x0, y0+1)+ax*at(x0+1, y0+1))
}
