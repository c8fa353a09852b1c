#include "textflag.h"
#include "zero_amd64.h"

// POOL_ARGS (macros that name arguments go before every TEXT, for vet's
// sake) loads avgPool2Row512's and avgPool2RowBack512's arguments:
// DI the output (or its gradient), SI the first input pixel (or its
// gradient's), R8 the bytes between input pixels, R9 between input rows,
// R10 between output pixels, R11 the output pixels, R13 the bytes of a
// pixel's full vectors of channels and K1 the last few channels' mask;
// Z15 a quarter.
#define POOL_ARGS \
	MOVQ         ldIn+16(FP), R8 \
	SHLQ         $2, R8 \
	MOVQ         rowIn+24(FP), R9 \
	SHLQ         $2, R9 \
	MOVQ         ldOut+32(FP), R10 \
	SHLQ         $2, R10 \
	MOVQ         ow+40(FP), R11 \
	MOVQ         c+48(FP), R13 \
	MOVQ         R13, CX \
	ANDQ         $15, CX \
	MOVQ         $1, AX \
	SHLXQ        CX, AX, AX \
	DECQ         AX \
	KMOVW        AX, K1 \
	ANDQ         $-16, R13 \
	SHLQ         $2, R13 \
	MOVL         $0x3e800000, AX \
	VPBROADCASTD AX, Z15

// Register transposes between channels-last rows and planes, and pooling.

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
	ZERO4(Z8, Z9, Z10, Z11)
	ZERO4(Z12, Z13, Z14, Z15)
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

// func avgPoolPlanes512(dst, src *float32, w, rows int, evens *int32)
// avgPoolPlanesGo's work on rows output rows of w/2 (w even, ≥ 2): each
// from input rows 2y and 2y+1 (w floats each, one after another), 32
// input floats at a time: the even and odd floats of each row gathered
// by VPERMT2PS (evens holds 0, 2, ..., 30; odd is one more), summed in
// the definition's order and scaled by a quarter. rows ≥ 1.
TEXT ·avgPoolPlanes512(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         w+16(FP), R8
	MOVQ         rows+24(FP), R9
	MOVQ         evens+32(FP), AX
	VMOVDQU32    (AX), Z20
	MOVL         $1, AX
	VPBROADCASTD AX, Z21
	VPADDD       Z21, Z20, Z21 // the odds
	MOVL         $0x3e800000, AX // 0.25
	VPBROADCASTD AX, Z22

poolRow:
	MOVQ SI, R10          // row 2y
	LEAQ (SI)(R8*4), R11  // row 2y+1
	MOVQ DI, R12
	MOVQ R8, CX

poolChunk:
	// K1, K2: the chunk's input floats (up to 32), K3: its outputs.
	MOVQ  CX, DX
	CMPQ  DX, $32
	JLE   poolMask
	MOVQ  $32, DX

poolMask:
	MOVQ  $1, AX
	SHLXQ DX, AX, AX
	DECQ  AX
	KMOVW AX, K1
	SHRQ  $16, AX
	KMOVW AX, K2
	SHRQ  $1, DX
	MOVQ  $1, AX
	SHLXQ DX, AX, AX
	DECQ  AX
	KMOVW AX, K3
	VMOVUPS.Z   (R10), K1, Z0
	VMOVUPS.Z   64(R10), K2, Z1
	VMOVUPS.Z   (R11), K1, Z2
	VMOVUPS.Z   64(R11), K2, Z3
	VMOVAPS     Z0, Z4
	VPERMT2PS   Z1, Z20, Z4 // row 2y's evens
	VPERMT2PS   Z1, Z21, Z0 // its odds
	VMOVAPS     Z2, Z5
	VPERMT2PS   Z3, Z20, Z5 // row 2y+1's evens
	VPERMT2PS   Z3, Z21, Z2 // its odds
	VADDPS      Z0, Z4, Z4
	VADDPS      Z5, Z4, Z4
	VADDPS      Z2, Z4, Z4
	VMULPS      Z22, Z4, Z4
	VMOVUPS     Z4, K3, (R12)
	ADDQ        $128, R10
	ADDQ        $128, R11
	ADDQ        $64, R12
	SUBQ        $32, CX
	JG          poolChunk
	LEAQ        (SI)(R8*8), SI // two input rows on
	MOVQ        R8, AX
	SHLQ        $1, AX // w/2 outputs, 4 bytes each
	ADDQ        AX, DI
	DECQ        R9
	JNZ         poolRow
	VZEROUPPER
	RET

// func prefetchLines(p *float32, offset, stride int, write bool)
//
// Asks for the 16 cache lines at p + offset + i·stride (floats), i < 16,
// ahead of a transpose that will read (or, with write, write) them: a
// strided block's lines each lie on a page of their own, where the
// hardware's prefetchers stop. Prefetches never fault, so the lines may
// lie past the end of p's slice.
TEXT ·prefetchLines(SB), NOSPLIT, $0-25
	MOVQ    p+0(FP), DI
	MOVQ    offset+8(FP), AX
	LEAQ    (DI)(AX*4), DI
	MOVQ    stride+16(FP), DX
	SHLQ    $2, DX
	MOVQ    $16, CX
	MOVBQZX write+24(FP), AX
	TESTQ   AX, AX
	JEQ     read

write:
	BYTE $0x0F; BYTE $0x0D; BYTE $0x0F // PREFETCHW (DI), which this assembler lacks
	ADDQ DX, DI
	DECQ CX
	JNZ  write
	RET

read:
	PREFETCHT0 (DI)
	ADDQ       DX, DI
	DECQ       CX
	JNZ        read
	RET

// POOL_WINDOW points DX, BX and R14 at the window's other three pixels
// (SI the first) and AX at its first channel.
#define POOL_WINDOW \
	LEAQ (SI)(R8*1), DX \
	LEAQ (SI)(R9*1), BX \
	LEAQ (BX)(R8*1), R14 \
	XORQ AX, AX

// func avgPool2Row512(y, x *float32, ldIn, rowIn, ldOut, ow, c int)
//
// avgPool2RowGo: for each of ow output pixels (ldOut floats apart), its c
// channels are a quarter of ((a + b) + c) + d over the 2×2 window of input
// pixels (ldIn floats apart in a row, input rows rowIn apart), in the
// definition's order; full vectors loaded whole, the last few channels
// under K1.
TEXT ·avgPool2Row512(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	POOL_ARGS

avgPoolPixel:
	POOL_WINDOW

avgPoolVector:
	CMPQ    AX, R13
	JGE     avgPoolTail
	VMOVUPS (SI)(AX*1), Z0
	VADDPS  (DX)(AX*1), Z0, Z0
	VADDPS  (BX)(AX*1), Z0, Z0
	VADDPS  (R14)(AX*1), Z0, Z0
	VMULPS  Z15, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	JMP     avgPoolVector

avgPoolTail:
	KORTESTW  K1, K1
	JZ        avgPoolNext
	VMOVUPS.Z (SI)(AX*1), K1, Z0
	VMOVUPS.Z (DX)(AX*1), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMOVUPS.Z (BX)(AX*1), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMOVUPS.Z (R14)(AX*1), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMULPS    Z15, Z0, Z0
	VMOVUPS   Z0, K1, (DI)(AX*1)

avgPoolNext:
	LEAQ (SI)(R8*2), SI
	ADDQ R10, DI
	DECQ R11
	JNZ  avgPoolPixel
	VZEROUPPER
	RET

// func avgPool2RowBack512(dx, grad *float32, ldIn, rowIn, ldOut, ow, c int)
//
// avgPool2RowBackGo: a quarter of each output pixel's gradient (ldOut
// floats apart) added to each of its window's four input pixels' dx,
// laid out as avgPool2Row512's.
#define SPREAD(p) \
	VADDPS  (p)(AX*1), Z0, Z1 \
	VMOVUPS Z1, (p)(AX*1)

#define SPREAD_TAIL(p) \
	VMOVUPS.Z (p)(AX*1), K1, Z1 \
	VADDPS    Z0, Z1, Z1 \
	VMOVUPS   Z1, K1, (p)(AX*1)

TEXT ·avgPool2RowBack512(SB), NOSPLIT, $0-56
	MOVQ grad+8(FP), DI
	MOVQ dx+0(FP), SI
	POOL_ARGS

spreadPixel:
	POOL_WINDOW

spreadVector:
	CMPQ    AX, R13
	JGE     spreadTail
	VMULPS  (DI)(AX*1), Z15, Z0
	SPREAD(SI)
	SPREAD(DX)
	SPREAD(BX)
	SPREAD(R14)
	ADDQ    $64, AX
	JMP     spreadVector

spreadTail:
	KORTESTW  K1, K1
	JZ        spreadNext
	VMOVUPS.Z (DI)(AX*1), K1, Z0
	VMULPS    Z15, Z0, Z0
	SPREAD_TAIL(SI)
	SPREAD_TAIL(DX)
	SPREAD_TAIL(BX)
	SPREAD_TAIL(R14)

spreadNext:
	LEAQ (SI)(R8*2), SI
	ADDQ R10, DI
	DECQ R11
	JNZ  spreadPixel
	VZEROUPPER
	RET
