// Package semaphore bounds what concurrent work holds at once: bytes of
// memory, images in flight.
package semaphore

import "sync"

// A Weighted holds a total, for goroutines to take parts of and give
// back. A zero total has no bound.
type Weighted struct {
	mu          sync.Mutex
	cond        *sync.Cond
	total, left int64
}

// New returns a Weighted of total.
func New(total int64) *Weighted {
	s := &Weighted{total: total, left: total}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Acquire waits until n is free and takes it. More than the total takes
// the whole total, so that it runs alone rather than never.
func (s *Weighted) Acquire(n int64) {
	if s.total <= 0 {
		return
	}
	n = min(n, s.total)
	s.mu.Lock()
	for s.left < n {
		s.cond.Wait()
	}
	s.left -= n
	s.mu.Unlock()
}

// Release gives back what Acquire(n) took.
func (s *Weighted) Release(n int64) {
	if s.total <= 0 {
		return
	}
	s.mu.Lock()
	s.left += min(n, s.total)
	s.cond.Broadcast()
	s.mu.Unlock()
}
