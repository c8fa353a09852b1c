package cpu

import (
	"sync"
)

// Gemm computes C = op(A)·op(B), or adds it to C when accumulate is set,
// for row-major matrices, where op(A) is M×K (A is K×M when transA) and
// op(B) is K×N (B is N×K when transB); lda, ldb and ldc are the row
// strides.
//
// It is a packed, blocked GEMM in the manner of Goto and BLIS: panels of B
// and blocks of A are copied into contiguous, zero-padded strips, and a
// 6×16 micro-kernel (AVX2 + FMA assembly where the CPU has it) does the
// arithmetic. Work is split between up to `workers` goroutines over rows or
// columns of C, never over K, so every element of C is summed in the same
// order whatever the worker count: results are bit-for-bit reproducible.
func Gemm(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, accumulate bool, C []float32, ldc int, workers int) {
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		if !accumulate {
			for i := range M {
				clear(C[i*ldc : i*ldc+N])
			}
		}
		return
	}
	g := gemmArgs{transA: transA, transB: transB, A: A, lda: lda, B: B, ldb: ldb, accumulate: accumulate, C: C, ldc: ldc}
	g.do(M, N, K, workers)
}

// do is Gemm's work, K > 0.
func (g *gemmArgs) do(M, N, K, workers int) {
	// Split the larger side of C, in whole micro-tiles, when there is
	// enough work to pay for a goroutine: 4M multiply-adds a worker
	// (on CondenseNet-86 at batch 1 a quarter of that made the condensed
	// network slower than one worker; at batch 64 the grain changes
	// nothing).
	workers = max(1, min(workers, (M*N*K)/gemmGrain+1))
	if workers == 1 {
		s := getScratch()
		g.run(0, M, 0, N, K, s)
		putScratch(s)
		return
	}
	g.split(M, N, K, workers)
}

// split is do's work for several workers. It takes g's arguments by value
// so that only a call that splits moves them to the heap, for its
// goroutines: GEMMs on one worker (most of a training step's, a block of
// rows each) allocated them every call, 1% of the step in malloc.
func (g gemmArgs) split(M, N, K, workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		m0, m1, n0, n1 := 0, M, 0, N
		if M >= N {
			m0, m1 = split(M, mr, w, workers)
		} else {
			n0, n1 = split(N, nr, w, workers)
		}
		if m0 == m1 || n0 == n1 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := getScratch()
			g.run(m0, m1, n0, n1, K, s)
			putScratch(s)
		}()
	}
	wg.Wait()
}

// GemmLongK computes C = Aᵀ·B, overwriting C, for A (K×M) and B (K×N)
// row-major with K far larger than M and N: a 1×1 convolution's weight
// gradient, whose K is every pixel of the batch. Gemm would split C
// between the workers, each packing all of one operand; here the workers
// take fixed chunks of K instead, and the chunks' products (kept in
// partial) are added in chunk order, so the result does not depend on the
// worker count either.
func GemmLongK(M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, workers int, partial *[]float32) {
	gemmLongK(M, N, K, A, lda, B, ldb, C, ldc, workers, partial, nil)
}

// A longKInput is a transform of GemmLongK's A, max(x·scale[i] + shift[i],
// floor) in column i: a training BatchNorm and ReLU folded into the 1×1
// convolution whose weight gradient it is. rows holds buffers of kc rows
// of M.
type longKInput struct {
	scale, shift []float32
	floor        float32
	rows         *bufs
}

// gemmLongK is GemmLongK of A after a transform, if a is set: with
// AVX-512 the transform is applied as A is packed; otherwise kc rows of A
// at a time are transformed into a buffer and multiplied from there, as
// Gemm would multiply them. The sums are the same either way.
func gemmLongK(M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, workers int, partial *[]float32, a *longKInput) {
	chunks := (K + longKChunk - 1) / longKChunk
	if chunks <= 1 && a == nil {
		Gemm(true, false, M, N, K, A, lda, B, ldb, false, C, ldc, workers)
		return
	}
	part := grow(partial, chunks*M*N)
	if a != nil && !use.bnAll && a.rows.size < kc*M { // its buffers serve any narrower A
		a.rows.size, a.rows.free = kc*M, nil
	}
	parallel(workers, chunks, K*(M+N)+M*N*K/16, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			k0, n := k*longKChunk, min(longKChunk, K-k*longKChunk)
			if a == nil || use.bnAll {
				g := gemmArgs{transA: true, A: A[k0*lda:], lda: lda, B: B[k0*ldb:], ldb: ldb, C: part[k*M*N:], ldc: N, aff: a}
				g.do(M, N, n, 1)
				continue
			}
			x := a.rows.get()
			for p0 := 0; p0 < n; p0 += kc {
				rows := min(kc, n-p0)
				bnApply(x, A[(k0+p0)*lda:], a.scale, a.shift, M, rows, lda, M, a.floor)
				Gemm(true, false, M, N, rows, x, M, B[(k0+p0)*ldb:], ldb, p0 > 0, part[k*M*N:], N, 1)
			}
			a.rows.put(x)
		}
	})
	for i := range M {
		row := C[i*ldc : i*ldc+N]
		copy(row, part[i*N:(i+1)*N])
		for k := 1; k < chunks; k++ {
			for j, v := range part[(k*M+i)*N : (k*M+i+1)*N] {
				row[j] += v
			}
		}
	}
}

// longKChunk rows of K make one of GemmLongK's chunks: small enough that
// the last block of CondenseNet-86 at batch 64 (4096 pixels) still gives
// each of several workers some.
const longKChunk = 1024

// gemmGrain is the least number of multiply-adds worth a worker (see
// Gemm). The tests set it, and parallelGrain, to 1, so that every shape
// they try is split between workers.
var gemmGrain = 1 << 22

// split returns worker w's share of n, in multiples of unit.
func split(n, unit, w, workers int) (lo, hi int) {
	tiles := (n + unit - 1) / unit
	lo = min(n, tiles*w/workers*unit)
	hi = min(n, tiles*(w+1)/workers*unit)
	return lo, hi
}

// Blocking sizes: a KC×NR strip of B (16 KB) stays in L1, an MC×KC block of
// A (144 KB) in L2, a KC×NC panel of B (2 MB) in L3.
const (
	mr = 6
	nr = 16
	mc = 144
	kc = 256
	nc = 2048
)

type gemmArgs struct {
	transA, transB bool
	A              []float32
	lda            int
	B              []float32
	ldb            int
	accumulate     bool
	C              []float32
	ldc            int
	// aff, if set, transforms op(A)'s columns as a transposed A is
	// packed (see longKInput; AVX-512 only).
	aff *longKInput
}

// scratch holds one goroutine's packing buffers.
type scratch struct {
	a    [mc * kc]float32
	b    [kc * nc]float32
	tile [mr * nr]float32
}

// Packing buffers are kept on a free list rather than in a sync.Pool: a
// pool is emptied at every garbage collection, and re-allocating 2 MB per
// GEMM call then costs more than many small GEMMs themselves. The list
// never holds more buffers than GEMMs ever ran at once.
var (
	scratchMu   sync.Mutex
	scratchFree []*scratch
)

func getScratch() *scratch {
	scratchMu.Lock()
	defer scratchMu.Unlock()
	if n := len(scratchFree); n > 0 {
		s := scratchFree[n-1]
		scratchFree = scratchFree[:n-1]
		return s
	}
	return new(scratch)
}

func putScratch(s *scratch) {
	scratchMu.Lock()
	scratchFree = append(scratchFree, s)
	scratchMu.Unlock()
}

// run computes the block C[m0:m1, n0:n1].
func (g *gemmArgs) run(m0, m1, n0, n1, K int, s *scratch) {
	for jc := n0; jc < n1; jc += nc {
		ncur := min(nc, n1-jc)
		for pc := 0; pc < K; pc += kc {
			kcur := min(kc, K-pc)
			g.packB(s.b[:], pc, kcur, jc, ncur)
			accumulate := g.accumulate || pc > 0
			// A row-major A is read in place, except for a last strip of
			// fewer than mr rows, which is packed; a transposed A is packed.
			inPlace := !g.transA
			for ic := m0; ic < m1; ic += mc {
				mcur := min(mc, m1-ic)
				if !inPlace {
					g.packA(s.a[:], ic, mcur, pc, kcur)
				} else if tail := mcur % mr; tail != 0 {
					g.packA(s.a[(mcur-tail)*kcur:], ic+mcur-tail, tail, pc, kcur)
				}
				for jr := 0; jr < ncur; jr += nr {
					n := min(nr, ncur-jr)
					// Two full strips make a 2·nr-wide tile when the 512-bit
					// kernel is there: A is read once for both.
					pair := use.gemmPair && ncur-jr >= 2*nr
					bp := s.b[jr*kcur:]
					for ir := 0; ir < mcur; ir += mr {
						m := min(mr, mcur-ir)
						a, aStep, aRow := s.a[ir*kcur:], mr, 1
						if inPlace && m == mr {
							a, aStep, aRow = g.A[(ic+ir)*g.lda+pc:], 1, g.lda
						}
						c := g.C[(ic+ir)*g.ldc+jc+jr:]
						switch {
						case m == mr && pair:
							// This tile and the full ones after it, in one call.
							tiles, aTile := (mcur-ir)/mr, mr*kcur
							if inPlace {
								aTile = mr * g.lda
							}
							kernelPair(kcur, a, aStep, aRow, aTile, tiles, bp, c, g.ldc, accumulate)
							ir += (tiles - 1) * mr
						case m == mr && n == nr:
							kernel(kcur, a, aStep, aRow, bp, c, g.ldc, accumulate)
						case m == mr && n == 8 && use.gemm && kcur > 0:
							kernel8(kcur, a, aStep, aRow, bp, c, g.ldc, accumulate)
						case pair:
							g.edgeTile(kcur, a, aStep, aRow, bp, c, m, nr, accumulate, s)
							g.edgeTile(kcur, a, aStep, aRow, bp[nr*kcur:], c[nr:], m, nr, accumulate, s)
						default:
							g.edgeTile(kcur, a, aStep, aRow, bp, c, m, n, accumulate, s)
						}
					}
					if pair {
						jr += nr
					}
				}
			}
		}
	}
}

// edgeTile computes an m×n corner of a tile (m ≤ mr, n ≤ nr) through a
// full-size buffer.
func (g *gemmArgs) edgeTile(k int, a []float32, aStep, aRow int, b, c []float32, m, n int, accumulate bool, s *scratch) {
	kernel(k, a, aStep, aRow, b, s.tile[:], nr, false)
	for i := range m {
		row, t := c[i*g.ldc:i*g.ldc+n], s.tile[i*nr:i*nr+n]
		if accumulate {
			for j := range row {
				row[j] += t[j]
			}
		} else {
			copy(row, t)
		}
	}
}

// packA copies op(A)[i0:i0+m, p0:p0+k] into strips of mr rows: strip s
// holds, for each p, the mr values op(A)[i0+s*mr+r, p0+p]. Rows past m are zero.
func (g *gemmArgs) packA(dst []float32, i0, m, p0, k int) {
	if a := g.aff; a != nil && g.transA {
		packAffineA(dst, g.A[p0*g.lda+i0:], k, g.lda, m, a.scale[i0:], a.shift[i0:], a.floor)
		return
	}
	for s := 0; s < m; s += mr {
		strip := dst[s*k : (s+mr)*k]
		rows := min(mr, m-s)
		if g.transA { // A is K×M: op(A)[i, p] = A[p, i], rows of A are contiguous here
			if rows == mr {
				copyRowsA(strip, g.A[p0*g.lda+i0+s:], k, g.lda)
				continue
			}
			for p := range k {
				src := g.A[(p0+p)*g.lda+i0+s:]
				out := strip[p*mr : p*mr+mr]
				copy(out[:rows], src[:rows])
				clear(out[rows:])
			}
			continue
		}
		if rows == mr { // the common case, unrolled: six rows interleaved
			i := (i0+s)*g.lda + p0
			r0, r1, r2 := g.A[i:i+k], g.A[i+g.lda:i+g.lda+k], g.A[i+2*g.lda:i+2*g.lda+k]
			r3, r4, r5 := g.A[i+3*g.lda:i+3*g.lda+k], g.A[i+4*g.lda:i+4*g.lda+k], g.A[i+5*g.lda:i+5*g.lda+k]
			for p := range k {
				o := (*[mr]float32)(strip[p*mr:])
				o[0], o[1], o[2], o[3], o[4], o[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		for r := range mr {
			if r >= rows {
				for p := range k {
					strip[p*mr+r] = 0
				}
				continue
			}
			i := i0 + s + r
			src := g.A[i*g.lda+p0 : i*g.lda+p0+k]
			for p, v := range src {
				strip[p*mr+r] = v
			}
		}
	}
}

// packB copies op(B)[p0:p0+k, j0:j0+n] into strips of nr columns: strip s
// holds, for each p, the nr values op(B)[p0+p, j0+s*nr+c]. Columns past n are zero.
func (g *gemmArgs) packB(dst []float32, p0, k, j0, n int) {
	for s := 0; s < n; s += nr {
		strip := dst[s*k : (s+nr)*k]
		cols := min(nr, n-s)
		if g.transB { // B is N×K: op(B)[p, j] = B[j, p]
			done := 0 // a full strip goes 16 p at a time through registers
			if use.transpose && cols == nr {
				for ; done+16 <= k; done += 16 {
					transpose(strip[done*nr:], nr, g.B[(j0+s)*g.ldb+p0+done:], g.ldb, nr, 16, false)
				}
			}
			for c := range nr {
				if c >= cols {
					for p := range k {
						strip[p*nr+c] = 0
					}
					continue
				}
				src := g.B[(j0+s+c)*g.ldb+p0 : (j0+s+c)*g.ldb+p0+k]
				for p := done; p < k; p++ {
					strip[p*nr+c] = src[p]
				}
			}
			continue
		}
		if cols == nr { // a fixed-size copy: no call per 64 bytes
			copyRowsB(strip, g.B[p0*g.ldb+j0+s:], k, g.ldb)
			continue
		}
		for p := range k {
			row := g.B[(p0+p)*g.ldb+j0+s:]
			out := strip[p*nr : p*nr+nr]
			copy(out[:cols], row[:cols])
			clear(out[cols:])
		}
	}
}

// kernelGo is the portable micro-kernel and the definition of kernel:
// C[0:mr, 0:nr] (+)= Σ_{p<k} a[p·aStep + i·aRow] · b[p·nr + j].
func kernelGo(k int, a []float32, aStep, aRow int, b, c []float32, ldc int, accumulate bool) {
	var acc [mr][nr]float32
	for p := range k {
		bp := (*[nr]float32)(b[p*nr:])
		for i := range mr {
			ai := a[p*aStep+i*aRow]
			row := &acc[i]
			for j := range nr {
				row[j] += ai * bp[j]
			}
		}
	}
	for i := range mr {
		row := c[i*ldc : i*ldc+nr]
		if accumulate {
			for j := range row {
				row[j] += acc[i][j]
			}
		} else {
			copy(row, acc[i][:])
		}
	}
}

// kernelPairGo is the definition of kernelPair: kernel on two adjacent
// packed strips of B, for each of tiles tiles of mr rows.
func kernelPairGo(k int, a []float32, aStep, aRow, aTile, tiles int, b, c []float32, ldc int, accumulate bool) {
	for t := range tiles {
		a, c := a[t*aTile:], c[t*mr*ldc:]
		kernel(k, a, aStep, aRow, b, c, ldc, accumulate)
		kernel(k, a, aStep, aRow, b[k*nr:], c[nr:], ldc, accumulate)
	}
}

// GemmNaive is the definition Gemm is tested against: a plain triple loop.
func GemmNaive(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, beta float32, C []float32, ldc int) {
	for i := range M {
		for j := range N {
			var s float32
			for p := range K {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				s += A[ai] * B[bi]
			}
			if beta == 0 {
				C[i*ldc+j] = s
			} else {
				C[i*ldc+j] += s
			}
		}
	}
}
