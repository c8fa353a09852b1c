#include "textflag.h"
#include "zero_amd64.h"

// Direct convolution kernels: the 3×3 pair kernels, the four-group
// 1×1 kernels and the pointwise one into planes (see conv_direct.go,
// conv.go and conv_planes.go).

// PP_NEXT steps to the next input channel.
#define PP_NEXT(wbytes) \
	ADDQ $4, BX \
	ADDQ $4, R8 \
	ADDQ $4, R9 \
	ADDQ $wbytes, DX \
	DECQ CX

// PP_FMA adds channel k's weight (at 4k(DX)) times the two input
// vectors to its two accumulators.
#define PP_FMA(k, lo, hi) \
	VBROADCASTSS k*4(DX), Z27 \
	VFMADD231PS  Z27, Z30, lo \
	VFMADD231PS  Z27, Z28, hi

// PP_FMA8 adds the eight channels' weights (at DX) times the two input
// vectors (Z30, Z28) to their accumulators, channel i's in Zi and Zi+8.
#define PP_FMA8 \
	PP_FMA(0, Z0, Z8) \
	PP_FMA(1, Z1, Z9) \
	PP_FMA(2, Z2, Z10) \
	PP_FMA(3, Z3, Z11) \
	PP_FMA(4, Z4, Z12) \
	PP_FMA(5, Z5, Z13) \
	PP_FMA(6, Z6, Z14) \
	PP_FMA(7, Z7, Z15)

// PP_FMA4 is PP_FMA8 for the first four channels.
#define PP_FMA4 \
	PP_FMA(0, Z0, Z8) \
	PP_FMA(1, Z1, Z9) \
	PP_FMA(2, Z2, Z10) \
	PP_FMA(3, Z3, Z11)

// PP_STORE stores an output channel's 32 pixels under K1 and K2 and
// steps to the next.
#define PP_STORE(lo, hi) \
	VMOVUPS lo, K1, (DI) \
	VMOVUPS hi, K2, 64(DI) \
	ADDQ    R10, DI

// PP_STORE8 stores the eight channels' accumulators, R10 bytes apart.
#define PP_STORE8 \
	PP_STORE(Z0, Z8) \
	PP_STORE(Z1, Z9) \
	PP_STORE(Z2, Z10) \
	PP_STORE(Z3, Z11) \
	PP_STORE(Z4, Z12) \
	PP_STORE(Z5, Z13) \
	PP_STORE(Z6, Z14) \
	PP_STORE(Z7, Z15)

// PP_STORE4 is PP_STORE8 for four channels.
#define PP_STORE4 \
	PP_STORE(Z0, Z8) \
	PP_STORE(Z1, Z9) \
	PP_STORE(Z2, Z10) \
	PP_STORE(Z3, Z11)

// PP_MASKS splits the 32-bit mask at off(FP) into K1 (its low 16 pixels)
// and K2.
#define PP_MASKS(off) \
	MOVL  off(FP), AX \
	KMOVW AX, K1 \
	SHRL  $16, AX \
	KMOVW AX, K2

// PP_ARGS loads the pointwise kernels' arguments (pointwisePlanes8x32's):
// out (DI), ld in bytes (R10), staged (SI), strideBytes (R11), idx (BX),
// scale and shift (R8, R9), cg (CX), w (DX), the floor (Z31) and the
// masks (K1, K2).
#define PP_ARGS \
	MOVQ         out+0(FP), DI \
	MOVQ         ld+8(FP), R10 \
	SHLQ         $2, R10 \
	MOVQ         staged+16(FP), SI \
	MOVQ         strideBytes+24(FP), R11 \
	MOVQ         idx+32(FP), BX \
	MOVQ         scale+40(FP), R8 \
	MOVQ         shift+48(FP), R9 \
	MOVQ         cg+56(FP), CX \
	MOVQ         w+64(FP), DX \
	VBROADCASTSS floor+72(FP), Z31 \
	PP_MASKS(mask+76)

// PP_TRANSFORM reads the input channel idx (BX) of 32 pixels (SI plus
// idx·R11 bytes, under K1 and K2) into Z30 and Z28, prefetching the next
// 32, and transforms them: max(x·scale + shift, floor), scale and shift
// at R8 and R9, the floor in Z31.
#define PP_TRANSFORM \
	MOVL             (BX), AX \
	IMULQ            R11, AX \
	PREFETCHT0       128(SI)(AX*1) \
	PREFETCHT0       192(SI)(AX*1) \
	VMOVUPS.Z        (SI)(AX*1), K1, Z30 \
	VMOVUPS.Z        64(SI)(AX*1), K2, Z28 \
	VBROADCASTSS     (R8), Z29 \
	VFMADD213PS.BCST (R9), Z29, Z30 \
	VFMADD213PS.BCST (R9), Z29, Z28 \
	VMAXPS           Z31, Z30, Z30 \
	VMAXPS           Z31, Z28, Z28

// DIRECT_ARGS loads the direct 3×3 kernels' arguments: acc (DI), plane
// (R8), wk (SI), cg (CX), and the plane and row strides in bytes (DX,
// BX).
#define DIRECT_ARGS \
	MOVQ acc+0(FP), DI \
	MOVQ plane+8(FP), R8 \
	MOVQ wk+16(FP), SI \
	MOVQ cg+24(FP), CX \
	MOVQ planeStride+32(FP), DX \
	SHLQ $2, DX \
	MOVQ rowStride+40(FP), BX \
	SHLQ $2, BX

// ACC_STORE4 stores an output channel's four accumulators, 64
// positions, at off(DI).
#define ACC_STORE4(a, b, c, d, off) \
	VMOVUPS a, off(DI) \
	VMOVUPS b, off+64(DI) \
	VMOVUPS c, off+128(DI) \
	VMOVUPS d, off+192(DI)

// NINE_TAPS runs tap over an input channel's nine taps (rows at R8, R9,
// R10), then steps to the next channel (its plane and its wbytes of
// weights) and counts it off CX.
#define NINE_TAPS(tap, wbytes) \
	LEAQ (R8)(BX*1), R9 \
	LEAQ (R9)(BX*1), R10 \
	tap(R8, 0, 0) \
	tap(R8, 1, 1) \
	tap(R8, 2, 2) \
	tap(R9, 0, 3) \
	tap(R9, 1, 4) \
	tap(R9, 2, 5) \
	tap(R10, 0, 6) \
	tap(R10, 1, 7) \
	tap(R10, 2, 8) \
	ADDQ DX, R8 \
	ADDQ $wbytes, SI \
	DECQ CX

// func conv3x3Pair512(acc, plane, wk *float32, cg, planeStride, rowStride int)
//
// Two output channels of a 3×3 convolution over 64 consecutive positions q
// of zero-padded planes (see conv_direct.go): for j < 2, lane q,
//   acc[j·64 + q] = Σ_{ci<cg} Σ_{r,s<3} plane[ci·planeStride + q + r·rowStride + s] · wk[(ci·9 + r·3 + s)·2 + j]
// Z0..Z3 and Z4..Z7 accumulate the two channels (four vectors of 16
// positions each), Z13/Z14 hold a tap's two weights. R8, R9, R10 point at
// rows 0, 1, 2 of the taps.
//
// With two channels an input vector feeds only two multiply-adds, and
// loading each tap's four (three of the row's taps at unaligned offsets)
// held the kernel to two thirds of the peak. So a row's vectors are
// loaded once, Z8..Z11 and the first two floats of the fifth (Z12, under
// K1), and its taps 1 and 2 shifted out of them (VALIGND, into
// Z15..Z18): the same products in the same order.
//
// PAIR_FMA(t, a, b, c, d) adds tap t's weights times the input vectors
// a..d.
#define PAIR_FMA(t, a, b, c, d) \
	VBROADCASTSS (t*8)(SI), Z13 \
	VBROADCASTSS (t*8+4)(SI), Z14 \
	VFMADD231PS  a, Z13, Z0 \
	VFMADD231PS  b, Z13, Z1 \
	VFMADD231PS  c, Z13, Z2 \
	VFMADD231PS  d, Z13, Z3 \
	VFMADD231PS  a, Z14, Z4 \
	VFMADD231PS  b, Z14, Z5 \
	VFMADD231PS  c, Z14, Z6 \
	VFMADD231PS  d, Z14, Z7

// PAIR_SHIFT(n) shifts the row's vectors n floats on into Z15..Z18.
#define PAIR_SHIFT(n) \
	VALIGND $n, Z8, Z9, Z15 \
	VALIGND $n, Z9, Z10, Z16 \
	VALIGND $n, Z10, Z11, Z17 \
	VALIGND $n, Z11, Z12, Z18

// PAIR_ROW(row, t0, t1, t2) adds a row's three taps, t0..t2.
#define PAIR_ROW(row, t0, t1, t2) \
	VMOVUPS   (row), Z8 \
	VMOVUPS   64(row), Z9 \
	VMOVUPS   128(row), Z10 \
	VMOVUPS   192(row), Z11 \
	VMOVUPS.Z 256(row), K1, Z12 \
	PAIR_FMA(t0, Z8, Z9, Z10, Z11) \
	PAIR_SHIFT(1) \
	PAIR_FMA(t1, Z15, Z16, Z17, Z18) \
	PAIR_SHIFT(2) \
	PAIR_FMA(t2, Z15, Z16, Z17, Z18)

TEXT ·conv3x3Pair512(SB), NOSPLIT, $0-48
	DIRECT_ARGS
	ZERO4(Z0, Z1, Z2, Z3)
	ZERO4(Z4, Z5, Z6, Z7)
	MOVL  $3, AX
	KMOVW AX, K1

pairLoop:
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	PAIR_ROW(R8, 0, 1, 2)
	PAIR_ROW(R9, 3, 4, 5)
	PAIR_ROW(R10, 6, 7, 8)
	ADDQ DX, R8
	ADDQ $72, SI
	DECQ CX
	JNE  pairLoop
	ACC_STORE4(Z0, Z1, Z2, Z3, 0)
	ACC_STORE4(Z4, Z5, Z6, Z7, 256)
	VZEROUPPER
	RET

// func conv3x3Quad512(acc, plane, wk *float32, cg, planeStride, rowStride int)
//
// conv3x3Pair512 for four output channels: for j < 4, lane q,
//   acc[j·64 + q] = Σ_{ci<cg} Σ_{r,s<3} plane[ci·planeStride + q + r·rowStride + s] · wk[(ci·9 + r·3 + s)·4 + j]
// summed in the same order. Z0..Z15 accumulate (channel j in Z4j..Z4j+3),
// Z16..Z19 hold a tap's input vectors, Z20..Z23 its four weights: each
// input load feeds four multiply-adds, where the pair's fed two.
#define QTAP(row, s, t) \
	VMOVUPS      (s*4)(row), Z16 \
	VMOVUPS      (s*4+64)(row), Z17 \
	VMOVUPS      (s*4+128)(row), Z18 \
	VMOVUPS      (s*4+192)(row), Z19 \
	VBROADCASTSS (t*16)(SI), Z20 \
	VBROADCASTSS (t*16+4)(SI), Z21 \
	VBROADCASTSS (t*16+8)(SI), Z22 \
	VBROADCASTSS (t*16+12)(SI), Z23 \
	VFMADD231PS  Z16, Z20, Z0 \
	VFMADD231PS  Z17, Z20, Z1 \
	VFMADD231PS  Z18, Z20, Z2 \
	VFMADD231PS  Z19, Z20, Z3 \
	VFMADD231PS  Z16, Z21, Z4 \
	VFMADD231PS  Z17, Z21, Z5 \
	VFMADD231PS  Z18, Z21, Z6 \
	VFMADD231PS  Z19, Z21, Z7 \
	VFMADD231PS  Z16, Z22, Z8 \
	VFMADD231PS  Z17, Z22, Z9 \
	VFMADD231PS  Z18, Z22, Z10 \
	VFMADD231PS  Z19, Z22, Z11 \
	VFMADD231PS  Z16, Z23, Z12 \
	VFMADD231PS  Z17, Z23, Z13 \
	VFMADD231PS  Z18, Z23, Z14 \
	VFMADD231PS  Z19, Z23, Z15

TEXT ·conv3x3Quad512(SB), NOSPLIT, $0-48
	DIRECT_ARGS
	ZERO16

quadLoop:
	NINE_TAPS(QTAP, 144)
	JNE quadLoop
	ACC_STORE4(Z0, Z1, Z2, Z3, 0)
	ACC_STORE4(Z4, Z5, Z6, Z7, 256)
	ACC_STORE4(Z8, Z9, Z10, Z11, 512)
	ACC_STORE4(Z12, Z13, Z14, Z15, 768)
	VZEROUPPER
	RET

// func conv3x3QuadVec512(acc, plane, wk *float32, cg, planeStride, rowStride int)
// func conv3x3PairVec512(acc, plane, wk *float32, cg, planeStride, rowStride int)
//
// conv3x3Quad512 and conv3x3Pair512 over one vector of 16 positions, for
// the last vectors of a plane that end short of a whole block: the same
// sums in the same order, channel j's at acc[j·64 + q], q < 16. Z0..Z3
// accumulate, Z16 holds a tap's input vector; the weights are broadcast
// from memory.
#define QTAP1(row, s, t) \
	VMOVUPS          (s*4)(row), Z16 \
	VFMADD231PS.BCST (t*16)(SI), Z16, Z0 \
	VFMADD231PS.BCST (t*16+4)(SI), Z16, Z1 \
	VFMADD231PS.BCST (t*16+8)(SI), Z16, Z2 \
	VFMADD231PS.BCST (t*16+12)(SI), Z16, Z3

#define PTAP1(row, s, t) \
	VMOVUPS          (s*4)(row), Z16 \
	VFMADD231PS.BCST (t*8)(SI), Z16, Z0 \
	VFMADD231PS.BCST (t*8+4)(SI), Z16, Z1

TEXT ·conv3x3QuadVec512(SB), NOSPLIT, $0-48
	DIRECT_ARGS
	ZERO4(Z0, Z1, Z2, Z3)

quadVecLoop:
	NINE_TAPS(QTAP1, 144)
	JNE quadVecLoop
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 256(DI)
	VMOVUPS Z2, 512(DI)
	VMOVUPS Z3, 768(DI)
	VZEROUPPER
	RET

TEXT ·conv3x3PairVec512(SB), NOSPLIT, $0-48
	DIRECT_ARGS
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1

pairVecLoop:
	NINE_TAPS(PTAP1, 72)
	JNE pairVecLoop
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 256(DI)
	VZEROUPPER
	RET

// func conv3x3GradPair512(acc, dout0, dout1, in *float32, nvec, rowStride, images, doutStride, inStride int)
//
// The weight gradient of conv3x3Pair512 for two output channels and one
// input channel, over nvec vectors of 16 positions q of each of images
// images (planes doutStride and inStride floats on from one image to the
// next): for tap t = 3r + s,
//   acc[t·16 + lane]     += Σ_q dout0[q] · in[q + r·rowStride + s]
//   acc[(9+t)·16 + lane] += Σ_q dout1[q] · in[q + r·rowStride + s]
// summed lane by lane, image by image (the caller adds the 16 lanes). The
// sums stay in registers across the images: the last block's planes have
// five vectors an image. Z0..Z17 accumulate, Z18/Z19 hold the two output
// gradients, Z20 an input vector. Each step asks for the lines 16 vectors
// on of the three streams (the input's farthest row leads the other two):
// the planes come from memory, and the kernel ran at a quarter of its
// in-cache speed on them (30% less time with the prefetches).
#define GRADTAP(row, s, a0, a1) \
	VMOVUPS     (s*4)(row), Z20 \
	VFMADD231PS Z18, Z20, a0 \
	VFMADD231PS Z19, Z20, a1

TEXT ·conv3x3GradPair512(SB), NOSPLIT, $0-72
	MOVQ acc+0(FP), DI
	MOVQ dout0+8(FP), R11
	MOVQ dout1+16(FP), R12
	MOVQ in+24(FP), R13
	MOVQ rowStride+40(FP), BX
	SHLQ $2, BX
	MOVQ images+48(FP), SI
	MOVQ doutStride+56(FP), R14
	SHLQ $2, R14
	MOVQ inStride+64(FP), R15
	SHLQ $2, R15
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

gradImage:
	MOVQ R11, AX
	MOVQ R12, DX
	MOVQ R13, R8
	MOVQ nvec+32(FP), CX

gradLoop:
	PREFETCHT0 1024(AX)
	PREFETCHT0 1024(DX)
	VMOVUPS (AX), Z18
	VMOVUPS (DX), Z19
	LEAQ    (R8)(BX*1), R9
	LEAQ    (R9)(BX*1), R10
	PREFETCHT0 1024(R10)
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
	ADDQ R14, R11
	ADDQ R14, R12
	ADDQ R15, R13
	DECQ SI
	JNE  gradImage
	ACC_STORE4(Z0, Z1, Z2, Z3, 0)
	ACC_STORE4(Z4, Z5, Z6, Z7, 256)
	ACC_STORE4(Z8, Z9, Z10, Z11, 512)
	ACC_STORE4(Z12, Z13, Z14, Z15, 768)
	VMOVUPS Z16, 1024(DI)
	VMOVUPS Z17, 1088(DI)
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
	ZERO4(Z0, Z1, Z2, Z3)
	ZERO4(Z4, Z5, Z6, Z7)
	ZERO4(Z8, Z9, Z10, Z11)

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
	ZERO16
	ZERO4(Z16, Z17, Z18, Z19)
	ZERO4(Z20, Z21, Z22, Z23)

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

// func pointwisePlanes8x32(out *float32, ld int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, w *float32, floor float32, mask uint32)
//
// pointwisePlanesGo for 8 outputs of up to 32 pixels: sixteen
// accumulators, two input vectors per input channel (its 32 pixels,
// strideBytes apart from the next channel's, read under the mask's two
// halves), transformed once, each weight used for both. cg ≥ 1.
TEXT ·pointwisePlanes8x32(SB), NOSPLIT, $0-80
	PP_ARGS
	ZERO16

pp832:
	PP_TRANSFORM
	PP_FMA8
	PP_NEXT(32)
	JNZ pp832

	PP_STORE8
	VZEROUPPER
	RET

// func pointwisePlanes4x32(out *float32, ld int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, w *float32, floor float32, mask uint32)
//
// pointwisePlanes8x32 for the first 4 outputs of a block (a group of
// four, as in the ImageNet G=C=8 network's first block): eight
// accumulators; the weights are still eight a step.
TEXT ·pointwisePlanes4x32(SB), NOSPLIT, $0-80
	PP_ARGS
	ZERO4(Z0, Z1, Z2, Z3)
	ZERO4(Z8, Z9, Z10, Z11)

pp432:
	PP_TRANSFORM
	PP_FMA4
	PP_NEXT(32)
	JNZ pp432

	PP_STORE4
	VZEROUPPER
	RET

// func transformPlanes512(t *float32, src *float32, strideBytes int, idx *int32, scale, shift *float32, cg int, floor float32, mask uint32)
//
// pointwisePlanes8x32's transform alone, into t: for i < cg, lanes p of
// t[32i : 32i+32] are max(src[stride·idx[i] + p]·scale[i] + shift[i],
// floor), the multiply-add fused, under mask (lanes past it transform 0).
TEXT ·transformPlanes512(SB), NOSPLIT, $0-64
	MOVQ         t+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         strideBytes+16(FP), R11
	MOVQ         idx+24(FP), BX
	MOVQ         scale+32(FP), R8
	MOVQ         shift+40(FP), R9
	MOVQ         cg+48(FP), CX
	VBROADCASTSS floor+56(FP), Z31
	PP_MASKS(mask+60)

transform:
	PP_TRANSFORM
	VMOVUPS          Z30, (DI)
	VMOVUPS          Z28, 64(DI)
	ADDQ             $128, DI
	ADDQ             $4, BX
	ADDQ             $4, R8
	ADDQ             $4, R9
	DECQ             CX
	JNZ              transform
	VZEROUPPER
	RET

// func pointwiseTransformed8x32(out *float32, ld int, t *float32, cg int, w *float32, mask uint32)
//
// pointwisePlanes8x32 on inputs transformed already (transformPlanes512):
// the same sums, each input vector loaded from t, where the transform
// would be done again for every block of eight outputs.
TEXT ·pointwiseTransformed8x32(SB), NOSPLIT, $0-44
	MOVQ  out+0(FP), DI
	MOVQ  ld+8(FP), R10
	SHLQ  $2, R10
	MOVQ  t+16(FP), SI
	MOVQ  cg+24(FP), CX
	MOVQ  w+32(FP), DX
	PP_MASKS(mask+40)
	ZERO16

transformed:
	VMOVUPS (SI), Z30
	VMOVUPS 64(SI), Z28
	PP_FMA8
	ADDQ    $128, SI
	ADDQ    $32, DX
	DECQ    CX
	JNZ     transformed

	PP_STORE8
	VZEROUPPER
	RET

// func stem2Row512(out, in, w *float32, n, ldIn, ldOut int)
//
// A row of n outputs of a stride-2 3×3 convolution of RGB rows into 16
// channels (see stem2Forward): output x is Σ over image rows dy < 3 and
// the 9 floats f of that row's three pixels of
// in[dy·ldIn + 6x + f] · w[(9dy + f)·16 : +16], summed from zero in
// (dy, f) order, as the GEMM of its patches sums them. The 27 weight
// vectors stay in Z0..Z26; four outputs at a time (Z27..Z30) hide the
// latency of each one's chain of multiply-adds.
#define STEM4(off, row, wz) \
	VFMADD231PS.BCST off(row), wz, Z27 \
	VFMADD231PS.BCST off+24(row), wz, Z28 \
	VFMADD231PS.BCST off+48(row), wz, Z29 \
	VFMADD231PS.BCST off+72(row), wz, Z30

#define STEM1(off, row, wz) \
	VFMADD231PS.BCST off(row), wz, Z27

// STEMROW(m, row) runs m over the nine floats of one image row, whose
// weights start at wz.
#define STEMROW(m, row, w0, w1, w2, w3, w4, w5, w6, w7, w8) \
	m(0, row, w0) \
	m(4, row, w1) \
	m(8, row, w2) \
	m(12, row, w3) \
	m(16, row, w4) \
	m(20, row, w5) \
	m(24, row, w6) \
	m(28, row, w7) \
	m(32, row, w8)

#define STEMALL(m) \
	STEMROW(m, SI, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8) \
	STEMROW(m, R10, Z9, Z10, Z11, Z12, Z13, Z14, Z15, Z16, Z17) \
	STEMROW(m, R11, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26)

TEXT ·stem2Row512(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ in+8(FP), SI
	MOVQ w+16(FP), AX
	MOVQ n+24(FP), CX
	MOVQ ldIn+32(FP), R8
	SHLQ $2, R8
	MOVQ ldOut+40(FP), DX
	SHLQ $2, DX
	VMOVUPS 0(AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVUPS 128(AX), Z2
	VMOVUPS 192(AX), Z3
	VMOVUPS 256(AX), Z4
	VMOVUPS 320(AX), Z5
	VMOVUPS 384(AX), Z6
	VMOVUPS 448(AX), Z7
	VMOVUPS 512(AX), Z8
	VMOVUPS 576(AX), Z9
	VMOVUPS 640(AX), Z10
	VMOVUPS 704(AX), Z11
	VMOVUPS 768(AX), Z12
	VMOVUPS 832(AX), Z13
	VMOVUPS 896(AX), Z14
	VMOVUPS 960(AX), Z15
	VMOVUPS 1024(AX), Z16
	VMOVUPS 1088(AX), Z17
	VMOVUPS 1152(AX), Z18
	VMOVUPS 1216(AX), Z19
	VMOVUPS 1280(AX), Z20
	VMOVUPS 1344(AX), Z21
	VMOVUPS 1408(AX), Z22
	VMOVUPS 1472(AX), Z23
	VMOVUPS 1536(AX), Z24
	VMOVUPS 1600(AX), Z25
	VMOVUPS 1664(AX), Z26

stemQuad:
	CMPQ   CX, $4
	JLT    stemOne
	LEAQ   (SI)(R8*1), R10
	LEAQ   (R10)(R8*1), R11
	VXORPS Z27, Z27, Z27
	VXORPS Z28, Z28, Z28
	VXORPS Z29, Z29, Z29
	VXORPS Z30, Z30, Z30
	STEMALL(STEM4)
	VMOVUPS Z27, (DI)
	ADDQ    DX, DI
	VMOVUPS Z28, (DI)
	ADDQ    DX, DI
	VMOVUPS Z29, (DI)
	ADDQ    DX, DI
	VMOVUPS Z30, (DI)
	ADDQ    DX, DI
	ADDQ    $96, SI
	SUBQ    $4, CX
	JMP     stemQuad

stemOne:
	TESTQ  CX, CX
	JE     stemDone
	LEAQ   (SI)(R8*1), R10
	LEAQ   (R10)(R8*1), R11
	VXORPS Z27, Z27, Z27
	STEMALL(STEM1)
	VMOVUPS Z27, (DI)
	ADDQ    DX, DI
	ADDQ    $24, SI
	DECQ    CX
	JMP     stemOne

stemDone:
	VZEROUPPER
	RET
