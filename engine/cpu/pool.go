package cpu

// AvgPool2Forward averages 2×2 windows with stride 2: in (N, H, W, C) with
// pixels ldIn apart, out (N, H/2, W/2, C) with pixels ldOut apart.
func AvgPool2Forward(out, in []float32, n, h, w, c, ldIn, ldOut int, workers int) {
	oh, ow := h/2, w/2
	parallel(workers, n*oh, 5*n*oh*ow*c, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			b, oy := row/oh, row%oh
			for ox := range ow {
				i00 := ((b*h+2*oy)*w + 2*ox) * ldIn
				a, bb := in[i00:i00+c], in[i00+ldIn:i00+ldIn+c]
				cc, d := in[i00+w*ldIn:i00+w*ldIn+c], in[i00+(w+1)*ldIn:i00+(w+1)*ldIn+c]
				y := out[((b*oh+oy)*ow+ox)*ldOut:][:c]
				for j := range y {
					y[j] = 0.25 * (a[j] + bb[j] + cc[j] + d[j])
				}
			}
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
			for ox := range ow {
				dy := dOut[((b*oh+oy)*ow+ox)*ldOut:][:c]
				i00 := ((b*h+2*oy)*w + 2*ox) * ldIn
				for _, off := range [4]int{i00, i00 + ldIn, i00 + w*ldIn, i00 + (w+1)*ldIn} {
					dx := dIn[off : off+c]
					for j, g := range dy {
						dx[j] += 0.25 * g
					}
				}
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
