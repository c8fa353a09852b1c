package semaphore

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Holders never take more than the total between them; one asking for
// more than all of it runs alone; a zero total bounds nothing.
func TestWeighted(t *testing.T) {
	s := New(10)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			n := int64(i%4 + 1)
			if i == 17 {
				n = 99
			}
			s.Acquire(n)
			now := held.Add(min(n, 10))
			for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
			}
			held.Add(-min(n, 10))
			s.Release(n)
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 10 || p == 0 {
		t.Errorf("peak held %d of 10", p)
	}
	free := New(0)
	free.Acquire(1 << 40)
	free.Release(1 << 40)
}
