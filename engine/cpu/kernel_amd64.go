package cpu

import (
	"golang.org/x/sys/cpu"

	"github.com/condensenet/condensenet/engine"
)

func detectISA() isa {
	switch {
	case !cpu.X86.HasAVX2 || !cpu.X86.HasFMA:
		return isaGo
	case !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || !cpu.X86.HasAVX512DQ: // the int8 kernels' bytes and VPMOVD2M
		return isaAVX2
	case !cpu.X86.HasAVX512VNNI:
		return isaAVX512
	}
	return isaVNNI
}

//go:noescape
func kernelAVX2(k int, a *float32, aStep, aRow int, b, c *float32, ldc int, accumulate bool)

// kernel computes the mr×nr tile C (+)= A·B over k, A[i, p] being at
// a[p·aStep + i·aRow] and B a packed strip (see kernelGo).
func kernel(k int, a []float32, aStep, aRow int, b, c []float32, ldc int, accumulate bool) {
	if !use.gemm || k == 0 {
		kernelGo(k, a, aStep, aRow, b, c, ldc, accumulate)
		return
	}
	// The assembly trusts these lengths; check them here.
	_, _, _ = a[(k-1)*aStep+(mr-1)*aRow], b[k*nr-1], c[(mr-1)*ldc+nr-1]
	kernelAVX2(k, &a[0], aStep, aRow, &b[0], &c[0], ldc, accumulate)
}

//go:noescape
func kernel6x32AVX512(k int, a *float32, aStep, aRow, aTile, tiles int, b0, b1, c *float32, ldc int, accumulate bool)

// kernelPair is kernel over two adjacent packed strips of B, b and
// b[k·nr:], into C[0:mr, 0:2·nr], for tiles tiles of mr rows one after
// another (A's aTile floats apart, C's mr rows); see kernelPairGo.
func kernelPair(k int, a []float32, aStep, aRow, aTile, tiles int, b, c []float32, ldc int, accumulate bool) {
	if !use.gemmPair || k == 0 {
		kernelPairGo(k, a, aStep, aRow, aTile, tiles, b, c, ldc, accumulate)
		return
	}
	_, _, _ = a[(tiles-1)*aTile+(k-1)*aStep+(mr-1)*aRow], b[2*k*nr-1], c[(tiles*mr-1)*ldc+2*nr-1]
	kernel6x32AVX512(k, &a[0], aStep, aRow, aTile, tiles, &b[0], &b[k*nr], &c[0], ldc, accumulate)
}

//go:noescape
func bnBackFusedGemm512(k int, a *float32, lda, tiles, rows int, b, x, dx *float32, ldx, mask0, mask1 int, scale, shift, ca, sg, sgx, t *float32, floor float32)

// bnBackFusedGemm is bnBackFused on n ≤ 32 channels of rows rows of x and
// dx, their gradient dy = A·B computed a 6×32 tile at a time (A's rows in
// place, lda apart, k floats each, k even; B two packed strips, b and
// b[k·nr:]) and used while in registers, never stored (AVX-512 only).
// Past the whole tiles, a last tile's rows of A are copied into tail (at
// least mr·k floats) and zeros. The sums and a·g are bnBackFused's bits on
// the dy that Gemm computes. It also adds the rows' part of the 1×1
// convolution's weight gradient into t (k rows of 32 floats, one for each
// output): t[o] += Σ_r A[r, o]·max(x[r]·scale + shift, floor), the rows
// in order.
func bnBackFusedGemm(k int, a []float32, lda, rows int, b, tail, sg, sgx, dx, x, t []float32, ldx, n int, scale, shift, ca []float32, floor float32) {
	if !use.gemmPair || !use.bnAll || k < 2 || k%2 != 0 || rows < 1 || n < 1 || n > 2*nr {
		panic("gemm: bnBackFusedGemm without AVX-512, or of an odd k, or of no rows or channels, or of more than 32")
	}
	_, _, _, _ = a[(rows-1)*lda+k-1], b[2*k*nr-1], dx[(rows-1)*ldx+n-1], x[(rows-1)*ldx+n-1]
	_, _, _, _, _, _ = sg[n-1], sgx[n-1], scale[n-1], shift[n-1], ca[n-1], t[k*2*nr-1]
	mask0, mask1 := 1<<min(n, 16)-1, 1<<max(n-16, 0)-1
	if tiles := rows / mr; tiles > 0 {
		bnBackFusedGemm512(k, &a[0], lda, tiles, mr, &b[0], &x[0], &dx[0], ldx, mask0, mask1, &scale[0], &shift[0], &ca[0], &sg[0], &sgx[0], &t[0], floor)
	}
	r := rows / mr * mr
	if r == rows {
		return
	}
	tl := tail[:mr*k]
	for i := range mr {
		if r+i < rows {
			copy(tl[i*k:(i+1)*k], a[(r+i)*lda:])
		} else {
			clear(tl[i*k : (i+1)*k])
		}
	}
	bnBackFusedGemm512(k, &tl[0], k, 1, rows-r, &b[0], &x[r*ldx], &dx[r*ldx], ldx, mask0, mask1, &scale[0], &shift[0], &ca[0], &sg[0], &sgx[0], &t[0], floor)
}

//go:noescape
func packB16(dst, src *float32, k, ldb int)

//go:noescape
func packA6(dst, src *float32, k, lda int)

// copyRowsB copies k rows of nr floats, ld apart in src, to dst.
func copyRowsB(dst, src []float32, k, ld int) {
	if k == 0 {
		return
	}
	_, _ = dst[k*nr-1], src[(k-1)*ld+nr-1]
	packB16(&dst[0], &src[0], k, ld)
}

// copyRowsA copies k rows of mr floats, ld apart in src, to dst.
func copyRowsA(dst, src []float32, k, ld int) {
	if k == 0 {
		return
	}
	_, _ = dst[k*mr-1], src[(k-1)*ld+mr-1]
	packA6(&dst[0], &src[0], k, ld)
}

//go:noescape
func stem2Row512(out, in, w *float32, n, ldIn, ldOut int)

// stem2Row is a row of stem2Forward's outputs: n pixels, ldOut apart in
// out, from three padded image rows of in, ldIn apart (see stem2Row512).
func stem2Row(out, in, w []float32, n, ldIn, ldOut int) {
	if n < 1 || !use.bnAll {
		panic("conv: stem2Row of no pixels, or without AVX-512")
	}
	_, _, _ = out[(n-1)*ldOut+15], in[2*ldIn+6*(n-1)+8], w[27*16-1]
	stem2Row512(&out[0], &in[0], &w[0], n, ldIn, ldOut)
}

//go:noescape
func packAffineA512(dst, src *float32, k, stride, lda, strips, tail int, scale, shift *float32, floor float32)

//go:noescape
func packAffineWideA512(dst, src *float32, k, stride, lda, strips, tail int, scale, shift *float32, floor float32)

// packAffineA packs the first m columns of a transposed A, k rows of ld,
// as packA does, in strips of mr (the last zero past m), with
// max(x·scale[i] + shift[i], floor) in column i (AVX-512 only: bnApply's
// arithmetic, fused multiply-adds). The rows with sixteen floats to read
// at every strip's start go through the wide kernel.
func packAffineA(dst, src []float32, k, ld, m int, scale, shift []float32, floor float32) {
	if k == 0 {
		return
	}
	if m < 1 || !use.bnAll {
		panic("gemm: packAffineA of no columns, or without AVX-512")
	}
	strips, tail := m/mr, m%mr
	_, _, _, _ = dst[(strips+min(tail, 1))*mr*k-1], src[(k-1)*ld+m-1], scale[m-1], shift[m-1]
	// Row p's last strip starts at p·ld + (m−1)/mr·mr.
	wide := 0
	if room := len(src) - (m-1)/mr*mr - 16; room >= 0 {
		wide = min(k, room/ld+1)
	}
	if wide > 0 {
		packAffineWideA512(&dst[0], &src[0], wide, k*mr, ld, strips, tail, &scale[0], &shift[0], floor)
	}
	if wide < k {
		packAffineA512(&dst[wide*mr], &src[wide*ld], k-wide, k*mr, ld, strips, tail, &scale[0], &shift[0], floor)
	}
}

//go:noescape
func kernel8AVX2(k int, a *float32, aStep, aRow int, b, c *float32, ldc int, accumulate bool)

// kernel8 is kernel for an mr×8 tile written straight into C, for GEMMs
// with 8 columns (grouped 1×1 and narrow shifted convs), where use.gemm:
// columns 8 to 15 of the packed B strip are ignored and C's are not
// touched.
func kernel8(k int, a []float32, aStep, aRow int, b, c []float32, ldc int, accumulate bool) {
	_, _, _ = a[(k-1)*aStep+(mr-1)*aRow], b[k*nr-1], c[(mr-1)*ldc+7]
	kernel8AVX2(k, &a[0], aStep, aRow, &b[0], &c[0], ldc, accumulate)
}

//go:noescape
func copyRunsAVX2(dst, src *float32, runs, n, dstStride, srcStride int)

//go:noescape
func addRunsAVX2(dst, src *float32, runs, n, dstStride, srcStride int)

// copyRuns copies runs runs of n floats: run i from src[i·srcStride:] to
// dst[i·dstStride:].
func copyRuns(dst, src []float32, runs, n, dstStride, srcStride int) {
	if !use.runs || n%8 != 0 || n == 0 || runs == 0 {
		copyRunsGo(dst, src, runs, n, dstStride, srcStride)
		return
	}
	_, _ = dst[(runs-1)*dstStride+n-1], src[(runs-1)*srcStride+n-1]
	copyRunsAVX2(&dst[0], &src[0], runs, n, dstStride, srcStride)
}

// addRuns adds runs runs of n floats: run i of src[i·srcStride:] onto
// dst[i·dstStride:].
func addRuns(dst, src []float32, runs, n, dstStride, srcStride int) {
	if !use.runs || n%8 != 0 || n == 0 || runs == 0 {
		addRunsGo(dst, src, runs, n, dstStride, srcStride)
		return
	}
	_, _ = dst[(runs-1)*dstStride+n-1], src[(runs-1)*srcStride+n-1]
	addRunsAVX2(&dst[0], &src[0], runs, n, dstStride, srcStride)
}

//go:noescape
func gatherRowsAVX2(dst, src *float32, idx *int32, n, rows, ldSrc, ldDst int)

//go:noescape
func gatherRows512(dst, src *float32, idx *int32, n, rows, ldSrc, ldDst int)

// gatherRows is IndexSelectForward in assembly for whole groups of 16
// indices with AVX-512 gathers, then of 8 with plain loads (no bounds check
// per element); the rest goes through the Go loop.
func gatherRows(out, in []float32, idx []int32, p, ldIn, ldOut int) {
	n16, n8 := len(idx)&^15, len(idx)&^7
	if !use.gather16 {
		n16 = 0
	}
	if !use.gather8 || n8 == 0 || p == 0 {
		IndexSelectForward(out, in, idx, p, ldIn, ldOut)
		return
	}
	// The gathers trust every index.
	hi := engine.CheckIndices("index select", idx, ldIn)
	_, _ = out[(p-1)*ldOut+n8-1], in[(p-1)*ldIn+hi]
	if n16 > 0 {
		gatherRows512(&out[0], &in[0], &idx[0], n16, p, ldIn, ldOut)
	}
	if n16 < n8 {
		gatherRowsAVX2(&out[n16], &in[0], &idx[n16], n8-n16, p, ldIn, ldOut)
	}
	if n8 < len(idx) {
		IndexSelectForward(out[n8:], in, idx[n8:], p, ldIn, ldOut)
	}
}

//go:noescape
func fmaLoop512(n int)

//go:noescape
func fmaLoop256(n int)

// fmaRounds runs n rounds of 12 FMAs of the widest vectors the kernels
// use and returns the floating-point operations done.
func fmaRounds(n int) float64 {
	switch use.fmaWidth {
	case 16:
		fmaLoop512(n)
		return float64(n) * 12 * 16 * 2
	case 8:
		fmaLoop256(n)
		return float64(n) * 12 * 8 * 2
	}
	return fmaRoundsGo(n)
}

//go:noescape
func dotLoop512(n int)

//go:noescape
func dotLoopBW(n int)

// dotRounds runs n rounds of the int8 peak loop of the dot products the
// int8 kernels use (VNNI's, or AVX-512BW's) and returns its operations (2
// per multiply-add), 0 where the int8 kernels do not run.
func dotRounds(n int) float64 {
	switch {
	case use.vnni:
		dotLoop512(n)
	case use.int8:
		dotLoopBW(n)
	default:
		return 0
	}
	return float64(n) * 12 * 64 * 2
}

//go:noescape
func conv3x3Pair512(acc, plane, wk *float32, cg, planeStride, rowStride int)

//go:noescape
func conv3x3Quad512(acc, plane, wk *float32, cg, planeStride, rowStride int)

//go:noescape
func conv3x3PairVec512(acc, plane, wk *float32, cg, planeStride, rowStride int)

//go:noescape
func conv3x3QuadVec512(acc, plane, wk *float32, cg, planeStride, rowStride int)

//go:noescape
func conv3x3GradPair512(acc, dout0, dout1, in *float32, nvec, rowStride, images, doutStride, inStride int)

//go:noescape
func affineRows512(dst *float32, dstStride int, src *float32, w, h int, scale, shift, floor float32)

// affineRows is affineRowsGo, checked, on the AVX-512 kernel where the
// strided kernels run.
func affineRows(dst []float32, dstStride int, src []float32, w, h int, scale, shift, floor float32) {
	checkAffineRows(dst, dstStride, src, w, h)
	if !use.strided {
		affineRowsGo(dst, dstStride, src, w, h, scale, shift, floor)
		return
	}
	affineRows512(&dst[0], dstStride, &src[0], w, h, scale, shift, floor)
}

//go:noescape
func strided512(dst, src *float32, n, stride int, affine bool, scale, shift, floor float32)

// stridedCopy sets dst[i] = src[i·stride] for every i of dst.
func stridedCopy(dst, src []float32, stride int) {
	if !use.strided || len(dst) == 0 || stride > 1<<24 {
		stridedCopyGo(dst, src, stride)
		return
	}
	_ = src[(len(dst)-1)*stride]
	strided512(&dst[0], &src[0], len(dst), stride, false, 0, 0, 0)
}

// stridedAffine sets dst[i] = max(src[i·stride]·scale + shift, floor).
func stridedAffine(dst, src []float32, stride int, scale, shift, floor float32) {
	if !use.strided || len(dst) == 0 || stride > 1<<24 {
		stridedAffineGo(dst, src, stride, scale, shift, floor)
		return
	}

	_ = src[(len(dst)-1)*stride]
	strided512(&dst[0], &src[0], len(dst), stride, true, scale, shift, floor)
}

//go:noescape
func gatherNorm512(dst, src *float32, idx *int32, scale, shift *float32, n, rows, ldSrc, ldDst int, floor float32)

// gatherNorm writes out = max(in[:, idx]·scale + shift, floor) for the
// whole sixteens of idx in one AVX-512 pass, and returns how many channels
// it did (0 without AVX-512); the caller does the rest.
func gatherNorm(out, in []float32, idx []int32, scale, shift []float32, p, ldIn, ldOut int, floor float32) int {
	n16 := len(idx) &^ 15
	if !use.gather16 || n16 == 0 || p == 0 {
		return 0
	}
	hi := engine.CheckIndices("input transform", idx, ldIn)
	_, _, _, _ = out[(p-1)*ldOut+n16-1], in[(p-1)*ldIn+hi], scale[n16-1], shift[n16-1]
	gatherNorm512(&out[0], &in[0], &idx[0], &scale[0], &shift[0], n16, p, ldIn, ldOut, floor)
	return n16
}

//go:noescape
func conv1x1G4x8AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32)

//go:noescape
func conv1x1G4x16AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32)

//go:noescape
func transposeBlock(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int, add bool)

//go:noescape
func prefetchLines(p *float32, offset, stride int, write bool)

//go:noescape
func transposeAffine(dst *float32, rowOff *int, src *float32, srcStride int, scale, shift *float32, floor float32)

//go:noescape
func dotStoreAVX512(out *float32, ld int, masks uint64, in *uint8, steps *int, n int, w *int8, q *requant, channels int, vnni bool)

//go:noescape
func dotScatterAVX512(out *float32, ld int, offs *int32, in *uint8, steps *int, n int, w *int8, q *requant, channels int, vnni bool)

// dotStore is dotStoreGo, checked, on the AVX-512 kernel where the int8
// kernels run.
func dotStore(out []float32, ld, n int, t *tile) {
	checkDotStore(out, ld, n, t)
	if !use.int8 {
		dotStoreGo(out, ld, n, t)
		return
	}
	masks := uint64(1)<<n - 1
	if n == tileLen {
		masks = ^uint64(0)
	}
	dotStoreAVX512(&out[0], ld, masks, &t.in[0], &t.steps[0], len(t.steps), &t.w[0], &t.q[0], len(t.q), use.vnni)
}

// dotScatter is dotScatterGo, checked, on the AVX-512 kernel where the int8
// kernels run.
func dotScatter(out []float32, ld int, offs *[tileLen]int32, most int32, t *tile) {
	checkDotScatter(out, ld, most, t)
	if !use.int8 {
		dotScatterGo(out, ld, offs, t)
		return
	}
	dotScatterAVX512(&out[0], ld, &offs[0], &t.in[0], &t.steps[0], len(t.steps), &t.w[0], &t.q[0], len(t.q), use.vnni)
}

//go:noescape
func dotQuadsAVX512(dst *uint8, runs *tileRun, nruns int, in *uint8, steps *int, n int, w *int8, q *requant, dest *quadDest, channels, groups, groupBytes int, vnni bool)

// dotQuads is dotQuadsGo on tile at's runs, checked, on the AVX-512 kernel
// where the int8 kernels run.
func dotQuads(dst []uint8, rs *tileRuns, at int, t *tile, dest []quadDest) {
	checkDotQuads(dst, rs, t, dest)
	runs := rs.runs[rs.start[at]:rs.start[at+1]]
	switch {
	case len(runs) == 0:
	case !use.int8:
		dotQuadsGo(dst, runs, t, dest)
	default:
		dotQuadsAVX512(&dst[0], &runs[0], len(runs), &t.in[0], &t.steps[0], len(t.steps), &t.w[0], &t.q[0], &dest[0], len(t.q)/t.groups, t.groups, t.groupBytes, use.vnni)
	}
}

//go:noescape
func dotRunsAVX512(out *float32, ldBytes int, runs *tileRun, nruns int, in *uint8, steps *int, n int, w *int8, q *requant, channels, vectors, groups, groupBytes, second int, vnni bool)

// dotRuns is dotRunsGo on tile at's runs, checked, on the AVX-512 kernel
// where the int8 kernels run.
func dotRuns(out []float32, ld int, rs *tileRuns, at int, t *tile) {
	checkDotRuns(out, ld, rs, t)
	runs := rs.runs[rs.start[at]:rs.start[at+1]]
	switch {
	case len(runs) == 0:
	case !use.int8:
		dotRunsGo(out, ld, runs, t)
	default:
		channels, groups, groupBytes, second := len(t.q)/t.groups, t.groups, t.groupBytes, 0
		if t.paired { // the kernel's groups are pairs of the tile's
			channels, groups, groupBytes, second = 4, groups/2, 2*groupBytes, groupBytes
		}
		dotRunsAVX512(&out[0], 4*ld, &runs[0], len(runs), &t.in[0], &t.steps[0], len(t.steps), &t.w[0], &t.q[0], channels, rs.vectors[at], groups, groupBytes, second, use.vnni)
	}
}

//go:noescape
func dotChannelAVX2(acc *int32, in *uint8, steps *int, n int, w *int8, wStride int)

// dotChannel is dotChannelGo on the AVX2 kernel where it runs: the int8
// tile kernels' sums where their AVX-512 assembly does not run. The tile
// kernels' wrappers have checked t (checkTile) before they call it.
func dotChannel(acc *[tileLen]int32, t *tile, k int) {
	if !use.int8AVX2 {
		dotChannelGo(acc, t, k)
		return
	}
	in, w := t.channel(k)
	dotChannelAVX2(&acc[0], &in[0], &t.steps[0], len(t.steps), &w[0], 4*t.width)
}

//go:noescape
func quantiseStagedAVX2(dst *uint8, planeBytes int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, quads, vectors int, mask *int32, tail int)

// tailMasks[8-r:] are the AVX2 masks of r of eight dwords.
var tailMasks = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

//go:noescape
func quantiseStagedAVX512(dst *uint8, planeBytes int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, quads, chunks int, mask uint64, vectors int)

// quantiseStaged is quantiseStagedGo, checked, on the AVX-512 kernel
// where the int8 kernels run.
func quantiseStaged(dst []uint8, planeBytes int, staged []float32, stride int, q *quads, pixels int) {
	checkQuantiseStaged(dst, planeBytes, staged, stride, q, pixels)
	switch {
	case use.int8:
		quantiseStagedAVX512(&dst[0], planeBytes, &staged[0], 4*stride, &q.idx[0], &q.scale[0], &q.shift[0], len(q.idx)/4, pixels/64, 1<<(pixels%64)-1, pixels%64/16+min(1, pixels%16))
	case use.int8AVX2:
		r := pixels % 8
		quantiseStagedAVX2(&dst[0], planeBytes, &staged[0], 4*stride, &q.idx[0], &q.scale[0], &q.shift[0], len(q.idx)/4, pixels/8, &tailMasks[8-r], r)
	default:
		quantiseStagedGo(dst, planeBytes, staged, stride, q, pixels)
	}
}

//go:noescape
func pointwisePlanes8x32(out *float32, ld int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, w *float32, floor float32, mask uint32)

//go:noescape
func pointwisePlanes4x32(out *float32, ld int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, w *float32, floor float32, mask uint32)

// pointwisePlanes is pointwisePlanesGo, checked, on the AVX-512 kernels
// where they run: for a block of 8 outputs, of 4, or of another count
// through 8 into a buffer (the missing outputs' weights are zero).
func pointwisePlanes(out []float32, ld int, staged []float32, stride int, idx []int32, most int32, scale, shift, w []float32, kb int, floor float32, pixels int) {
	checkPointwisePlanes(out, ld, staged, stride, idx, most, scale, shift, w, kb, pixels)
	mask := uint32(1<<pixels - 1)
	switch {
	case !use.planes:
		pointwisePlanesGo(out, ld, staged, stride, idx, scale, shift, w, kb, floor, pixels)
	case kb == pointwiseBlock:
		pointwisePlanes8x32(&out[0], ld, &staged[0], 4*stride, &idx[0], &scale[0], &shift[0], len(idx), &w[0], floor, mask)
	case kb == 4:
		pointwisePlanes4x32(&out[0], ld, &staged[0], 4*stride, &idx[0], &scale[0], &shift[0], len(idx), &w[0], floor, mask)
	default:
		var buf [pointwiseBlock * pointwiseChunk]float32
		pointwisePlanes8x32(&buf[0], pointwiseChunk, &staged[0], 4*stride, &idx[0], &scale[0], &shift[0], len(idx), &w[0], floor, mask)
		for k := range kb {
			copy(out[k*ld:][:pixels], buf[k*pointwiseChunk:])
		}
	}
}

//go:noescape
func transformPlanes512(t *float32, src *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, floor float32, mask uint32)

//go:noescape
func pointwiseTransformed8x32(out *float32, ld int, t *float32, cg int, w *float32, mask uint32)

// transformPlanes is pointwisePlanes's transform alone, checked, into t
// (see transformPlanes512), on the AVX-512 kernel: use.planes is its
// caller's to check.
func transformPlanes(t []float32, src []float32, stride int, idx []int32, most int32, scale, shift []float32, floor float32, pixels int) {
	checkTransformPlanes(t, src, stride, idx, most, scale, shift, pixels)
	transformPlanes512(&t[0], &src[0], 4*stride, &idx[0], &scale[0], &shift[0], len(idx), floor, uint32(1<<pixels-1))
}

// pointwiseTransformed is pointwisePlanes of eight outputs on cg inputs
// transformPlanes transformed into t, checked, on the AVX-512 kernel.
func pointwiseTransformed(out []float32, ld int, t []float32, cg int, w []float32, pixels int) {
	checkPointwiseTransformed(out, ld, t, cg, w, pixels)
	pointwiseTransformed8x32(&out[0], ld, &t[0], cg, &w[0], uint32(1<<pixels-1))
}

//go:noescape
func avgPool2Row512(y, x *float32, ldIn, rowIn, ldOut, ow, c int)

//go:noescape
func avgPool2RowBack512(dx, grad *float32, ldIn, rowIn, ldOut, ow, c int)

// avgPool2Row is avgPool2RowGo, checked, on the AVX-512 kernel where the
// strided kernels run.
func avgPool2Row(y, x []float32, ldIn, rowIn, ldOut, ow, c int) {
	checkAvgPool2Row(y, x, ldIn, rowIn, ldOut, ow, c)
	if !use.strided {
		avgPool2RowGo(y, x, ldIn, rowIn, ldOut, ow, c)
		return
	}
	avgPool2Row512(&y[0], &x[0], ldIn, rowIn, ldOut, ow, c)
}

// avgPool2RowBack is avgPool2RowBackGo, checked, on the AVX-512 kernel
// where the strided kernels run.
func avgPool2RowBack(dx, g []float32, ldIn, rowIn, ldOut, ow, c int) {
	checkAvgPool2Row(g, dx, ldIn, rowIn, ldOut, ow, c)
	if !use.strided {
		avgPool2RowBackGo(dx, g, ldIn, rowIn, ldOut, ow, c)
		return
	}
	avgPool2RowBack512(&dx[0], &g[0], ldIn, rowIn, ldOut, ow, c)
}

//go:noescape
func avgPoolPlanes512(dst, src *float32, w, rows int, evens *int32)

// avgPoolPlanes is avgPoolPlanesGo, checked, on the AVX-512 kernel where
// the strided kernels run.
func avgPoolPlanes(dst, src []float32, w, rows int) {
	checkAvgPoolPlanes(dst, src, w, rows)
	if !use.strided {
		avgPoolPlanesGo(dst, src, w, rows)
		return
	}
	var evens [16]int32
	for i := range evens {
		evens[i] = int32(2 * i)
	}
	avgPoolPlanes512(&dst[0], &src[0], w, rows, &evens[0])
}
