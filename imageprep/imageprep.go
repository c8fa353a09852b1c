// Package imageprep turns image files into the network's input: it
// decodes PNG and JPEG with a limit on the decoded size that is checked
// from the header alone, resizes and crops it as the network's form says
// (Form), and normalises. The image-folder dataset, verify, `pipeline
// predict` and the Go API (package classify) all prepare images with it,
// so they agree to the bit.
package imageprep

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
)

// Version changes whenever Stored computes other values, so that what was
// prepared by an older one is prepared again.
const Version = 3

// MaxPixels is the largest image decoded, width times height: a PNG of
// 100,000 × 100,000 pixels is a few KB on disk and 40 GB decoded.
const MaxPixels = 50_000_000

// ErrTooLarge is wrapped by the error for an image of more than MaxPixels.
var ErrTooLarge = errors.New("image too large")

// A codec is one of the two formats read, found by its magic bytes.
type codec struct {
	name         string
	magic        string
	decode       func(io.Reader) (image.Image, error)
	decodeConfig func(io.Reader) (image.Config, error)
}

var codecs = []codec{
	{"PNG", "\x89PNG\r\n\x1a\n", png.Decode, png.DecodeConfig},
	{"JPEG", "\xff\xd8", jpeg.Decode, jpeg.DecodeConfig},
}

// Decode decodes a PNG or JPEG image after checking, from its header, that
// it has at most MaxPixels pixels. The format is chosen by the file's
// first bytes, not through image.Decode's registry, where any package
// linked in (GIF, TIFF, WebP...) adds formats that the rest of the program
// does not claim to read.
func Decode(b []byte) (image.Image, error) {
	var c *codec
	for i := range codecs {
		if bytes.HasPrefix(b, []byte(codecs[i].magic)) {
			c = &codecs[i]
			break
		}
	}
	if c == nil {
		return nil, fmt.Errorf("not a PNG or JPEG image (%s)", sniff(b))
	}
	cfg, err := c.decodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a readable %s image (%v)", c.name, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, fmt.Errorf("empty %s image (%d×%d)", c.name, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: %s of %d×%d pixels, more than %d", ErrTooLarge, c.name, cfg.Width, cfg.Height, MaxPixels)
	}
	img, err := c.decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a readable %s image (%v)", c.name, err)
	}
	return img, nil
}

// sniff names what b holds, for the error that refuses it.
func sniff(b []byte) string {
	for _, f := range []struct{ magic, name string }{
		{"GIF8", "a GIF image"}, {"II*\x00", "a TIFF image"}, {"MM\x00*", "a TIFF image"}, {"BM", "a BMP image"},
		{"RIFF", "a RIFF file, such as a WebP image"}, {"\x00\x00\x00", "an ISO media file, such as HEIC or AVIF"},
	} {
		if bytes.HasPrefix(b, []byte(f.magic)) {
			return f.name
		}
	}
	if len(b) == 0 {
		return "an empty file"
	}
	return "an unknown format"
}

// Open reads and decodes the image file at path (see ReadFile and Decode).
// Its errors are *fs.PathError, naming the file (Reason gives what is
// wrong alone).
func Open(path string) (image.Image, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := Decode(b)
	if err != nil {
		return nil, &fs.PathError{Op: "decode", Path: path, Err: err}
	}
	return img, nil
}

// ReadFile reads an image file's bytes. A compressed image is far smaller
// than MaxPixels decoded, so a file larger than that many bytes is refused
// before it is read.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4*MaxPixels+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 4*MaxPixels {
		return nil, &fs.PathError{Op: "decode", Path: path, Err: fmt.Errorf("%w: a file of more than %d bytes", ErrTooLarge, 4*MaxPixels)}
	}
	return b, nil
}

// Pixels returns the width times height that the PNG or JPEG image b
// declares in its header, or 0 if it declares none that Decode would take.
func Pixels(b []byte) int64 {
	for _, c := range codecs {
		if bytes.HasPrefix(b, []byte(c.magic)) {
			if cfg, err := c.decodeConfig(bytes.NewReader(b)); err == nil && int64(cfg.Width)*int64(cfg.Height) <= MaxPixels {
				return int64(max(0, cfg.Width)) * int64(max(0, cfg.Height))
			}
		}
	}
	return 0
}

// Reason returns what is wrong with a file from Open's error, without the
// file's name, for lists that name it already.
func Reason(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// A Form is how a picture becomes a network's input of size × size: the
// one definition that image-folder datasets, verify, predict, package
// classify and the export's metadata share, so that the accuracy verify
// measures on a dataset's stored copy is what a file of the same picture
// gets.
type Form int

const (
	// Squash resizes the whole picture to size × size, the aspect ratio
	// not kept: the CIFAR form, whose pictures are small and square.
	Squash Form = iota
	// CentreCrop resizes the picture's short side to Side(size), the
	// aspect ratio kept, and takes the centre size × size: the official
	// ImageNet evaluation, Resize(256) then CenterCrop(224).
	CentreCrop
)

func (f Form) String() string {
	if f == Squash {
		return "squash"
	}
	return "centre-crop"
}

// Side returns the side of the square a dataset stores for inputs of
// size: size for Squash; for CentreCrop size·256/224, with a margin of
// whole pixels on each side, from which evaluation takes the centre and
// training its random crops.
func (f Form) Side(size int) int {
	if f == Squash {
		return size
	}
	return size + 2*int(math.Round(float64(size)*16/224))
}

// Describe says in words how a picture becomes the input of size, as the
// export's metadata records it.
func (f Form) Describe(size int) string {
	const resample = "area average where it shrinks, linear interpolation where it grows"
	if f == Squash {
		return fmt.Sprintf("RGB; resize the whole picture to %d×%d, the aspect ratio not kept (%s); quantise to 8 bits; scale to [0, 1]", size, size, resample)
	}
	return fmt.Sprintf("RGB; resize the short side to %d, the aspect ratio kept, the long side truncated to whole pixels (%s); quantise to 8 bits; crop the centre %d×%d; scale to [0, 1]",
		f.Side(size), resample, size, size)
}

// Stored returns img as a dataset stores it for inputs of size: side ×
// side bytes (C, H, W), side = f.Side(size).
func (f Form) Stored(img image.Image, size int) []byte {
	src := toRGBA(img)
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	side := f.Side(size)
	if f == Squash {
		return resize(src, taps(w, side), taps(h, side))
	}
	// The short side becomes side, the long one side·long/short truncated
	// (as torchvision's Resize does); the centre square is kept, its
	// offset rounded half to even (as its CenterCrop does).
	rw, rh := side, side
	if w < h {
		rh = int(float64(side) * float64(h) / float64(w))
	} else {
		rw = int(float64(side) * float64(w) / float64(h))
	}
	x0, y0 := int(math.RoundToEven(float64(rw-side)/2)), int(math.RoundToEven(float64(rh-side)/2))
	return resize(src, taps(w, rw)[x0:x0+side], taps(h, rh)[y0:y0+side])
}

// Input returns img as the network's input of size × size, RGB in [0, 1],
// channel by channel (C, H, W): the centre of what Stored keeps, so that
// it equals what verify takes from a dataset.
func (f Form) Input(img image.Image, size int) []float32 {
	side := f.Side(size)
	return Centre(f.Stored(img, size), side, size)
}

// Centre returns the centre size × size of a stored image of side × side
// bytes (C, H, W), scaled to [0, 1].
func Centre(stored []byte, side, size int) []float32 {
	off := (side - size) / 2
	out := make([]float32, 0, 3*size*size)
	for c := range 3 {
		for y := range size {
			row := stored[(c*side+y+off)*side+off:]
			for x := range size {
				out = append(out, float32(row[x])/255)
			}
		}
	}
	return out
}

// resize resamples src to len(wx) × len(wy) pixels, output pixel (x, y)
// being wx[x] along the rows and wy[y] along the columns, and returns
// them as bytes (C, H, W). Each axis is resampled on its own: where it
// shrinks, an output pixel is the average of the input pixels it covers
// (partly covered ones weighted by how much), so a photo does not alias;
// where it grows, it is interpolated linearly between the two nearest
// input pixels, edges clamped.
func resize(src *image.RGBA, wx, wy []tap) []byte {
	h, ow, oh := src.Bounds().Dy(), len(wx), len(wy)
	// Rows first: (h, ow, 3), then columns into (3, oh, ow).
	rows := make([]float64, h*ow*3)
	for y := range h {
		line := src.Pix[y*src.Stride:]
		for ox, t := range wx {
			var r, g, b float64
			for k, wt := range t.w {
				p := line[4*(t.first+k):]
				r, g, b = r+wt*float64(p[0]), g+wt*float64(p[1]), b+wt*float64(p[2])
			}
			o := (y*ow + ox) * 3
			rows[o], rows[o+1], rows[o+2] = r, g, b
		}
	}
	out := make([]byte, 3*oh*ow)
	for oy, t := range wy {
		for ox := range ow {
			var rgb [3]float64
			for k, wt := range t.w {
				p := rows[((t.first+k)*ow+ox)*3:]
				for c := range 3 {
					rgb[c] += wt * p[c]
				}
			}
			for c := range 3 {
				out[(c*oh+oy)*ow+ox] = byte(math.Round(max(0, min(255, rgb[c]))))
			}
		}
	}
	return out
}

// tap is one output pixel's weights over consecutive input pixels from
// first.
type tap struct {
	first int
	w     []float64
}

// taps returns each of out output pixels' weights over in input pixels
// (see resize).
func taps(in, out int) []tap {
	s := float64(in) / float64(out)
	ts := make([]tap, out)
	for o := range ts {
		if s >= 1 { // the input interval [o·s, (o+1)·s), by overlap
			lo, hi := float64(o)*s, float64(o+1)*s
			first := int(lo)
			for i := first; float64(i) < hi && i < in; i++ {
				cover := min(hi, float64(i+1)) - max(lo, float64(i))
				ts[o].w = append(ts[o].w, cover/s)
			}
			ts[o].first = first
			continue
		}
		c := (float64(o)+0.5)*s - 0.5 // pixel centres at integers
		i0 := int(math.Floor(c))
		a := c - float64(i0)
		lo, hi := max(0, min(in-1, i0)), max(0, min(in-1, i0+1))
		if lo == hi {
			ts[o] = tap{first: lo, w: []float64{1}}
		} else {
			ts[o] = tap{first: lo, w: []float64{1 - a, a}}
		}
	}
	return ts
}

// toRGBA returns img as 8-bit RGBA pixels in memory. Reading a decoded
// JPEG (YCbCr) through At converts and allocates for every sample, which
// made shrinking a 12-megapixel photo take seconds; image/draw converts
// the whole image at once.
func toRGBA(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok {
		return r
	}
	b := img.Bounds()
	r := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(r, r.Bounds(), img, b.Min, draw.Src)
	return r
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
