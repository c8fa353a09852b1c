package cpu

import "sync"

// parallel runs f over [0, n) split into at most workers contiguous ranges.
// The split depends only on n and workers, so work that writes disjoint
// outputs per index is deterministic.
func parallel(workers, n int, f func(lo, hi int)) {
	workers = max(1, min(workers, n))
	if workers == 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
