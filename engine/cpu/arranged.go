package cpu

import (
	"sync"

	"github.com/condensenet/condensenet/engine"
)

// Arrangements shares Fixed convolutions' rearranged weights between
// convolutions of the same shape that read the same weights: the networks
// of a pool, or the lanes of a split backend, that share one copy of a
// model's weights then also share one copy of each arrangement. Safe for
// concurrent use; a nil *Arrangements shares nothing.
type Arrangements struct {
	mu sync.Mutex
	m  map[arrangementKey]arranged
}

// An arrangementKey names what an arrangement is made of: the weights, by
// where they are (Fixed weights never change), the shape, and the kernels
// in use, which choose the layout.
type arrangementKey struct {
	w     *float32
	shape engine.ConvShape
	level isa
}

// do gives c the arrangement of its shape of the weights at w: another
// convolution's, or the one rearrange makes, which is then kept for the
// others.
func (a *Arrangements) do(c *Conv, w *float32, rearrange func()) {
	c.arranged = arranged{} // never rearrange into slices that others may read
	if a == nil {
		rearrange()
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := arrangementKey{w, c.ConvShape, level}
	if got, ok := a.m[k]; ok {
		c.arranged = got
		return
	}
	rearrange()
	if a.m == nil {
		a.m = map[arrangementKey]arranged{}
	}
	a.m[k] = c.arranged
}
