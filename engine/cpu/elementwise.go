package cpu

import "github.com/condensenet/condensenet/engine"

// ReLUForward writes out = max(in, 0) over P rows of C channels.
func ReLUForward(out, in []float32, p, c, ldIn, ldOut int) {
	for i := range p {
		x, y := in[i*ldIn:i*ldIn+c], out[i*ldOut:i*ldOut+c]
		for j, v := range x {
			y[j] = max(v, 0)
		}
	}
}

// ReLUBackward accumulates dIn += dOut where the forward output was positive.
func ReLUBackward(dIn, dOut, out []float32, p, c, ldIn, ldOut int) {
	for i := range p {
		dx, dy, y := dIn[i*ldIn:i*ldIn+c], dOut[i*ldOut:i*ldOut+c], out[i*ldOut:i*ldOut+c]
		for j := range dx {
			if y[j] > 0 {
				dx[j] += dy[j]
			}
		}
	}
}

// DropoutMask fills mask with 0 (probability p) or 1/(1−p), drawing from
// next, which returns uniform values in [0, 1).
func DropoutMask(mask []float32, p float32, next func() float32) {
	keep := 1 / (1 - p)
	for i := range mask {
		if next() < p {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
	}
}

// DropoutForward writes out = in·mask over P rows of C channels; mask is (P, C).
func DropoutForward(out, in, mask []float32, p, c, ldIn, ldOut int) {
	for i := range p {
		x, y, m := in[i*ldIn:i*ldIn+c], out[i*ldOut:i*ldOut+c], mask[i*c:(i+1)*c]
		for j, v := range x {
			y[j] = v * m[j]
		}
	}
}

// DropoutBackward accumulates dIn += dOut·mask.
func DropoutBackward(dIn, dOut, mask []float32, p, c, ldIn, ldOut int) {
	for i := range p {
		dx, dy, m := dIn[i*ldIn:i*ldIn+c], dOut[i*ldOut:i*ldOut+c], mask[i*c:(i+1)*c]
		for j := range dx {
			dx[j] += dy[j] * m[j]
		}
	}
}

// MaskForward writes the masked weight wm = w·mask.
func MaskForward(wm, w, mask []float32) {
	for i, v := range w {
		wm[i] = v * mask[i]
	}
}

// MaskBackward accumulates dW += dWm·mask: a masked-out weight gets no gradient.
func MaskBackward(dW, dWm, mask []float32) {
	for i, g := range dWm {
		dW[i] += g * mask[i]
	}
}

// IndexSelectForward writes out[:, j] = in[:, idx[j]] over P rows.
func IndexSelectForward(out, in []float32, idx []int32, p, ldIn, ldOut int) {
	engine.CheckIndices("index select", idx, ldIn)
	for i := range p {
		x, y := in[i*ldIn:], out[i*ldOut:i*ldOut+len(idx)]
		for j, k := range idx {
			y[j] = x[k]
		}
	}
}

// IndexSelectBackward accumulates dIn[:, idx[j]] += dOut[:, j].
func IndexSelectBackward(dIn, dOut []float32, idx []int32, p, ldIn, ldOut int) {
	engine.CheckIndices("index select", idx, ldIn)
	for i := range p {
		dx, dy := dIn[i*ldIn:], dOut[i*ldOut:i*ldOut+len(idx)]
		for j, k := range idx {
			dx[k] += dy[j]
		}
	}
}

// ShuffleForward permutes C channels in G groups: viewing a row as (G, C/G)
// and transposing it to (C/G, G), out[:, k·G+g] = in[:, g·(C/G)+k].
func ShuffleForward(out, in []float32, p, c, g, ldIn, ldOut int) {
	cg := c / g
	for i := range p {
		x, y := in[i*ldIn:i*ldIn+c], out[i*ldOut:i*ldOut+c]
		for gi := range g {
			for k := range cg {
				y[k*g+gi] = x[gi*cg+k]
			}
		}
	}
}

// ShuffleBackward accumulates the inverse permutation of dOut into dIn.
func ShuffleBackward(dIn, dOut []float32, p, c, g, ldIn, ldOut int) {
	cg := c / g
	for i := range p {
		dx, dy := dIn[i*ldIn:i*ldIn+c], dOut[i*ldOut:i*ldOut+c]
		for gi := range g {
			for k := range cg {
				dx[gi*cg+k] += dy[k*g+gi]
			}
		}
	}
}
