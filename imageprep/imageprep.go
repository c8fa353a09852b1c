// Package imageprep turns image files into the network's input: it
// decodes PNG and JPEG with a limit on the decoded size that is checked
// from the header alone, resizes to the network's square input, and
// normalises. `pipeline predict`, the image-folder dataset and the Go API
// (package classify) all prepare images with it, so they agree.
package imageprep

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"
	"io"
	"math"
	"os"
)

// MaxPixels is the largest image decoded, width times height: a PNG of
// 100,000 × 100,000 pixels is a few KB on disk and 40 GB decoded.
const MaxPixels = 50_000_000

// ErrTooLarge is wrapped by the error for an image of more than MaxPixels.
var ErrTooLarge = errors.New("image too large")

// Decode decodes a PNG or JPEG image after checking, from its header, that
// it has at most MaxPixels pixels.
func Decode(b []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a readable PNG or JPEG image (%v)", err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, fmt.Errorf("empty %s image (%d×%d)", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: %s of %d×%d pixels, more than %d", ErrTooLarge, format, cfg.Width, cfg.Height, MaxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a readable PNG or JPEG image (%v)", err)
	}
	return img, nil
}

// Open reads and decodes the image file at path (see Decode).
func Open(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A compressed image is far smaller than MaxPixels decoded; a file
	// larger than that many bytes is refused before it is read.
	b, err := io.ReadAll(io.LimitReader(f, 4*MaxPixels+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 4*MaxPixels {
		return nil, fmt.Errorf("%w: a file of more than %d bytes", ErrTooLarge, 4*MaxPixels)
	}
	return Decode(b)
}

// Pixels resizes img to size × size and returns it as RGB in [0, 1],
// channel by channel (C, H, W). Each output pixel averages the input
// pixels under it (its footprint, at least one input pixel wide, sampled
// bilinearly), so shrinking a photo does not alias and enlarging a small
// image interpolates.
func Pixels(img image.Image, size int) []float32 {
	r := img.Bounds()
	sx, sy := float64(r.Dx())/float64(size), float64(r.Dy())/float64(size)
	// taps per axis: enough to cover a footprint of s input pixels
	tx, ty := max(1, int(math.Ceil(sx))), max(1, int(math.Ceil(sy)))
	out := make([]float32, 3*size*size)
	for y := range size {
		for x := range size {
			var sum [3]float64
			for j := range ty {
				fy := float64(y)*sy + (float64(j)+0.5)*sy/float64(ty) - 0.5
				for i := range tx {
					fx := float64(x)*sx + (float64(i)+0.5)*sx/float64(tx) - 0.5
					rgb := bilinear(img, fx, fy)
					for c := range 3 {
						sum[c] += rgb[c]
					}
				}
			}
			for c := range 3 {
				out[(c*size+y)*size+x] = float32(sum[c] / float64(tx*ty))
			}
		}
	}
	return out
}

// bilinear samples img at (fx, fy), pixel centres at integers, edges
// clamped, as RGB in [0, 1].
func bilinear(img image.Image, fx, fy float64) [3]float64 {
	r := img.Bounds()
	clamp := func(v, lo, hi int) int { return max(lo, min(hi, v)) }
	x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
	ax, ay := fx-float64(x0), fy-float64(y0)
	var out [3]float64
	for _, s := range []struct {
		dx, dy int
		w      float64
	}{{0, 0, (1 - ax) * (1 - ay)}, {1, 0, ax * (1 - ay)}, {0, 1, (1 - ax) * ay}, {1, 1, ax * ay}} {
		if s.w == 0 {
			continue
		}
		px := clamp(r.Min.X+x0+s.dx, r.Min.X, r.Max.X-1)
		py := clamp(r.Min.Y+y0+s.dy, r.Min.Y, r.Max.Y-1)
		cr, cg, cb, _ := img.At(px, py).RGBA()
		out[0] += s.w * float64(cr) / 65535
		out[1] += s.w * float64(cg) / 65535
		out[2] += s.w * float64(cb) / 65535
	}
	return out
}

// Bytes quantises Pixels' values to bytes (0 to 255), as datasets store
// images.
func Bytes(x []float32) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = byte(math.Round(float64(max(0, min(1, v))) * 255))
	}
	return b
}

// Normalize maps x (C, H, W) in [0, 1] to (x − mean[c]) / std[c] in place.
func Normalize(x []float32, mean, std []float32) {
	n := len(x) / len(mean)
	for c := range mean {
		for i := range x[c*n : (c+1)*n] {
			x[c*n+i] = (x[c*n+i] - mean[c]) / std[c]
		}
	}
}
