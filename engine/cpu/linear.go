package cpu

import "math"

// LinearForward writes out (N, O) = in (N, I) · wᵀ + bias, w being (O, I).
func LinearForward(out, in, w, bias []float32, n, i, o int, workers int) {
	if n == 1 {
		// outᵀ = w·inᵀ: the weights read in place, where in·wᵀ would pack
		// all of them transposed for one row (the ImageNet classifier's
		// 4 MB for every image at batch 1); the same sums.
		Gemm(false, true, o, 1, i, w, i, in, i, false, out, 1, workers)
	} else {
		Gemm(false, true, n, o, i, in, i, w, i, false, out, o, workers)
	}
	for b := range n {
		y := out[b*o : (b+1)*o]
		for j := range y {
			y[j] += bias[j]
		}
	}
}

// LinearBackward accumulates into dIn, dW and dBias.
func LinearBackward(dIn, dW, dBias, dOut, in, w []float32, n, i, o int, workers int) {
	// forward: out = in·wᵀ + bias
	Gemm(true, false, o, i, n, dOut, o, in, i, true, dW, i, workers)  // dW += dOutᵀ·in
	Gemm(false, false, n, i, o, dOut, o, w, i, true, dIn, i, workers) // dIn += dOut·w
	for b := range n {
		for j, g := range dOut[b*o : (b+1)*o] {
			dBias[j] += g
		}
	}
}

// SoftmaxCrossEntropyForward returns the mean over the batch of
// −log softmax(logits)[label] and leaves the softmax in probs (N, K).
func SoftmaxCrossEntropyForward(probs, logits []float32, labels []int32, n, k int) float64 {
	var loss float64
	for b := range n {
		z, p := logits[b*k:(b+1)*k], probs[b*k:(b+1)*k]
		m := z[0]
		for _, v := range z {
			m = max(m, v)
		}
		var s float64
		for j, v := range z {
			e := math.Exp(float64(v - m))
			p[j] = float32(e)
			s += e
		}
		for j := range p {
			p[j] = float32(float64(p[j]) / s)
		}
		loss += math.Log(s) - float64(z[labels[b]]-m)
	}
	return loss / float64(n)
}

// SoftmaxCrossEntropyBackward accumulates dLogits += (probs − onehot)/N.
func SoftmaxCrossEntropyBackward(dLogits, probs []float32, labels []int32, n, k int) {
	inv := 1 / float32(n)
	for b := range n {
		d, p := dLogits[b*k:(b+1)*k], probs[b*k:(b+1)*k]
		for j := range d {
			d[j] += p[j] * inv
		}
		d[labels[b]] -= inv
	}
}

// SGDNesterov updates weights w in place from gradients g with momentum
// buffer v, as PyTorch's SGD(momentum, nesterov=True, weight_decay):
// d = g + wd·w; v = momentum·v + d; w −= lr·(d + momentum·v).
func SGDNesterov(w, g, v []float32, lr, momentum, wd float32) {
	for i := range w {
		d := g[i] + wd*w[i]
		v[i] = momentum*v[i] + d
		w[i] -= lr * (d + momentum*v[i])
	}
}
