package imageprep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif" // registers GIF with image.Decode, as a linked-in package would
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A PNG whose header claims 100,000 × 100,000 pixels is refused from the
// header, before anything is decoded; a small one decodes.
func TestDecodeRefusesHugeImages(t *testing.T) {
	b := encodePNG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	if _, err := Decode(b); err != nil {
		t.Fatal(err)
	}
	// IHDR is the first chunk: length (4), "IHDR", width, height, ..., CRC.
	huge := bytes.Clone(b)
	binary.BigEndian.PutUint32(huge[16:], 100_000)
	binary.BigEndian.PutUint32(huge[20:], 100_000)
	binary.BigEndian.PutUint32(huge[29:], crc32.ChecksumIEEE(huge[12:29]))
	_, err := Decode(huge)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of a 100,000² PNG = %v, want ErrTooLarge", err)
	}
	p := filepath.Join(t.TempDir(), "huge.png")
	os.WriteFile(p, huge, 0o644)
	_, err = Open(p)
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), "decode "+p+": ") || strings.Contains(Reason(err), p) {
		t.Errorf("Open of a 100,000² PNG = %v (reason %q), want ErrTooLarge naming the file, and a reason that does not", err, Reason(err))
	}
	for _, bad := range [][]byte{b[:len(b)/2], []byte("not an image")} {
		if _, err := Decode(bad); err == nil || errors.Is(err, ErrTooLarge) {
			t.Errorf("Decode of %d damaged bytes = %v", len(bad), err)
		}
	}
}

// Only PNG and JPEG are read, whatever else image.Decode knows (this test
// registers GIF there); anything else is refused by name.
func TestDecodeReadsPNGAndJPEGOnly(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	var jb, gb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gb, img, nil); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"PNG": encodePNG(t, img), "JPEG": jb.Bytes()} {
		if got, err := Decode(b); err != nil || got.Bounds().Dx() != 3 || got.Bounds().Dy() != 2 {
			t.Errorf("Decode of a 3×2 %s = %v, %v", name, got, err)
		}
	}
	for b, want := range map[string]string{gb.String(): "GIF", "II*\x00rest": "TIFF", "": "empty", "hello": "unknown"} {
		if _, err := Decode([]byte(b)); err == nil || !strings.Contains(err.Error(), "not a PNG or JPEG image") || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode of %.6q = %v, want a refusal naming %s", b, err, want)
		}
	}
}

// Squash keeps an image of the right size as it is, and shrinks by
// averaging the pixels under each output pixel: a 96×96 checkerboard
// becomes 32×32 pixels of 5/9 and 4/9 of white.
func TestSquash(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	x := Squash.Stored(img, 32)
	for y := range 32 {
		for xx := range 32 {
			for c := range 3 {
				if got, want := x[(c*32+y)*32+xx], img.Pix[(y*32+xx)*4+c]; got != want {
					t.Fatalf("same size: (%d,%d,%d) = %v, want %v", c, y, xx, got, want)
				}
			}
		}
	}
	board := image.NewGray(image.Rect(0, 0, 96, 96))
	for y := range 96 {
		for xx := range 96 {
			if (xx+y)%2 == 0 {
				board.SetGray(xx, y, color.Gray{Y: 255})
			}
		}
	}
	x = Squash.Stored(board, 32)
	for y := range 32 {
		for xx := range 32 {
			want := byte(113)  // 4/9 of 255
			if (xx+y)%2 == 0 { // the block's corner is white: 5 of 9
				want = 142
			}
			if got := x[y*32+xx]; got != want {
				t.Fatalf("checkerboard (%d,%d) = %v, want %v", y, xx, got, want)
			}
		}
	}
}

// Growing interpolates between the nearest pixels, edges clamped; a
// shrink by a fraction weighs a partly covered pixel by its coverage.
func TestSquashAxes(t *testing.T) {
	grow := image.NewGray(image.Rect(0, 0, 2, 2))
	grow.Pix = []byte{0, 255, 0, 255}
	x := Squash.Stored(grow, 4)
	if want := []byte{0, 64, 191, 255}; !bytes.Equal(x[4:8], want) { // channel 0, row 1: 0, 63.75, 191.25, 255
		t.Errorf("2 → 4: %v, want %v", x[4:8], want)
	}
	shrink := image.NewGray(image.Rect(0, 0, 3, 3))
	for y := range 3 {
		copy(shrink.Pix[y*3:], []byte{0, 90, 180})
	}
	x = Squash.Stored(shrink, 2)
	if want := []byte{30, 150}; !bytes.Equal(x[:2], want) { // 0 and ½·90 over 1.5; ½·90 and 180 over 1.5
		t.Errorf("3 → 2: %v, want %v", x[:2], want)
	}
}

// CentreCrop resizes the short side to 256 (for 224 inputs), keeps the
// aspect ratio, and crops the centre, in portrait and landscape: on a
// ramp whose value is its row (or column), output row i of the input is
// input position (i + 64 + 16 + ½)·240/384 − ½, the 384 rows of the
// resized 160×240 picture less 64 each side to the stored square, and 16
// more to the centre 224.
func TestCentreCrop(t *testing.T) {
	if side := CentreCrop.Side(224); side != 256 {
		t.Fatalf("Side(224) = %d, want 256", side)
	}
	portrait := image.NewGray(image.Rect(0, 0, 160, 240))
	landscape := image.NewGray(image.Rect(0, 0, 240, 160))
	for y := range 240 {
		for x := range 160 {
			portrait.Pix[y*160+x] = byte(y)
			landscape.Pix[x*240+y] = byte(y)
		}
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		at   func(x []float32, i int) float32 // the input's value at position i along the long side
	}{
		{"portrait", portrait, func(x []float32, i int) float32 { return x[i*224+100] }},
		{"landscape", landscape, func(x []float32, i int) float32 { return x[100*224+i] }},
	} {
		x := CentreCrop.Input(tc.img, 224)
		if len(x) != 3*224*224 {
			t.Fatalf("%s: %d values", tc.name, len(x))
		}
		for _, i := range []int{0, 1, 100, 223} {
			want := math.Round((float64(i+80)+0.5)*240/384-0.5) / 255
			if got := tc.at(x, i); math.Abs(float64(got)-want) > 1e-6 {
				t.Errorf("%s: position %d = %v, want %v", tc.name, i, got*255, want*255)
			}
		}
		stored := CentreCrop.Stored(tc.img, 224)
		if !slices.Equal(x, Centre(stored, 256, 224)) {
			t.Errorf("%s: Input is not the centre of Stored", tc.name)
		}
	}
}

func TestNormalize(t *testing.T) {
	x := []float32{0, 0.5, 1, 0.25, 0.75, 0}
	Normalize(x, []float32{0.5, 0.25, 0}, []float32{0.5, 0.25, 2})
	if want := []float32{-1, 0, 3, 0, 0.375, 0}; !equal(x, want) { // (C=3, 2 pixels)
		t.Errorf("Normalize = %v, want %v", x, want)
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			return false
		}
	}
	return len(a) == len(b)
}
