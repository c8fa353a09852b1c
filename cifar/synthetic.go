package cifar

import (
	"math"
	"math/rand/v2"
)

// SyntheticClasses are the classes of the synthetic dataset: five shapes and
// five textures, each drawn in random colours at a random place and scale.
var SyntheticClasses = []string{
	"disc", "square", "triangle", "cross", "ring",
	"horizontal-stripes", "vertical-stripes", "checkerboard", "diagonal-stripes", "dots",
}

// Synthetic generates a CIFAR-shaped dataset of nTrain and nTest images from
// seed. The same arguments always give the same bytes. Labels cycle through
// the classes, so every class has the same count (give or take one).
func Synthetic(seed uint64, nTrain, nTest int) *Dataset {
	// Train and test come from separate streams, so changing one count
	// leaves the other split's images unchanged.
	return &Dataset{
		Name:    "synthetic",
		Classes: SyntheticClasses,
		Train:   syntheticSplit(rand.New(rand.NewPCG(seed, 1)), nTrain),
		Test:    syntheticSplit(rand.New(rand.NewPCG(seed, 2)), nTest),
	}
}

func syntheticSplit(rng *rand.Rand, n int) Split {
	s := Split{Images: make([]byte, n*ImageSize), Labels: make([]byte, n)}
	for i := range n {
		label := i % len(SyntheticClasses)
		s.Labels[i] = byte(label)
		drawSynthetic(s.Images[i*ImageSize:(i+1)*ImageSize], label, rng)
	}
	return s
}

// drawSynthetic paints one image of class label into img (C, H, W).
func drawSynthetic(img []byte, label int, rng *rand.Rand) {
	var bg, fg [C]float64
	for c := range C {
		bg[c] = 40 + 170*rng.Float64()
		// Keep the shape visible: at least 60 levels from the background.
		d := 60 + 80*rng.Float64()
		if bg[c] > 127 {
			d = -d
		}
		fg[c] = bg[c] + d
	}
	cx := 10 + 12*rng.Float64()
	cy := 10 + 12*rng.Float64()
	r := 5 + 5*rng.Float64()        // shape radius
	period := 4 + 4*rng.Float64()   // texture period
	phase := period * rng.Float64() // texture offset
	noise := 4 + 12*rng.Float64()
	for y := range H {
		for x := range W {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			in := false
			switch label {
			case 0: // disc
				in = dx*dx+dy*dy < r*r
			case 1: // square
				in = math.Abs(dx) < r*0.85 && math.Abs(dy) < r*0.85
			case 2: // triangle, apex up
				in = dy < r*0.8 && dy > -r && math.Abs(dx) < (dy+r)*0.6
			case 3: // cross
				in = (math.Abs(dx) < r/3 && math.Abs(dy) < r) || (math.Abs(dy) < r/3 && math.Abs(dx) < r)
			case 4: // ring
				d := math.Sqrt(dx*dx + dy*dy)
				in = d < r && d > r*0.55
			case 5:
				in = math.Mod(float64(y)+phase, period) < period/2
			case 6:
				in = math.Mod(float64(x)+phase, period) < period/2
			case 7:
				in = (math.Mod(float64(x)+phase, period) < period/2) != (math.Mod(float64(y)+phase, period) < period/2)
			case 8:
				in = math.Mod(float64(x+y)+phase, period) < period/2
			case 9: // dots on a grid
				mx := math.Mod(float64(x)+phase, period) - period/2
				my := math.Mod(float64(y)+phase, period) - period/2
				in = mx*mx+my*my < period*period/16
			}
			for c := range C {
				v := bg[c]
				if in {
					v = fg[c]
				}
				v += noise * rng.NormFloat64()
				img[c*H*W+y*W+x] = byte(max(0, min(255, math.Round(v))))
			}
		}
	}
}
