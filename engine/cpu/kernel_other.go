//go:build !amd64

package cpu

func detectISA() isa { return isaGo }

func kernel(k int, a []float32, aStep, aRow int, b, c []float32, ldc int, accumulate bool) {
	kernelGo(k, a, aStep, aRow, b, c, ldc, accumulate)
}

func kernelPair(k int, a []float32, aStep, aRow, aTile, tiles int, b, c []float32, ldc int, accumulate bool) {
	kernelPairGo(k, a, aStep, aRow, aTile, tiles, b, c, ldc, accumulate)
}

func bnBackFusedGemm(k int, a []float32, lda, rows int, b, tail, sg, sgx, dx, x, t []float32, ldx, n int, scale, shift, ca []float32, floor float32) {
	panic("unreachable")
}

func copyRowsB(dst, src []float32, k, ld int) {
	for p := range k {
		copy(dst[p*nr:p*nr+nr], src[p*ld:p*ld+nr])
	}
}

func copyRowsA(dst, src []float32, k, ld int) {
	for p := range k {
		copy(dst[p*mr:p*mr+mr], src[p*ld:p*ld+mr])
	}
}

func copyRuns(dst, src []float32, groups, cg, dstStride, srcStride int) {
	copyRunsGo(dst, src, groups, cg, dstStride, srcStride)
}

func addRuns(dst, src []float32, groups, cg, dstStride, srcStride int) {
	addRunsGo(dst, src, groups, cg, dstStride, srcStride)
}

func stem2Row(out, in, w []float32, n, ldIn, ldOut int) { panic("unreachable") }

func packAffineA(dst, src []float32, k, ld, m int, scale, shift []float32, floor float32) {
	panic("unreachable")
}

func kernel8(k int, a []float32, aStep, aRow int, b, c []float32, ldc int, accumulate bool) {
	panic("unreachable")
}

func gatherRows(out, in []float32, idx []int32, p, ldIn, ldOut int) {
	IndexSelectForward(out, in, idx, p, ldIn, ldOut)
}

func fmaRounds(n int) float64 { return fmaRoundsGo(n) }

func dotRounds(n int) float64 { return 0 }

func conv3x3Pair512(acc, plane, wk *float32, cg, planeStride, rowStride int) { panic("unreachable") }

func conv3x3Quad512(acc, plane, wk *float32, cg, planeStride, rowStride int) { panic("unreachable") }

func conv3x3PairVec512(acc, plane, wk *float32, cg, planeStride, rowStride int) { panic("unreachable") }

func conv3x3QuadVec512(acc, plane, wk *float32, cg, planeStride, rowStride int) { panic("unreachable") }

func conv3x3GradPair512(acc, dout0, dout1, in *float32, nvec, rowStride, images, doutStride, inStride int) {
	panic("unreachable")
}

func stridedCopy(dst, src []float32, stride int) { stridedCopyGo(dst, src, stride) }

func stridedAffine(dst, src []float32, stride int, scale, shift, floor float32) {
	stridedAffineGo(dst, src, stride, scale, shift, floor)
}

func gatherNorm(out, in []float32, idx []int32, scale, shift []float32, p, ldIn, ldOut int, floor float32) int {
	return 0
}

func conv1x1G4x8AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32) {
	panic("unreachable")
}

func conv1x1G4x16AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32) {
	panic("unreachable")
}

func transposeBlock(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int, add bool) {
	panic("unreachable")
}

func prefetchLines(p *float32, offset, stride int, write bool) {}

func transposeAffine(dst *float32, rowOff *int, src *float32, srcStride int, scale, shift *float32, floor float32) {
	panic("unreachable")
}

func dotStore(out []float32, ld, n int, t *tile) {
	checkDotStore(out, ld, n, t)
	dotStoreGo(out, ld, n, t)
}

func dotScatter(out []float32, ld int, offs *[tileLen]int32, most int32, t *tile) {
	checkDotScatter(out, ld, most, t)
	dotScatterGo(out, ld, offs, t)
}

func dotQuads(dst []uint8, rs *tileRuns, at int, t *tile, dest []quadDest) {
	checkDotQuads(dst, rs, t, dest)
	dotQuadsGo(dst, rs.runs[rs.start[at]:rs.start[at+1]], t, dest)
}

func dotRuns(out []float32, ld int, rs *tileRuns, at int, t *tile) {
	checkDotRuns(out, ld, rs, t)
	dotRunsGo(out, ld, rs.runs[rs.start[at]:rs.start[at+1]], t)
}

func quantiseStaged(dst []uint8, planeBytes int, staged []float32, stride int, q *quads, pixels int) {
	checkQuantiseStaged(dst, planeBytes, staged, stride, q, pixels)
	quantiseStagedGo(dst, planeBytes, staged, stride, q, pixels)
}

func pointwisePlanes(out []float32, ld int, staged []float32, stride int, idx []int32, most int32, scale, shift, w []float32, kb int, floor float32, pixels int) {
	checkPointwisePlanes(out, ld, staged, stride, idx, most, scale, shift, w, kb, pixels)
	pointwisePlanesGo(out, ld, staged, stride, idx, scale, shift, w, kb, floor, pixels)
}

func affineRows(dst []float32, dstStride int, src []float32, w, h int, scale, shift, floor float32) {
	checkAffineRows(dst, dstStride, src, w, h)
	affineRowsGo(dst, dstStride, src, w, h, scale, shift, floor)
}

func avgPool2Row(y, x []float32, ldIn, rowIn, ldOut, ow, c int) {
	checkAvgPool2Row(y, x, ldIn, rowIn, ldOut, ow, c)
	avgPool2RowGo(y, x, ldIn, rowIn, ldOut, ow, c)
}

func avgPool2RowBack(dx, g []float32, ldIn, rowIn, ldOut, ow, c int) {
	checkAvgPool2Row(g, dx, ldIn, rowIn, ldOut, ow, c)
	avgPool2RowBackGo(dx, g, ldIn, rowIn, ldOut, ow, c)
}

func avgPoolPlanes(dst, src []float32, w, rows int) {
	checkAvgPoolPlanes(dst, src, w, rows)
	avgPoolPlanesGo(dst, src, w, rows)
}

func transformPlanes(t []float32, src []float32, stride int, idx []int32, most int32, scale, shift []float32, floor float32, pixels int) {
	panic("unreachable")
}

func pointwiseTransformed(out []float32, ld int, t []float32, cg int, w []float32, pixels int) {
	panic("unreachable")
}

func dotChannel(acc *[tileLen]int32, t *tile, k int) { dotChannelGo(acc, t, k) }
