package cpu

import (
	"fmt"
	"math"

	"github.com/condensenet/condensenet/engine"
)

// AvgPool2Forward averages 2×2 windows with stride 2: in (N, H, W, C) with
// pixels ldIn apart, out (N, H/2, W/2, C) with pixels ldOut apart.
func AvgPool2Forward(out, in []float32, n, h, w, c, ldIn, ldOut int, workers int) {
	oh, ow := h/2, w/2
	parallel(workers, n*oh, 5*n*oh*ow*c, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			b, oy := row/oh, row%oh
			avgPool2Row(out[(b*oh+oy)*ow*ldOut:], in[(b*h+2*oy)*w*ldIn:], ldIn, w*ldIn, ldOut, ow, c)
		}
	})
}

// AvgPool2Backward accumulates a quarter of each output gradient into the
// four inputs of its window.
func AvgPool2Backward(dIn, dOut []float32, n, h, w, c, ldIn, ldOut int, workers int) {
	oh, ow := h/2, w/2
	parallel(workers, n*oh, 9*n*oh*ow*c, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			b, oy := row/oh, row%oh
			avgPool2RowBack(dIn[(b*h+2*oy)*w*ldIn:], dOut[(b*oh+oy)*ow*ldOut:], ldIn, w*ldIn, ldOut, ow, c)
		}
	})
}

// checkAvgPool2Row panics unless x (or dx) holds two input rows of 2·ow
// pixels of c channels (pixels ldIn apart, rows rowIn apart) and y (or g)
// ow output pixels (ldOut apart).
func checkAvgPool2Row(y, x []float32, ldIn, rowIn, ldOut, ow, c int) {
	if ow < 1 || c < 1 || ldIn < c || ldOut < c || rowIn < 2*ow*ldIn || len(x) < rowIn+(2*ow-1)*ldIn+c || len(y) < (ow-1)*ldOut+c {
		panic(fmt.Sprintf("pool: %d pixels of %d channels (%d, %d and %d apart) from %d floats into %d", ow, c, ldIn, rowIn, ldOut, len(x), len(y)))
	}
}

// avgPool2RowGo is avgPool2Row's definition: output pixel ox of the row
// averages the window of input pixels 2·ox and 2·ox+1 of x's two rows.
func avgPool2RowGo(y, x []float32, ldIn, rowIn, ldOut, ow, c int) {
	for ox := range ow {
		i00 := 2 * ox * ldIn
		a, b := x[i00:i00+c], x[i00+ldIn:i00+ldIn+c]
		cc, d := x[i00+rowIn:i00+rowIn+c], x[i00+rowIn+ldIn:i00+rowIn+ldIn+c]
		out := y[ox*ldOut:][:c]
		for j := range out {
			out[j] = 0.25 * (a[j] + b[j] + cc[j] + d[j])
		}
	}
}

// avgPool2RowBackGo is avgPool2RowBack's definition: a quarter of output
// pixel ox's gradient added to each pixel of its window.
func avgPool2RowBackGo(dx, g []float32, ldIn, rowIn, ldOut, ow, c int) {
	for ox := range ow {
		dy := g[ox*ldOut:][:c]
		i00 := 2 * ox * ldIn
		for _, off := range [4]int{i00, i00 + ldIn, i00 + rowIn, i00 + rowIn + ldIn} {
			d := dx[off : off+c]
			for j, v := range dy {
				d[j] += 0.25 * v
			}
		}
	}
}

// NormPoolPlanes writes out[i·m + j], m = len(a.Index), the mean over
// image i's hw pixels of plane a.Index[j] (planes ld floats apart, the n
// images one after another in each) of max(float32(x·Scale[j]) +
// Shift[j], floor), summed as normSum sums (in sixteen lanes) and times
// 1/hw: a BatchNorm with its ReLU, GlobalAvgPoolForward and an
// index-select in one pass over the selected planes, equal to them up to
// the order of the sums (and the BatchNorm's assembly fusing its multiply
// and add).
func NormPoolPlanes(out, in []float32, a *engine.Affine, n, hw, ld int, workers int) {
	m := len(a.Index)
	if n < 1 || hw < 1 || ld < n*hw || len(a.Scale) != m || len(a.Shift) != m || len(out) < n*m {
		panic(fmt.Sprintf("pool: %d images of %d pixels in planes %d apart into %d outputs, %d selected with %d scales and %d shifts",
			n, hw, ld, len(out), m, len(a.Scale), len(a.Shift)))
	}
	engine.CheckIndices("norm-pool planes", a.Index, (len(in)-n*hw)/ld+1)
	floor := float32(math.Inf(-1))
	if a.ReLU {
		floor = 0
	}
	inv := 1 / float32(hw)
	parallel(workers, m, 2*n*hw*m, func(lo, hi int) {
		for i := range n {
			for j := lo; j < hi; j++ {
				out[i*m+j] = normSum(in[int(a.Index[j])*ld+i*hw:][:hw], a.Scale[j], a.Shift[j], floor) * inv
			}
		}
	})
}

// GlobalAvgPoolForward averages each image's H·W pixels: in (N, H, W, C)
// with pixels ldIn apart, out (N, C).
func GlobalAvgPoolForward(out, in []float32, n, hw, c, ldIn int) {
	inv := 1 / float32(hw)
	for b := range n {
		y := out[b*c : (b+1)*c]
		clear(y)
		for p := range hw {
			x := in[(b*hw+p)*ldIn:][:c]
			for j, v := range x {
				y[j] += v
			}
		}
		for j := range y {
			y[j] *= inv
		}
	}
}

// GlobalAvgPoolBackward accumulates dOut/(H·W) into every pixel.
func GlobalAvgPoolBackward(dIn, dOut []float32, n, hw, c, ldIn int) {
	inv := 1 / float32(hw)
	for b := range n {
		dy := dOut[b*c : (b+1)*c]
		for p := range hw {
			dx := dIn[(b*hw+p)*ldIn:][:c]
			for j, g := range dy {
				dx[j] += g * inv
			}
		}
	}
}

// AvgPool2Planes pools c planes, ldIn floats apart, each of n images of
// h×w floats one after another, into planes of n images of h/2×w/2,
// ldOut apart: each output the mean of its 2×2 window (an odd last row or
// column is dropped, as AvgPool2Forward drops it).
func AvgPool2Planes(out, in []float32, c, n, h, w, ldIn, ldOut int, workers int) {
	oh, ow := h/2, w/2
	if c < 1 || n < 1 || h < 2 || w < 2 || ldIn < n*h*w || ldOut < n*oh*ow {
		panic(fmt.Sprintf("pool: %d planes of %d images of %d×%d, %d and %d floats apart", c, n, h, w, ldIn, ldOut))
	}
	_, _ = out[(c-1)*ldOut+n*oh*ow-1], in[(c-1)*ldIn+n*h*w-1]
	parallel(workers, c, 5*c*n*oh*ow, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			dst, src := out[j*ldOut:][:n*oh*ow], in[j*ldIn:][:n*h*w]
			if h%2 == 0 && w%2 == 0 { // the images' row pairs follow one another
				avgPoolPlanes(dst, src, w, n*oh)
				continue
			}
			for i := range n * oh { // image i/oh's output row i%oh
				y := i/oh*h + 2*(i%oh)
				avgPoolRowGo(dst[i*ow:][:ow], src[y*w:][:w], src[(y+1)*w:][:w])
			}
		}
	})
}

func checkAvgPoolPlanes(dst, src []float32, w, rows int) {
	if w < 2 || w%2 != 0 || rows < 1 || len(src) < 2*rows*w || len(dst) < rows*w/2 {
		panic(fmt.Sprintf("pool: %d rows of %d floats from %d into %d", rows, w, len(src), len(dst)))
	}
}

// avgPoolPlanesGo is avgPoolPlanes's definition: output row y (w/2
// floats) pools input rows 2y and 2y+1 (w floats each, one after another).
func avgPoolPlanesGo(dst, src []float32, w, rows int) {
	for y := range rows {
		avgPoolRowGo(dst[y*w/2:][:w/2], src[2*y*w:][:w], src[(2*y+1)*w:][:w])
	}
}

// avgPoolRowGo sets y[x] to the mean of a and b's floats 2x and 2x+1,
// summed in the order AvgPool2Forward sums them.
func avgPoolRowGo(y, a, b []float32) {
	for x := range y {
		y[x] = 0.25 * (a[2*x] + a[2*x+1] + b[2*x] + b[2*x+1])
	}
}

// PlanesToRows copies c planes of p floats, ldIn apart, into p rows of c
// channels, ldOut apart: by 16×16 register transposes where they run, a
// float at a time for the edges.
func PlanesToRows(out, in []float32, p, c, ldIn, ldOut int, workers int) {
	_, _ = out[(p-1)*ldOut+c-1], in[(c-1)*ldIn+p-1]
	parallel(workers, (p+15)/16, 2*p*c, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			p0 := 16 * b
			rows := min(16, p-p0)
			for c0 := 0; c0 < c; c0 += 16 {
				cols := min(16, c-c0)
				// transpose's rows are planes here, its columns pixels.
				if use.transpose && (rows == 16 || rows == 8) && (cols == 16 || cols == 8) {
					transpose(out[p0*ldOut+c0:], ldOut, in[c0*ldIn+p0:], ldIn, cols, rows, false)
				} else {
					transposeGo(out[p0*ldOut+c0:], ldOut, in[c0*ldIn+p0:], ldIn, cols, rows, false)
				}
			}
		}
	})
}
