#include "textflag.h"

// QUANTISE gathers one channel of sixteen pixels (index: their offsets)
// under the mask in K2 into z, transforms it with scale and shift, and
// rounds it into [0, Z22 = 255] as int32s.
#define QUANTISE(index, scale, shift, z) \
	KMOVW      K2, K1 \
	VPXORD     z, z, z \
	VGATHERDPS (SI)(index*4), K1, z \
	VMULPS     scale, z, z \
	VADDPS     shift, z, z \
	VMAXPS     Z21, z, z \
	VMINPS     Z22, z, z \
	VCVTPS2DQ  z, z

// REQUANT requantises the sixteen int32 sums at mem into z (see
// engine.Requant), with scale, shift, lo, hi and step in Z20-Z24.
#define REQUANT(mem, z) \
	VCVTDQ2PS   mem, z \
	VMULPS      Z20, z, z \
	VADDPS      Z21, z, z \
	VMAXPS      Z22, z, z \
	VMINPS      Z23, z, z \
	VRNDSCALEPS $0, z, z \
	VMULPS      Z24, z, z

// REQUANT_CONSTANTS broadcasts REQUANT's constants from the arguments.
#define REQUANT_CONSTANTS \
	VBROADCASTSS scale+24(FP), Z20 \
	VBROADCASTSS shift+28(FP), Z21 \
	VBROADCASTSS lo+32(FP), Z22 \
	VBROADCASTSS hi+36(FP), Z23 \
	VBROADCASTSS step+40(FP), Z24

// STAGED reads the staged channel idx[at/4] (BX: idx, R10: the stride in
// bytes) of sixteen pixels under the mask in K1 into z, transforms it
// with scale and shift (R8, R9) and rounds it into [0, Z22 = 255] as
// int32s.
#define STAGED(at, z) \
	MOVL         at(BX), AX \
	IMULQ        R10, AX \
	VMOVUPS.Z    (SI)(AX*1), K1, z \
	VMULPS.BCST  at(R8), z, z \
	VADDPS.BCST  at(R9), z, z \
	VMAXPS       Z21, z, z \
	VMINPS       Z22, z, z \
	VCVTPS2DQ    z, z

// func dotTileVNNI(acc *int32, in *uint8, steps *int, n int, w *int8)
//
// dotTileGo: two output channels at 64 consecutive positions, eight
// accumulators of sixteen. Step s reads the 64 positions' quads at
// in+steps[s] (four registers of sixteen quads) and
// the two channels' weight quads at w+8s, and VPDPBUSD sums each quad's
// four uint8·int8 products into its position's int32. n ≥ 1.
TEXT ·dotTileVNNI(SB), NOSPLIT, $0-40
	MOVQ acc+0(FP), DI
	MOVQ in+8(FP), SI
	MOVQ steps+16(FP), BX
	MOVQ n+24(FP), CX
	MOVQ w+32(FP), DX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7

step:
	MOVQ         (BX), AX
	VMOVDQU32    (SI)(AX*1), Z8
	VMOVDQU32    64(SI)(AX*1), Z9
	VMOVDQU32    128(SI)(AX*1), Z10
	VMOVDQU32    192(SI)(AX*1), Z11
	VPBROADCASTD (DX), Z12
	VPBROADCASTD 4(DX), Z13
	VPDPBUSD     Z12, Z8, Z0
	VPDPBUSD     Z12, Z9, Z1
	VPDPBUSD     Z12, Z10, Z2
	VPDPBUSD     Z12, Z11, Z3
	VPDPBUSD     Z13, Z8, Z4
	VPDPBUSD     Z13, Z9, Z5
	VPDPBUSD     Z13, Z10, Z6
	VPDPBUSD     Z13, Z11, Z7
	ADDQ         $8, BX
	ADDQ         $8, DX
	DECQ         CX
	JNZ          step

	VMOVDQU32 Z0, (DI)
	VMOVDQU32 Z1, 64(DI)
	VMOVDQU32 Z2, 128(DI)
	VMOVDQU32 Z3, 192(DI)
	VMOVDQU32 Z4, 256(DI)
	VMOVDQU32 Z5, 320(DI)
	VMOVDQU32 Z6, 384(DI)
	VMOVDQU32 Z7, 448(DI)
	VZEROUPPER
	RET

// func quantiseQuadsAVX512(dst *uint8, src *float32, lanes *int32, idx *int32, scale, shift *float32, n int)
//
// quantiseQuadsGo sixteen pixels at a time: lanes[p] is pixel p's offset
// in floats (p·ldIn) within a sixteen, which advances 16·lanes[1] floats
// a time. Each of the quad's channels is gathered, transformed (multiply,
// then add, as Go rounds it), clamped to [0, 255] and rounded to even;
// the four are packed into each pixel's dword. The last sixteen is
// masked, lanes past n neither read nor written. n ≥ 1.
TEXT ·quantiseQuadsAVX512(SB), NOSPLIT, $0-56
	MOVQ          dst+0(FP), DI
	MOVQ          src+8(FP), SI
	MOVQ          lanes+16(FP), AX
	MOVQ          idx+24(FP), BX
	MOVQ          scale+32(FP), R8
	MOVQ          shift+40(FP), R9
	MOVQ          n+48(FP), CX
	VMOVDQU32     (AX), Z20
	MOVL          4(AX), DX
	SHLQ          $6, DX         // 16 pixels × 4 bytes per float
	VPBROADCASTD  (BX), Z16
	VPADDD        Z20, Z16, Z16
	VPBROADCASTD  4(BX), Z17
	VPADDD        Z20, Z17, Z17
	VPBROADCASTD  8(BX), Z18
	VPADDD        Z20, Z18, Z18
	VPBROADCASTD  12(BX), Z19
	VPADDD        Z20, Z19, Z19
	VBROADCASTSS  (R8), Z24
	VBROADCASTSS  4(R8), Z25
	VBROADCASTSS  8(R8), Z26
	VBROADCASTSS  12(R8), Z27
	VBROADCASTSS  (R9), Z28
	VBROADCASTSS  4(R9), Z29
	VBROADCASTSS  8(R9), Z30
	VBROADCASTSS  12(R9), Z31
	VPXORD        Z21, Z21, Z21  // 0.0
	MOVL          $0x437f0000, AX // 255.0
	VPBROADCASTD  AX, Z22

sixteen:
	MOVQ  $0xffff, AX
	CMPQ  CX, $16
	JGE   full
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX

full:
	KMOVW AX, K2

	QUANTISE(Z16, Z24, Z28, Z0)
	QUANTISE(Z17, Z25, Z29, Z1)
	QUANTISE(Z18, Z26, Z30, Z2)
	QUANTISE(Z19, Z27, Z31, Z3)
	VPSLLD    $8, Z1, Z1
	VPSLLD    $16, Z2, Z2
	VPSLLD    $24, Z3, Z3
	VPORD     Z1, Z0, Z0
	VPORD     Z3, Z2, Z2
	VPORD     Z2, Z0, Z0
	VMOVDQU32 Z0, K2, (DI)
	ADDQ      DX, SI
	ADDQ      $64, DI
	SUBQ      $16, CX
	JG        sixteen
	VZEROUPPER
	RET

// func requantScatterAVX512(out *float32, offs *int32, acc *int32, scale, shift, lo, hi, step float32)
//
// requantScatterGo, sixteen positions at a time: a position whose offset
// is negative (a padding one) is masked off.
TEXT ·requantScatterAVX512(SB), NOSPLIT, $0-44
	MOVQ out+0(FP), DI
	MOVQ offs+8(FP), BX
	MOVQ acc+16(FP), SI
	REQUANT_CONSTANTS
	MOVQ $4, CX

scatter:
	VMOVDQU32   (BX), Z1
	VPMOVD2M    Z1, K1
	KNOTW       K1, K1
	REQUANT((SI), Z0)
	VSCATTERDPS Z0, K1, (DI)(Z1*4)
	ADDQ        $64, BX
	ADDQ        $64, SI
	DECQ        CX
	JNZ         scatter
	VZEROUPPER
	RET

// func requantStoreAVX512(out *float32, acc *int32, n int, scale, shift, lo, hi, step float32)
//
// requantStoreGo, sixteen positions at a time, the last under a mask.
// 1 ≤ n ≤ 64.
TEXT ·requantStoreAVX512(SB), NOSPLIT, $0-44
	MOVQ out+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ n+16(FP), CX
	REQUANT_CONSTANTS

store:
	MOVQ  $0xffff, AX
	CMPQ  CX, $16
	JGE   whole
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX

whole:
	KMOVW   AX, K1
	REQUANT((SI), Z0)
	VMOVUPS Z0, K1, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	SUBQ    $16, CX
	JG      store
	VZEROUPPER
	RET

// func quantiseStagedAVX512(dst *uint8, planeBytes int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, quads int, mask uint16)
//
// quantiseStagedGo: staged holds source channels as planes, strideBytes
// apart (a transposed input, or an input of planes); each quad's four
// are read sixteen pixels at a time, transformed (multiply, then add),
// clamped to [0, 255], rounded to even and packed into the pixels'
// dwords, stored under mask to its plane, planeBytes after the last.
// quads ≥ 1.
TEXT ·quantiseStagedAVX512(SB), NOSPLIT, $0-66
	MOVQ         dst+0(FP), DI
	MOVQ         planeBytes+8(FP), DX
	MOVQ         staged+16(FP), SI
	MOVQ         strideBytes+24(FP), R10
	MOVQ         idx+32(FP), BX
	MOVQ         scale+40(FP), R8
	MOVQ         shift+48(FP), R9
	MOVQ         quads+56(FP), CX
	KMOVW        mask+64(FP), K1
	VPXORD       Z21, Z21, Z21   // 0.0
	MOVL         $0x437f0000, AX // 255.0
	VPBROADCASTD AX, Z22

quad:
	STAGED(0, Z0)
	STAGED(4, Z1)
	STAGED(8, Z2)
	STAGED(12, Z3)
	VPSLLD    $8, Z1, Z1
	VPSLLD    $16, Z2, Z2
	VPSLLD    $24, Z3, Z3
	VPORD     Z1, Z0, Z0
	VPORD     Z3, Z2, Z2
	VPORD     Z2, Z0, Z0
	VMOVDQU32 Z0, K1, (DI)
	ADDQ      DX, DI
	ADDQ      $16, BX
	ADDQ      $16, R8
	ADDQ      $16, R9
	DECQ      CX
	JNZ       quad
	VZEROUPPER
	RET
