#include "textflag.h"

// The 6-row micro-kernels (kernelAVX2, kernel6x32AVX512) share their steps,
// with Y registers (16 floats in two) or Z registers (32 in two):
//   LOAD_A    CX = k; SI, R10 = rows 0 and 3 of A; R9 = a row's stride in
//             bytes; R11 = the step from one p to the next in bytes
//   FMA2      broadcast A[row, p] into t and add t·(b0, b1) into (c0, c1)
//   ADD2/PUT2 add C's row at DI into (c0, c1), or store them there; then
//             move DI to the next row (DX = C's row stride in bytes)
#define LOAD_A \
	MOVQ k+0(FP), CX \
	MOVQ a+8(FP), SI \
	MOVQ aStep+16(FP), R11 \
	SHLQ $2, R11 \
	MOVQ aRow+24(FP), R9 \
	SHLQ $2, R9 \
	LEAQ (SI)(R9*2), R10 \
	ADDQ R9, R10

#define FMA2(a, b0, b1, t, c0, c1) \
	VBROADCASTSS a, t \
	VFMADD231PS  b0, t, c0 \
	VFMADD231PS  b1, t, c1

#define ADD2(off, c0, c1) \
	VADDPS (DI), c0, c0 \
	VADDPS off(DI), c1, c1 \
	ADDQ   DX, DI

#define PUT2(off, c0, c1) \
	VMOVUPS c0, (DI) \
	VMOVUPS c1, off(DI) \
	ADDQ    DX, DI

// func kernelAVX2(k int, a *float32, aStep, aRow int, b, c *float32, ldc int, accumulate bool)
//
// C[0:6, 0:16] (+)= Σ_{p<k} A[i, p]·B[p, j], where A[i, p] is at
// a[p*aStep + i*aRow] (floats): a packed strip has aStep 6 and aRow 1, a
// row-major A read in place aStep 1 and aRow lda. B is a packed strip, 16
// floats per p. Y0..Y11 hold the 6×16 tile (two registers per row),
// Y12/Y13 a row of B, Y14 a broadcast element of A.
TEXT ·kernelAVX2(SB), NOSPLIT, $0-57
	LOAD_A
	MOVQ b+32(FP), BX
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), DX
	SHLQ $2, DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	TESTQ CX, CX
	JE    store

loop:
	VMOVUPS (BX), Y12
	VMOVUPS 32(BX), Y13
	FMA2((SI), Y12, Y13, Y14, Y0, Y1)
	FMA2((SI)(R9*1), Y12, Y13, Y14, Y2, Y3)
	FMA2((SI)(R9*2), Y12, Y13, Y14, Y4, Y5)
	FMA2((R10), Y12, Y13, Y14, Y6, Y7)
	FMA2((R10)(R9*1), Y12, Y13, Y14, Y8, Y9)
	FMA2((R10)(R9*2), Y12, Y13, Y14, Y10, Y11)
	ADDQ R11, SI
	ADDQ R11, R10
	ADDQ $64, BX
	DECQ CX
	JNE  loop

store:
	MOVBQZX accumulate+56(FP), R8
	TESTQ   R8, R8
	JE      overwrite
	ADD2(32, Y0, Y1)
	ADD2(32, Y2, Y3)
	ADD2(32, Y4, Y5)
	ADD2(32, Y6, Y7)
	ADD2(32, Y8, Y9)
	ADD2(32, Y10, Y11)
	MOVQ    c+40(FP), DI

overwrite:
	PUT2(32, Y0, Y1)
	PUT2(32, Y2, Y3)
	PUT2(32, Y4, Y5)
	PUT2(32, Y6, Y7)
	PUT2(32, Y8, Y9)
	PUT2(32, Y10, Y11)
	VZEROUPPER
	RET

// func packB16(dst, src *float32, k, ldb int)
// Copies k rows of 16 floats, ldb floats apart in src, contiguously to dst.
TEXT ·packB16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ k+16(FP), CX
	MOVQ ldb+24(FP), DX
	SHLQ $2, DX
	TESTQ CX, CX
	JE   packBDone

packBLoop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    DX, SI
	ADDQ    $64, DI
	DECQ    CX
	JNE     packBLoop

packBDone:
	VZEROUPPER
	RET

// func packA6(dst, src *float32, k, lda int)
// Copies k rows of 6 floats, lda floats apart in src, contiguously to dst.
TEXT ·packA6(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ k+16(FP), CX
	MOVQ lda+24(FP), DX
	SHLQ $2, DX
	TESTQ CX, CX
	JE   packADone

packALoop:
	MOVUPS (SI), X0
	MOVQ   16(SI), X1
	MOVUPS X0, (DI)
	MOVQ   X1, 16(DI)
	ADDQ   DX, SI
	ADDQ   $24, DI
	DECQ   CX
	JNE    packALoop

packADone:
	RET

// func copyRunsAVX2(dst, src *float32, runs, n, dstStride, srcStride int)
// For each run i < runs: dst[i*dstStride : +n] = src[i*srcStride : +n].
// n is a positive multiple of 8.
TEXT ·copyRunsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ runs+16(FP), CX
	MOVQ n+24(FP), R10
	SHLQ $2, R10
	MOVQ dstStride+32(FP), R8
	SHLQ $2, R8
	MOVQ srcStride+40(FP), R9
	SHLQ $2, R9

gcGroup:
	XORQ AX, AX

gcLoop:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R10
	JLT     gcLoop
	ADDQ    R8, DI
	ADDQ    R9, SI
	DECQ    CX
	JNZ     gcGroup
	VZEROUPPER
	RET

// func addRunsAVX2(dst, src *float32, runs, n, dstStride, srcStride int)
// For each run i < runs: dst[i*dstStride : +n] += src[i*srcStride : +n].
TEXT ·addRunsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ runs+16(FP), CX
	MOVQ n+24(FP), R10
	SHLQ $2, R10
	MOVQ dstStride+32(FP), R8
	SHLQ $2, R8
	MOVQ srcStride+40(FP), R9
	SHLQ $2, R9

gaGroup:
	XORQ AX, AX

gaLoop:
	VMOVUPS (DI)(AX*1), Y0
	VADDPS  (SI)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R10
	JLT     gaLoop
	ADDQ    R8, DI
	ADDQ    R9, SI
	DECQ    CX
	JNZ     gaGroup
	VZEROUPPER
	RET

// func kernel8AVX2(k int, a *float32, aStep, aRow int, b, c *float32, ldc int, accumulate bool)
//
// As kernelAVX2 for a 6×8 tile: only the first 8 columns of each packed
// 16-float row of B are used and written. Y0..Y5 hold the tile.
TEXT ·kernel8AVX2(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ aStep+16(FP), R11
	SHLQ $2, R11
	MOVQ aRow+24(FP), R9
	SHLQ $2, R9
	MOVQ b+32(FP), BX
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), DX
	SHLQ $2, DX
	LEAQ (SI)(R9*2), R10
	ADDQ R9, R10

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5

	TESTQ CX, CX
	JE    store8

loop8:
	VMOVUPS      (BX), Y12
	VBROADCASTSS (SI), Y13
	VFMADD231PS  Y12, Y13, Y0
	VBROADCASTSS (SI)(R9*1), Y14
	VFMADD231PS  Y12, Y14, Y1
	VBROADCASTSS (SI)(R9*2), Y15
	VFMADD231PS  Y12, Y15, Y2
	VBROADCASTSS (R10), Y13
	VFMADD231PS  Y12, Y13, Y3
	VBROADCASTSS (R10)(R9*1), Y14
	VFMADD231PS  Y12, Y14, Y4
	VBROADCASTSS (R10)(R9*2), Y15
	VFMADD231PS  Y12, Y15, Y5
	ADDQ         R11, SI
	ADDQ         R11, R10
	ADDQ         $64, BX
	DECQ         CX
	JNE          loop8

store8:
	MOVBQZX accumulate+56(FP), R8
	TESTQ   R8, R8
	JE      overwrite8
	MOVQ    DI, AX
	VADDPS  (AX), Y0, Y0
	ADDQ    DX, AX
	VADDPS  (AX), Y1, Y1
	ADDQ    DX, AX
	VADDPS  (AX), Y2, Y2
	ADDQ    DX, AX
	VADDPS  (AX), Y3, Y3
	ADDQ    DX, AX
	VADDPS  (AX), Y4, Y4
	ADDQ    DX, AX
	VADDPS  (AX), Y5, Y5

overwrite8:
	VMOVUPS Y0, (DI)
	ADDQ    DX, DI
	VMOVUPS Y1, (DI)
	ADDQ    DX, DI
	VMOVUPS Y2, (DI)
	ADDQ    DX, DI
	VMOVUPS Y3, (DI)
	ADDQ    DX, DI
	VMOVUPS Y4, (DI)
	ADDQ    DX, DI
	VMOVUPS Y5, (DI)
	VZEROUPPER
	RET

// func gatherRowsAVX2(dst, src *float32, idx *int32, n, rows, ldSrc, ldDst int)
// For each row r: dst[r*ldDst + j] = src[r*ldSrc + idx[j]] for j < n
// (n a positive multiple of 8): a channel index-select. Plain loads, eight
// per iteration: the 256-bit VGATHERDPS measured twice as slow on Zen 4.
// With AVX-512, gatherRows512 takes whole sixteens first.
TEXT ·gatherRowsAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), BX
	MOVQ n+24(FP), R10
	SHLQ $2, R10
	MOVQ rows+32(FP), DX
	MOVQ ldSrc+40(FP), R8
	SHLQ $2, R8
	MOVQ ldDst+48(FP), R9
	SHLQ $2, R9

gatherRow:
	XORQ AX, AX

gatherCol:
	MOVLQSX (BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, (DI)(AX*1)
	MOVLQSX 4(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 4(DI)(AX*1)
	MOVLQSX 8(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 8(DI)(AX*1)
	MOVLQSX 12(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 12(DI)(AX*1)
	MOVLQSX 16(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 16(DI)(AX*1)
	MOVLQSX 20(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 20(DI)(AX*1)
	MOVLQSX 24(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 24(DI)(AX*1)
	MOVLQSX 28(BX)(AX*1), R11
	MOVL    (SI)(R11*4), R12
	MOVL    R12, 28(DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R10
	JLT     gatherCol
	ADDQ    R8, SI
	ADDQ    R9, DI
	DECQ    DX
	JNZ     gatherRow
	RET

// func kernel6x32AVX512(k int, a *float32, aStep, aRow int, b0, b1, c *float32, ldc int, accumulate bool)
//
// kernelAVX2 over two adjacent packed strips of B at once, with 512-bit
// registers: C[0:6, 0:16] from strip b0 and C[0:6, 16:32] from strip b1.
// Z0..Z11 hold the 6×32 tile (two registers per row), Z12/Z13 a row of
// each strip, Z14 a broadcast element of A, which serves both strips. Each
// element is summed in the same order with the same FMAs as kernelAVX2, so
// the two give the same bits.
TEXT ·kernel6x32AVX512(SB), NOSPLIT, $0-65
	LOAD_A
	MOVQ b0+32(FP), BX
	MOVQ b1+40(FP), R12
	MOVQ c+48(FP), DI
	MOVQ ldc+56(FP), DX
	SHLQ $2, DX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

	TESTQ CX, CX
	JE    store512

loop512:
	VMOVUPS (BX), Z12
	VMOVUPS (R12), Z13
	FMA2((SI), Z12, Z13, Z14, Z0, Z1)
	FMA2((SI)(R9*1), Z12, Z13, Z14, Z2, Z3)
	FMA2((SI)(R9*2), Z12, Z13, Z14, Z4, Z5)
	FMA2((R10), Z12, Z13, Z14, Z6, Z7)
	FMA2((R10)(R9*1), Z12, Z13, Z14, Z8, Z9)
	FMA2((R10)(R9*2), Z12, Z13, Z14, Z10, Z11)
	ADDQ R11, SI
	ADDQ R11, R10
	ADDQ $64, BX
	ADDQ $64, R12
	DECQ CX
	JNE  loop512

store512:
	MOVBQZX accumulate+64(FP), R8
	TESTQ   R8, R8
	JE      overwrite512
	ADD2(64, Z0, Z1)
	ADD2(64, Z2, Z3)
	ADD2(64, Z4, Z5)
	ADD2(64, Z6, Z7)
	ADD2(64, Z8, Z9)
	ADD2(64, Z10, Z11)
	MOVQ    c+48(FP), DI

overwrite512:
	PUT2(64, Z0, Z1)
	PUT2(64, Z2, Z3)
	PUT2(64, Z4, Z5)
	PUT2(64, Z6, Z7)
	PUT2(64, Z8, Z9)
	PUT2(64, Z10, Z11)
	VZEROUPPER
	RET

// func fmaLoop512(n int)
// n rounds of 12 independent 512-bit FMAs on registers only: the core's
// peak floating-point rate, for PeakGFLOPs.
TEXT ·fmaLoop512(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
fma512:
	VFMADD231PS Z12, Z13, Z0
	VFMADD231PS Z12, Z13, Z1
	VFMADD231PS Z12, Z13, Z2
	VFMADD231PS Z12, Z13, Z3
	VFMADD231PS Z12, Z13, Z4
	VFMADD231PS Z12, Z13, Z5
	VFMADD231PS Z12, Z13, Z6
	VFMADD231PS Z12, Z13, Z7
	VFMADD231PS Z12, Z13, Z8
	VFMADD231PS Z12, Z13, Z9
	VFMADD231PS Z12, Z13, Z10
	VFMADD231PS Z12, Z13, Z11
	DECQ CX
	JNE  fma512
	VZEROUPPER
	RET

// func fmaLoop256(n int)
// As fmaLoop512 with 256-bit FMAs.
TEXT ·fmaLoop256(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
fma256:
	VFMADD231PS Y12, Y13, Y0
	VFMADD231PS Y12, Y13, Y1
	VFMADD231PS Y12, Y13, Y2
	VFMADD231PS Y12, Y13, Y3
	VFMADD231PS Y12, Y13, Y4
	VFMADD231PS Y12, Y13, Y5
	VFMADD231PS Y12, Y13, Y6
	VFMADD231PS Y12, Y13, Y7
	VFMADD231PS Y12, Y13, Y8
	VFMADD231PS Y12, Y13, Y9
	VFMADD231PS Y12, Y13, Y10
	VFMADD231PS Y12, Y13, Y11
	DECQ CX
	JNE  fma256
	VZEROUPPER
	RET

// func conv3x3Pair512(acc, plane, wk *float32, cg, planeStride, rowStride int)
//
// Two output channels of a 3×3 convolution over 64 consecutive positions q
// of zero-padded planes (see conv_direct.go): for j < 2, lane q,
//   acc[j·64 + q] = Σ_{ci<cg} Σ_{r,s<3} plane[ci·planeStride + q + r·rowStride + s] · wk[(ci·9 + r·3 + s)·2 + j]
// Z0..Z3 and Z4..Z7 accumulate the two channels (four vectors of 16
// positions each), Z8..Z11 hold a tap's input vectors, Z12/Z13 its two
// weights. R8, R9, R10 point at rows 0, 1, 2 of the taps.
//
// TAP(row, s, t) adds tap t (row, column s) for one input channel.
#define TAP(row, s, t) \
	VMOVUPS      (s*4)(row), Z8 \
	VMOVUPS      (s*4+64)(row), Z9 \
	VMOVUPS      (s*4+128)(row), Z10 \
	VMOVUPS      (s*4+192)(row), Z11 \
	VBROADCASTSS (t*8)(SI), Z12 \
	VBROADCASTSS (t*8+4)(SI), Z13 \
	VFMADD231PS  Z8, Z12, Z0 \
	VFMADD231PS  Z9, Z12, Z1 \
	VFMADD231PS  Z10, Z12, Z2 \
	VFMADD231PS  Z11, Z12, Z3 \
	VFMADD231PS  Z8, Z13, Z4 \
	VFMADD231PS  Z9, Z13, Z5 \
	VFMADD231PS  Z10, Z13, Z6 \
	VFMADD231PS  Z11, Z13, Z7

TEXT ·conv3x3Pair512(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DI
	MOVQ plane+8(FP), R8
	MOVQ wk+16(FP), SI
	MOVQ cg+24(FP), CX
	MOVQ planeStride+32(FP), DX
	SHLQ $2, DX
	MOVQ rowStride+40(FP), BX
	SHLQ $2, BX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7

pairLoop:
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	TAP(R8, 0, 0)
	TAP(R8, 1, 1)
	TAP(R8, 2, 2)
	TAP(R9, 0, 3)
	TAP(R9, 1, 4)
	TAP(R9, 2, 5)
	TAP(R10, 0, 6)
	TAP(R10, 1, 7)
	TAP(R10, 2, 8)
	ADDQ DX, R8
	ADDQ $72, SI
	DECQ CX
	JNE  pairLoop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VZEROUPPER
	RET

// func conv3x3GradPair512(acc, dout0, dout1, in *float32, nvec, rowStride int)
//
// The weight gradient of conv3x3Pair512 for two output channels and one
// input channel, over nvec vectors of 16 positions q: for tap t = 3r + s,
//   acc[t·16 + lane]     += Σ_q dout0[q] · in[q + r·rowStride + s]
//   acc[(9+t)·16 + lane] += Σ_q dout1[q] · in[q + r·rowStride + s]
// summed lane by lane (the caller adds the 16 lanes once, after the last
// image). Z0..Z17 accumulate,
// Z18/Z19 hold the two output gradients, Z20 an input vector.
#define GRADTAP(row, s, a0, a1) \
	VMOVUPS     (s*4)(row), Z20 \
	VFMADD231PS Z18, Z20, a0 \
	VFMADD231PS Z19, Z20, a1

TEXT ·conv3x3GradPair512(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DI
	MOVQ dout0+8(FP), AX
	MOVQ dout1+16(FP), DX
	MOVQ in+24(FP), R8
	MOVQ nvec+32(FP), CX
	MOVQ rowStride+40(FP), BX
	SHLQ $2, BX
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 256(DI), Z4
	VMOVUPS 320(DI), Z5
	VMOVUPS 384(DI), Z6
	VMOVUPS 448(DI), Z7
	VMOVUPS 512(DI), Z8
	VMOVUPS 576(DI), Z9
	VMOVUPS 640(DI), Z10
	VMOVUPS 704(DI), Z11
	VMOVUPS 768(DI), Z12
	VMOVUPS 832(DI), Z13
	VMOVUPS 896(DI), Z14
	VMOVUPS 960(DI), Z15
	VMOVUPS 1024(DI), Z16
	VMOVUPS 1088(DI), Z17

gradLoop:
	VMOVUPS (AX), Z18
	VMOVUPS (DX), Z19
	LEAQ    (R8)(BX*1), R9
	LEAQ    (R9)(BX*1), R10
	GRADTAP(R8, 0, Z0, Z9)
	GRADTAP(R8, 1, Z1, Z10)
	GRADTAP(R8, 2, Z2, Z11)
	GRADTAP(R9, 0, Z3, Z12)
	GRADTAP(R9, 1, Z4, Z13)
	GRADTAP(R9, 2, Z5, Z14)
	GRADTAP(R10, 0, Z6, Z15)
	GRADTAP(R10, 1, Z7, Z16)
	GRADTAP(R10, 2, Z8, Z17)
	ADDQ $64, AX
	ADDQ $64, DX
	ADDQ $64, R8
	DECQ CX
	JNE  gradLoop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VMOVUPS Z12, 768(DI)
	VMOVUPS Z13, 832(DI)
	VMOVUPS Z14, 896(DI)
	VMOVUPS Z15, 960(DI)
	VMOVUPS Z16, 1024(DI)
	VMOVUPS Z17, 1088(DI)
	VZEROUPPER
	RET

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA, $64

// func gatherRows512(dst, src *float32, idx *int32, n, rows, ldSrc, ldDst int)
// gatherRowsAVX2 with VGATHERDPS, sixteen at a time (n a positive multiple
// of 16).
TEXT ·gatherRows512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), BX
	MOVQ n+24(FP), R10
	SHLQ $2, R10
	MOVQ rows+32(FP), DX
	MOVQ ldSrc+40(FP), R8
	SHLQ $2, R8
	MOVQ ldDst+48(FP), R9
	SHLQ $2, R9

gather512Row:
	XORQ AX, AX

gather512Col:
	VMOVDQU32  (BX)(AX*1), Z1
	KXNORW     K1, K1, K1
	VGATHERDPS (SI)(Z1*4), K1, Z0
	VMOVUPS    Z0, (DI)(AX*1)
	ADDQ       $64, AX
	CMPQ       AX, R10
	JLT        gather512Col
	ADDQ       R8, SI
	ADDQ       R9, DI
	DECQ       DX
	JNZ        gather512Row
	VZEROUPPER
	RET

// func strided512(dst, src *float32, n, stride int, affine bool, scale, shift, floor float32)
// dst[i] = src[i·stride] for i < n, 16 at a time with a gather and the
// rest under a mask; with affine, max(src[i·stride]·scale + shift, floor)
// instead (a channel's BatchNorm and ReLU applied on the way).
TEXT ·strided512(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVQ         stride+24(FP), DX
	MOVBQZX      affine+32(FP), R8
	VBROADCASTSS scale+36(FP), Z3
	VBROADCASTSS shift+40(FP), Z4
	VBROADCASTSS floor+44(FP), Z5
	VPBROADCASTD DX, Z1
	VPMULLD      iota16<>(SB), Z1, Z2
	SHLQ         $6, DX

affine16:
	CMPQ        CX, $16
	JLT         affineTail
	KXNORW      K1, K1, K1
	VGATHERDPS  (SI)(Z2*4), K1, Z0
	TESTQ       R8, R8
	JE          affineStore
	VFMADD213PS Z4, Z3, Z0
	VMAXPS      Z5, Z0, Z0

affineStore:
	VMOVUPS     Z0, (DI)
	ADDQ        DX, SI
	ADDQ        $64, DI
	SUBQ        $16, CX
	JMP         affine16

affineTail:
	TESTQ       CX, CX
	JE          affineDone
	MOVQ        $1, AX
	SHLQ        CX, AX
	DECQ        AX
	KMOVW       AX, K1
	KMOVW       AX, K2
	VGATHERDPS  (SI)(Z2*4), K1, Z0
	TESTQ       R8, R8
	JE          affineTailStore
	VFMADD213PS Z4, Z3, Z0
	VMAXPS      Z5, Z0, Z0

affineTailStore:
	VMOVUPS     Z0, K2, (DI)

affineDone:
	VZEROUPPER
	RET

// func gatherNorm512(dst, src *float32, idx *int32, scale, shift *float32, n, rows, ldSrc, ldDst int, floor float32)
// dst[r·ldDst + j] = max(src[r·ldSrc + idx[j]]·scale[j] + shift[j], floor)
// for every row r and j < n (a positive multiple of 16): an indexed
// inference BatchNorm (with its ReLU) in one pass.
TEXT ·gatherNorm512(SB), NOSPLIT, $0-76
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         idx+16(FP), BX
	MOVQ         scale+24(FP), R11
	MOVQ         shift+32(FP), R12
	MOVQ         n+40(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+48(FP), DX
	MOVQ         ldSrc+56(FP), R8
	SHLQ         $2, R8
	MOVQ         ldDst+64(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+72(FP), Z5

normRow:
	XORQ AX, AX

normCol:
	VMOVDQU32   (BX)(AX*1), Z1
	KXNORW      K1, K1, K1
	VGATHERDPS  (SI)(Z1*4), K1, Z0
	VMOVUPS     (R11)(AX*1), Z3
	VFMADD213PS (R12)(AX*1), Z3, Z0
	VMAXPS      Z5, Z0, Z0
	VMOVUPS     Z0, (DI)(AX*1)
	ADDQ        $64, AX
	CMPQ        AX, R10
	JLT         normCol
	ADDQ        R8, SI
	ADDQ        R9, DI
	DECQ        DX
	JNZ         normRow
	VZEROUPPER
	RET

// func conv1x1G4x8AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32)
//
// Six output rows of a grouped 1×1 convolution with 4 groups of 8 outputs:
// out[r, g·8 + j] = Σ_{i<cg} a[r·lda + g·cg + i] · w[i·32 + g·8 + j].
// Z0..Z11 hold the rows (groups 0-1 and 2-3 of a row in two registers),
// Z12/Z13 a row of w. For each i and row, Z14 gets group 0's element in
// its low eight lanes and group 1's in its high eight (a masked
// broadcast), Z15 groups 2 and 3. Each output is summed in input order
// with FMAs, as the GEMM micro-kernels sum it, so the bits are theirs.
#define G4ROW(row, lo, hi) \
	VBROADCASTSS (row), Z14 \
	VBROADCASTSS (row)(R12*1), K1, Z14 \
	VBROADCASTSS (row)(R12*2), Z15 \
	VBROADCASTSS (row)(R13*1), K1, Z15 \
	VFMADD231PS  Z12, Z14, lo \
	VFMADD231PS  Z13, Z15, hi

TEXT ·conv1x1G4x8AVX512(SB), NOSPLIT, $0-48
	MOVQ  a+16(FP), SI
	MOVQ  lda+24(FP), R9
	SHLQ  $2, R9
	MOVQ  cg+32(FP), CX
	MOVQ  w+40(FP), BX
	MOVQ  CX, R12
	SHLQ  $2, R12           // one group's inputs, in bytes
	LEAQ  (R12)(R12*2), R13 // three groups'
	LEAQ  (SI)(R9*1), DI
	LEAQ  (DI)(R9*1), R8
	LEAQ  (R8)(R9*1), R10
	LEAQ  (R10)(R9*1), R11
	LEAQ  (R11)(R9*1), R9   // rows 0..5: SI, DI, R8, R10, R11, R9
	MOVQ  $0xff00, AX
	KMOVW AX, K1
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

g4Loop:
	VMOVUPS (BX), Z12
	VMOVUPS 64(BX), Z13
	G4ROW(SI, Z0, Z1)
	G4ROW(DI, Z2, Z3)
	G4ROW(R8, Z4, Z5)
	G4ROW(R10, Z6, Z7)
	G4ROW(R11, Z8, Z9)
	G4ROW(R9, Z10, Z11)
	ADDQ $4, SI
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $4, R10
	ADDQ $4, R11
	ADDQ $4, R9
	ADDQ $128, BX
	DECQ CX
	JNE  g4Loop

	MOVQ out+0(FP), DI
	MOVQ ldOut+8(FP), DX
	SHLQ $2, DX
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    DX, DI
	VMOVUPS Z2, (DI)
	VMOVUPS Z3, 64(DI)
	ADDQ    DX, DI
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
	ADDQ    DX, DI
	VMOVUPS Z6, (DI)
	VMOVUPS Z7, 64(DI)
	ADDQ    DX, DI
	VMOVUPS Z8, (DI)
	VMOVUPS Z9, 64(DI)
	ADDQ    DX, DI
	VMOVUPS Z10, (DI)
	VMOVUPS Z11, 64(DI)
	VZEROUPPER
	RET

// func conv1x1G4x16AVX512(out *float32, ldOut int, a *float32, lda, cg int, w *float32)
//
// conv1x1G4x8AVX512 for 4 groups of 16 outputs (the condensed network's
// second block): out[r, g·16 + j] = Σ_{i<cg} a[r·lda + g·cg + i] · w[i·64 + g·16 + j].
// Z0..Z23 hold six rows of four groups, Z24..Z27 a row of w, Z28 a
// broadcast input.
#define G16ROW(row, c0, c1, c2, c3) \
	VBROADCASTSS (row), Z28 \
	VFMADD231PS  Z24, Z28, c0 \
	VBROADCASTSS (row)(R12*1), Z28 \
	VFMADD231PS  Z25, Z28, c1 \
	VBROADCASTSS (row)(R12*2), Z28 \
	VFMADD231PS  Z26, Z28, c2 \
	VBROADCASTSS (row)(R13*1), Z28 \
	VFMADD231PS  Z27, Z28, c3

TEXT ·conv1x1G4x16AVX512(SB), NOSPLIT, $0-48
	MOVQ a+16(FP), SI
	MOVQ lda+24(FP), R9
	SHLQ $2, R9
	MOVQ cg+32(FP), CX
	MOVQ w+40(FP), BX
	MOVQ CX, R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), R13
	LEAQ (SI)(R9*1), DI
	LEAQ (DI)(R9*1), R8
	LEAQ (R8)(R9*1), R10
	LEAQ (R10)(R9*1), R11
	LEAQ (R11)(R9*1), R9
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

g16Loop:
	VMOVUPS (BX), Z24
	VMOVUPS 64(BX), Z25
	VMOVUPS 128(BX), Z26
	VMOVUPS 192(BX), Z27
	G16ROW(SI, Z0, Z1, Z2, Z3)
	G16ROW(DI, Z4, Z5, Z6, Z7)
	G16ROW(R8, Z8, Z9, Z10, Z11)
	G16ROW(R10, Z12, Z13, Z14, Z15)
	G16ROW(R11, Z16, Z17, Z18, Z19)
	G16ROW(R9, Z20, Z21, Z22, Z23)
	ADDQ $4, SI
	ADDQ $4, DI
	ADDQ $4, R8
	ADDQ $4, R10
	ADDQ $4, R11
	ADDQ $4, R9
	ADDQ $256, BX
	DECQ CX
	JNE  g16Loop

	MOVQ out+0(FP), DI
	MOVQ ldOut+8(FP), DX
	SHLQ $2, DX
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ    DX, DI
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z5, 64(DI)
	VMOVUPS Z6, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ    DX, DI
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	ADDQ    DX, DI
	VMOVUPS Z12, 0(DI)
	VMOVUPS Z13, 64(DI)
	VMOVUPS Z14, 128(DI)
	VMOVUPS Z15, 192(DI)
	ADDQ    DX, DI
	VMOVUPS Z16, 0(DI)
	VMOVUPS Z17, 64(DI)
	VMOVUPS Z18, 128(DI)
	VMOVUPS Z19, 192(DI)
	ADDQ    DX, DI
	VMOVUPS Z20, 0(DI)
	VMOVUPS Z21, 64(DI)
	VMOVUPS Z22, 128(DI)
	VMOVUPS Z23, 192(DI)
	VZEROUPPER
	RET

// TRANSPOSE16 transposes the 16×16 block in Z0..Z15 (row i in Zi) in
// place, with Z16..Z31 for the steps between: 32-bit then 64-bit unpacks
// leave, in each 128-bit lane L of u[4g+m], rows 4g..4g+3 at column
// 4L+m; two rounds of 128-bit lane shuffles gather the four row groups of
// each column.
#define TRANSPOSE16 \
	VUNPCKLPS Z1, Z0, Z16 \
	VUNPCKHPS Z1, Z0, Z17 \
	VUNPCKLPS Z3, Z2, Z18 \
	VUNPCKHPS Z3, Z2, Z19 \
	VUNPCKLPS Z5, Z4, Z20 \
	VUNPCKHPS Z5, Z4, Z21 \
	VUNPCKLPS Z7, Z6, Z22 \
	VUNPCKHPS Z7, Z6, Z23 \
	VUNPCKLPS Z9, Z8, Z24 \
	VUNPCKHPS Z9, Z8, Z25 \
	VUNPCKLPS Z11, Z10, Z26 \
	VUNPCKHPS Z11, Z10, Z27 \
	VUNPCKLPS Z13, Z12, Z28 \
	VUNPCKHPS Z13, Z12, Z29 \
	VUNPCKLPS Z15, Z14, Z30 \
	VUNPCKHPS Z15, Z14, Z31 \
	VUNPCKLPD Z18, Z16, Z0 \
	VUNPCKHPD Z18, Z16, Z1 \
	VUNPCKLPD Z19, Z17, Z2 \
	VUNPCKHPD Z19, Z17, Z3 \
	VUNPCKLPD Z22, Z20, Z4 \
	VUNPCKHPD Z22, Z20, Z5 \
	VUNPCKLPD Z23, Z21, Z6 \
	VUNPCKHPD Z23, Z21, Z7 \
	VUNPCKLPD Z26, Z24, Z8 \
	VUNPCKHPD Z26, Z24, Z9 \
	VUNPCKLPD Z27, Z25, Z10 \
	VUNPCKHPD Z27, Z25, Z11 \
	VUNPCKLPD Z30, Z28, Z12 \
	VUNPCKHPD Z30, Z28, Z13 \
	VUNPCKLPD Z31, Z29, Z14 \
	VUNPCKHPD Z31, Z29, Z15 \
	VSHUFF32X4 $0x44, Z4, Z0, Z16 \
	VSHUFF32X4 $0xEE, Z4, Z0, Z17 \
	VSHUFF32X4 $0x44, Z12, Z8, Z18 \
	VSHUFF32X4 $0xEE, Z12, Z8, Z19 \
	VSHUFF32X4 $0x44, Z5, Z1, Z20 \
	VSHUFF32X4 $0xEE, Z5, Z1, Z21 \
	VSHUFF32X4 $0x44, Z13, Z9, Z22 \
	VSHUFF32X4 $0xEE, Z13, Z9, Z23 \
	VSHUFF32X4 $0x44, Z6, Z2, Z24 \
	VSHUFF32X4 $0xEE, Z6, Z2, Z25 \
	VSHUFF32X4 $0x44, Z14, Z10, Z26 \
	VSHUFF32X4 $0xEE, Z14, Z10, Z27 \
	VSHUFF32X4 $0x44, Z7, Z3, Z28 \
	VSHUFF32X4 $0xEE, Z7, Z3, Z29 \
	VSHUFF32X4 $0x44, Z15, Z11, Z30 \
	VSHUFF32X4 $0xEE, Z15, Z11, Z31 \
	VSHUFF32X4 $0x88, Z18, Z16, Z0 \
	VSHUFF32X4 $0x88, Z22, Z20, Z1 \
	VSHUFF32X4 $0x88, Z26, Z24, Z2 \
	VSHUFF32X4 $0x88, Z30, Z28, Z3 \
	VSHUFF32X4 $0xDD, Z18, Z16, Z4 \
	VSHUFF32X4 $0xDD, Z22, Z20, Z5 \
	VSHUFF32X4 $0xDD, Z26, Z24, Z6 \
	VSHUFF32X4 $0xDD, Z30, Z28, Z7 \
	VSHUFF32X4 $0x88, Z19, Z17, Z8 \
	VSHUFF32X4 $0x88, Z23, Z21, Z9 \
	VSHUFF32X4 $0x88, Z27, Z25, Z10 \
	VSHUFF32X4 $0x88, Z31, Z29, Z11 \
	VSHUFF32X4 $0xDD, Z19, Z17, Z12 \
	VSHUFF32X4 $0xDD, Z23, Z21, Z13 \
	VSHUFF32X4 $0xDD, Z27, Z25, Z14 \
	VSHUFF32X4 $0xDD, Z31, Z29, Z15

// func transposeBlock(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int, add bool)
//
// dst[j·dstStride + i] = src[i·srcStride + j] for i < rows, j < cols
// (strides in floats; rows and cols 8 or 16), or += with add: a block of
// pixels × channels becomes channels × pixels, as a convolution's planes
// want it, or back. Rows go into Z0..Z15 (zeros past rows, lanes past
// cols masked off by K2), TRANSPOSE16, and the columns are stored under
// K1, rows lanes.
TEXT ·transposeBlock(SB), NOSPLIT, $0-49
	MOVQ  src+16(FP), SI
	MOVQ  srcStride+24(FP), BX
	SHLQ  $2, BX
	MOVQ  rows+32(FP), CX
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX
	KMOVW AX, K1
	MOVQ  cols+40(FP), CX
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX
	KMOVW AX, K2
	VMOVUPS.Z (SI), K2, Z0
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z1
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z2
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z3
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z4
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z5
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z6
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z7
	ADDQ      BX, SI
	CMPQ rows+32(FP), $16
	JEQ  rows16
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	JMP  shuffle

rows16:
	VMOVUPS.Z (SI), K2, Z8
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z9
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z10
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z11
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z12
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z13
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z14
	ADDQ      BX, SI
	VMOVUPS.Z (SI), K2, Z15

shuffle:
	TRANSPOSE16
	MOVQ    dst+0(FP), DI
	MOVQ    dstStride+8(FP), DX
	SHLQ    $2, DX
	MOVBQZX add+48(FP), R8
	MOVQ    cols+40(FP), R9

#define PUTROW(z) \
	TESTQ     R8, R8 \
	JEQ       3(PC) \
	VMOVUPS.Z (DI), K1, Z16 \
	VADDPS    Z16, z, z \
	VMOVUPS   z, K1, (DI) \
	ADDQ      DX, DI

	PUTROW(Z0)
	PUTROW(Z1)
	PUTROW(Z2)
	PUTROW(Z3)
	PUTROW(Z4)
	PUTROW(Z5)
	PUTROW(Z6)
	PUTROW(Z7)
	CMPQ R9, $16
	JNE  done
	PUTROW(Z8)
	PUTROW(Z9)
	PUTROW(Z10)
	PUTROW(Z11)
	PUTROW(Z12)
	PUTROW(Z13)
	PUTROW(Z14)
	PUTROW(Z15)

done:
	VZEROUPPER
	RET

// func transposeAffine(dst *float32, rowOff *int, src *float32, srcStride int, scale, shift *float32, floor float32)
//
// transposeBlock's 16×16 case with an inference BatchNorm (and ReLU) on
// the way, rows going wherever rowOff says: for i, j < 16,
// dst[rowOff[j] + i] = max(src[i·srcStride + j]·scale[j] + shift[j], floor)
// (offsets and strides in floats): a channel shuffle, BatchNorm and ReLU
// applied as a convolution's input planes are filled.
TEXT ·transposeAffine(SB), NOSPLIT, $0-52
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), BX
	SHLQ $2, BX
	VMOVUPS (SI), Z0
	ADDQ    BX, SI
	VMOVUPS (SI), Z1
	ADDQ    BX, SI
	VMOVUPS (SI), Z2
	ADDQ    BX, SI
	VMOVUPS (SI), Z3
	ADDQ    BX, SI
	VMOVUPS (SI), Z4
	ADDQ    BX, SI
	VMOVUPS (SI), Z5
	ADDQ    BX, SI
	VMOVUPS (SI), Z6
	ADDQ    BX, SI
	VMOVUPS (SI), Z7
	ADDQ    BX, SI
	VMOVUPS (SI), Z8
	ADDQ    BX, SI
	VMOVUPS (SI), Z9
	ADDQ    BX, SI
	VMOVUPS (SI), Z10
	ADDQ    BX, SI
	VMOVUPS (SI), Z11
	ADDQ    BX, SI
	VMOVUPS (SI), Z12
	ADDQ    BX, SI
	VMOVUPS (SI), Z13
	ADDQ    BX, SI
	VMOVUPS (SI), Z14
	ADDQ    BX, SI
	VMOVUPS (SI), Z15
	TRANSPOSE16
	MOVQ         dst+0(FP), DI
	MOVQ         rowOff+8(FP), R10
	MOVQ         scale+32(FP), R11
	MOVQ         shift+40(FP), R12
	VBROADCASTSS floor+48(FP), Z31
	VBROADCASTSS 0(R11), Z16
	VBROADCASTSS 0(R12), Z17
	VFMADD213PS  Z17, Z16, Z0
	VMAXPS       Z31, Z0, Z0
	MOVQ         0(R10), R13
	VMOVUPS      Z0, (DI)(R13*4)
	VBROADCASTSS 4(R11), Z16
	VBROADCASTSS 4(R12), Z17
	VFMADD213PS  Z17, Z16, Z1
	VMAXPS       Z31, Z1, Z1
	MOVQ         8(R10), R13
	VMOVUPS      Z1, (DI)(R13*4)
	VBROADCASTSS 8(R11), Z16
	VBROADCASTSS 8(R12), Z17
	VFMADD213PS  Z17, Z16, Z2
	VMAXPS       Z31, Z2, Z2
	MOVQ         16(R10), R13
	VMOVUPS      Z2, (DI)(R13*4)
	VBROADCASTSS 12(R11), Z16
	VBROADCASTSS 12(R12), Z17
	VFMADD213PS  Z17, Z16, Z3
	VMAXPS       Z31, Z3, Z3
	MOVQ         24(R10), R13
	VMOVUPS      Z3, (DI)(R13*4)
	VBROADCASTSS 16(R11), Z16
	VBROADCASTSS 16(R12), Z17
	VFMADD213PS  Z17, Z16, Z4
	VMAXPS       Z31, Z4, Z4
	MOVQ         32(R10), R13
	VMOVUPS      Z4, (DI)(R13*4)
	VBROADCASTSS 20(R11), Z16
	VBROADCASTSS 20(R12), Z17
	VFMADD213PS  Z17, Z16, Z5
	VMAXPS       Z31, Z5, Z5
	MOVQ         40(R10), R13
	VMOVUPS      Z5, (DI)(R13*4)
	VBROADCASTSS 24(R11), Z16
	VBROADCASTSS 24(R12), Z17
	VFMADD213PS  Z17, Z16, Z6
	VMAXPS       Z31, Z6, Z6
	MOVQ         48(R10), R13
	VMOVUPS      Z6, (DI)(R13*4)
	VBROADCASTSS 28(R11), Z16
	VBROADCASTSS 28(R12), Z17
	VFMADD213PS  Z17, Z16, Z7
	VMAXPS       Z31, Z7, Z7
	MOVQ         56(R10), R13
	VMOVUPS      Z7, (DI)(R13*4)
	VBROADCASTSS 32(R11), Z16
	VBROADCASTSS 32(R12), Z17
	VFMADD213PS  Z17, Z16, Z8
	VMAXPS       Z31, Z8, Z8
	MOVQ         64(R10), R13
	VMOVUPS      Z8, (DI)(R13*4)
	VBROADCASTSS 36(R11), Z16
	VBROADCASTSS 36(R12), Z17
	VFMADD213PS  Z17, Z16, Z9
	VMAXPS       Z31, Z9, Z9
	MOVQ         72(R10), R13
	VMOVUPS      Z9, (DI)(R13*4)
	VBROADCASTSS 40(R11), Z16
	VBROADCASTSS 40(R12), Z17
	VFMADD213PS  Z17, Z16, Z10
	VMAXPS       Z31, Z10, Z10
	MOVQ         80(R10), R13
	VMOVUPS      Z10, (DI)(R13*4)
	VBROADCASTSS 44(R11), Z16
	VBROADCASTSS 44(R12), Z17
	VFMADD213PS  Z17, Z16, Z11
	VMAXPS       Z31, Z11, Z11
	MOVQ         88(R10), R13
	VMOVUPS      Z11, (DI)(R13*4)
	VBROADCASTSS 48(R11), Z16
	VBROADCASTSS 48(R12), Z17
	VFMADD213PS  Z17, Z16, Z12
	VMAXPS       Z31, Z12, Z12
	MOVQ         96(R10), R13
	VMOVUPS      Z12, (DI)(R13*4)
	VBROADCASTSS 52(R11), Z16
	VBROADCASTSS 52(R12), Z17
	VFMADD213PS  Z17, Z16, Z13
	VMAXPS       Z31, Z13, Z13
	MOVQ         104(R10), R13
	VMOVUPS      Z13, (DI)(R13*4)
	VBROADCASTSS 56(R11), Z16
	VBROADCASTSS 56(R12), Z17
	VFMADD213PS  Z17, Z16, Z14
	VMAXPS       Z31, Z14, Z14
	MOVQ         112(R10), R13
	VMOVUPS      Z14, (DI)(R13*4)
	VBROADCASTSS 60(R11), Z16
	VBROADCASTSS 60(R12), Z17
	VFMADD213PS  Z17, Z16, Z15
	VMAXPS       Z31, Z15, Z15
	MOVQ         120(R10), R13
	VMOVUPS      Z15, (DI)(R13*4)
	VZEROUPPER
	RET
