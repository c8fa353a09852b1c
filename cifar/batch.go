package cifar

import "math/rand/v2"

// Per-channel normalisation of CIFAR-10 images scaled to [0, 1]
// (condensenet.md, "Training recipe").
var (
	Mean = [C]float32{0.4914, 0.4824, 0.4467}
	Std  = [C]float32{0.2471, 0.2435, 0.2616}
)

// A Batcher turns a split into batches of normalised float32 images,
// channels last (N, H, W, C), as the engine takes them. Everything random
// is derived from Seed, the epoch and the position, so any batch can be
// rebuilt exactly after a restart without saving generator state.
type Batcher struct {
	Images []byte // (N, C, H, W) as stored
	Labels []byte
	Batch  int
	Seed   uint64
	// Mean and Std normalise each channel of the images scaled to [0, 1]:
	// the dataset's (artifacts.Dataset), Mean and Std for CIFAR.
	Mean, Std []float32
	// Augment applies a random 32×32 crop of the image padded by 4 zero
	// pixels and a random horizontal flip, and shuffles every epoch.
	Augment bool

	permEpoch int
	perm      []int
	pcg       *rand.PCG  // reseeded for every example
	rng       *rand.Rand // draws from pcg
}

// Steps returns the number of batches in an epoch. Training drops the last
// partial batch; evaluation (no Augment) keeps it, padded.
func (b *Batcher) Steps() int {
	n := len(b.Labels)
	if b.Augment {
		return n / b.Batch
	}
	return (n + b.Batch - 1) / b.Batch
}

// Fill writes batch step of epoch into x (Batch·H·W·C) and labels, and
// returns how many examples are real: fewer than Batch only for the last
// evaluation batch, whose remaining slots are zero images with label 0.
func (b *Batcher) Fill(x []float32, labels []int32, epoch, step int) int {
	n := len(b.Labels)
	if b.Augment && (b.perm == nil || b.permEpoch != epoch) {
		// The epoch's order: a permutation from (seed, epoch).
		b.perm = rand.New(rand.NewPCG(b.Seed, uint64(epoch))).Perm(n)
		b.permEpoch = epoch
	}
	real := 0
	for i := range b.Batch {
		pos := step*b.Batch + i
		dst := x[i*ImageSize : (i+1)*ImageSize]
		if pos >= n {
			clear(dst)
			labels[i] = 0
			continue
		}
		idx := pos
		dy, dx, flip := 4, 4, false
		if b.Augment {
			idx = b.perm[pos]
			// Each example's crop and flip come from its own stream.
			if b.pcg == nil {
				b.pcg = rand.NewPCG(0, 0)
				b.rng = rand.New(b.pcg)
			}
			b.pcg.Seed(b.Seed^0x6175676d656e74, uint64(epoch)<<32|uint64(pos))
			dy, dx, flip = b.rng.IntN(9), b.rng.IntN(9), b.rng.IntN(2) == 1
		}
		b.write(dst, b.Images[idx*ImageSize:(idx+1)*ImageSize], dy, dx, flip)
		labels[i] = int32(b.Labels[idx])
		real++
	}
	return real
}

// write crops the image padded by 4 at offset (dy, dx), flips it if asked,
// and normalises it into dst, channels last. Padding is zero before
// normalisation, as torchvision's RandomCrop(32, padding=4) pads.
func (b *Batcher) write(dst []float32, src []byte, dy, dx int, flip bool) {
	for y := range H {
		sy := y + dy - 4
		for x := range W {
			cx := x
			if flip {
				cx = W - 1 - x
			}
			sx := cx + dx - 4
			for c := range C {
				v := float32(0)
				if sy >= 0 && sy < H && sx >= 0 && sx < W {
					v = float32(src[c*H*W+sy*W+sx]) / 255
				}
				dst[(y*W+x)*C+c] = (v - b.Mean[c]) / b.Std[c]
			}
		}
	}
}
