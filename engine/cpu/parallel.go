package cpu

import "sync"

// parallel runs f over [0, n) split into at most workers contiguous ranges,
// and into fewer when the call's work (about how many floats it reads and
// writes) is too small to pay for waking another core: each worker gets
// at least parallelGrain of it. The split depends only on n, work and
// workers, so work that writes disjoint outputs per index is deterministic.
func parallel(workers, n, work int, f func(lo, hi int)) {
	workers = max(1, min(workers, n, work/parallelGrain+1))
	if workers == 1 {
		f(0, n)
		return
	}
	// The caller waits instead of taking a range itself: a goroutine it
	// starts goes to the next slot of the caller's own P, where it would
	// wait for the caller's range or for a thief (measured: the condensed
	// ImageNet network at batch 1 fell from 63 to 43-54 images/s).
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

// parallelGrain is the least work worth a worker of its own: waking a
// goroutine on another core costs about as much as touching this many
// floats (a smaller grain, here and in gemmGrain, made the condensed
// CondenseNet-86 at batch 1 markedly slower on two cores). The tests set
// it to 1.
var parallelGrain = 1 << 18

// clearParallel zeroes x, each worker its share: a training step clears a
// few hundred MB of gradients.
func clearParallel(x []float32, workers int) {
	parallel(workers, len(x), len(x), func(lo, hi int) { clear(x[lo:hi]) })
}

// each is parallel over a method's ranges: f is a method expression and
// t its receiver, which holds the call's arguments. Unlike a closure that
// parallel would take, nothing is allocated when one worker runs it all
// (an image per core, as condensed inference runs): closures made on
// every call of every layer cost a tenth of int8 inference in garbage
// collection.
func each[T any](workers, n, work int, t T, f func(T, int, int)) {
	workers = max(1, min(workers, n, work/parallelGrain+1))
	if workers == 1 {
		f(t, 0, n)
		return
	}
	parallel(workers, n, work, func(lo, hi int) { f(t, lo, hi) })
}
