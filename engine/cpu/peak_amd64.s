#include "textflag.h"
#include "zero_amd64.h"

// The peak-rate loops (see peak.go).

// LOOP512(op, loop) runs CX rounds of op(Z12, Z13, accumulator) on twelve
// independent 512-bit accumulators.
#define LOOP512(op, loop) \
	ZERO4(Z0, Z1, Z2, Z3) \
	ZERO4(Z4, Z5, Z6, Z7) \
	ZERO4(Z8, Z9, Z10, Z11) \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
loop: \
	op(Z12, Z13, Z0) \
	op(Z12, Z13, Z1) \
	op(Z12, Z13, Z2) \
	op(Z12, Z13, Z3) \
	op(Z12, Z13, Z4) \
	op(Z12, Z13, Z5) \
	op(Z12, Z13, Z6) \
	op(Z12, Z13, Z7) \
	op(Z12, Z13, Z8) \
	op(Z12, Z13, Z9) \
	op(Z12, Z13, Z10) \
	op(Z12, Z13, Z11) \
	DECQ CX \
	JNE  loop

#define FMA512(a, b, acc) VFMADD231PS a, b, acc
#define DPBUSD(a, b, acc) VPDPBUSD a, b, acc

// DPBUSD_BW is DPBUSD's 64 multiply-adds as the int8 kernels do them
// without VNNI (see DOT4_BW in int8_amd64.s), its two products' words
// summed into int32s by VPMADDWD by Z14 (ones).
#define DPBUSD_BW(a, b, acc) \
	VPMADDUBSW a, b, Z15 \
	VPMADDWD   Z14, Z15, Z15 \
	VPADDD     Z15, acc, acc \
	VPMADDUBSW a, b, Z16 \
	VPMADDWD   Z14, Z16, Z16 \
	VPADDD     Z16, acc, acc

// func fmaLoop512(n int)
// n rounds of 12 independent 512-bit FMAs on registers only: the core's
// peak floating-point rate, for PeakGFLOPs.
TEXT ·fmaLoop512(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	LOOP512(FMA512, fma512)
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

// func dotLoop512(n int)
// n rounds of 12 independent 512-bit VPDPBUSDs on registers only (64
// uint8·int8 multiply-adds each): the core's peak int8 rate, for
// PeakInt8GOPs.
TEXT ·dotLoop512(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	LOOP512(DPBUSD, dot512)
	VZEROUPPER
	RET

// func dotLoopBW(n int)
// dotLoop512's rounds with AVX-512BW's products in place of VPDPBUSD: the
// core's peak int8 rate without VNNI.
TEXT ·dotLoopBW(SB), NOSPLIT, $0-8
	MOVQ         n+0(FP), CX
	MOVL         $0x00010001, AX
	VPBROADCASTD AX, Z14
	LOOP512(DPBUSD_BW, dotBW)
	VZEROUPPER
	RET
