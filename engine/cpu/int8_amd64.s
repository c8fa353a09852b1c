#include "textflag.h"
#include "zero_amd64.h"

// REQUANT requantises the sixteen int32 sums in src into z (see
// engine.Requant), with scale, shift, lo, hi and step in Z20-Z24.
#define REQUANT(src, z) \
	VCVTDQ2PS   src, z \
	VMULPS      Z20, z, z \
	VADDPS      Z21, z, z \
	VMAXPS      Z22, z, z \
	VMINPS      Z23, z, z \
	VRNDSCALEPS $0, z, z \
	VMULPS      Z24, z, z

// REQUANT4 requantises a channel's four registers of sums in place.
#define REQUANT4(z0, z1, z2, z3) \
	REQUANT(z0, z0) \
	REQUANT(z1, z1) \
	REQUANT(z2, z2) \
	REQUANT(z3, z3)

// STORE4 stores a channel's four registers at DI under K1-K4.
#define STORE4(z0, z1, z2, z3) \
	VMOVUPS z0, K1, (DI) \
	VMOVUPS z1, K2, 64(DI) \
	VMOVUPS z2, K3, 128(DI) \
	VMOVUPS z3, K4, 192(DI)

// REQUANT_CONSTANTS broadcasts a requant's five constants (scale,
// shift, lo, hi, step) from off(R8) into Z20-Z24.
#define REQUANT_CONSTANTS(off) \
	VBROADCASTSS off+0(R8), Z20 \
	VBROADCASTSS off+4(R8), Z21 \
	VBROADCASTSS off+8(R8), Z22 \
	VBROADCASTSS off+12(R8), Z23 \
	VBROADCASTSS off+16(R8), Z24

// DOT_ZERO clears the tile's eight accumulators, Z0-Z7.
#define DOT_ZERO \
	ZERO4(Z0, Z1, Z2, Z3) \
	ZERO4(Z4, Z5, Z6, Z7)

// TILE_LOAD loads the 64 positions' quads of the step at (BX), SI plus
// its byte offset, into z0-z3 (the offset stays in AX).
#define TILE_LOAD(z0, z1, z2, z3) \
	MOVQ (BX), AX \
	LOAD4(SI, z0, z1, z2, z3)

// LOAD4 loads the 64 positions' quads at base plus AX into z0-z3.
#define LOAD4(base, z0, z1, z2, z3) \
	VMOVDQU32 (base)(AX*1), z0 \
	VMOVDQU32 64(base)(AX*1), z1 \
	VMOVDQU32 128(base)(AX*1), z2 \
	VMOVDQU32 192(base)(AX*1), z3

// DOT_STEP is one step of the tile (see dotChannelGo): the 64 positions'
// quads at SI+(BX) in Z8-Z11, the two channels' weight quads at DX
// broadcast, and dot (DOT4 or DOT4_BW) summing each quad's four
// uint8·int8 products into its position's int32: channel 0 in Z0-Z3,
// channel 1 in Z4-Z7.
#define DOT_STEP(dot) \
	TILE_LOAD(Z8, Z9, Z10, Z11) \
	VPBROADCASTD (DX), Z12 \
	VPBROADCASTD 4(DX), Z13 \
	dot(Z12, Z8, Z9, Z10, Z11, Z0, Z1, Z2, Z3) \
	dot(Z13, Z8, Z9, Z10, Z11, Z4, Z5, Z6, Z7) \
	ADDQ         $8, BX \
	ADDQ         $8, DX

// QUAD_STEP is DOT_STEP for four channels: the 64 positions' quads at
// SI+(BX) in Z16-Z19, the channels' weight quads at DX broadcast into
// Z25-Z28, channel i's sums into Z(4i) to Z(4i+3).
#define QUAD_STEP(dot) \
	TILE_LOAD(Z16, Z17, Z18, Z19) \
	QUAD_WEIGHTS \
	dot(Z25, Z16, Z17, Z18, Z19, Z0, Z1, Z2, Z3) \
	dot(Z26, Z16, Z17, Z18, Z19, Z4, Z5, Z6, Z7) \
	dot(Z27, Z16, Z17, Z18, Z19, Z8, Z9, Z10, Z11) \
	dot(Z28, Z16, Z17, Z18, Z19, Z12, Z13, Z14, Z15) \
	ADDQ $8, BX \
	ADDQ $16, DX

// PAIRED_STEP is QUAD_STEP for a block of two groups' two channels each:
// channels 0 and 1 read the quads at SI+(BX), in Z16-Z19, and channels 2
// and 3 the second group's at DI+(BX), in Z20-Z23.
#define PAIRED_STEP(dot) \
	TILE_LOAD(Z16, Z17, Z18, Z19) \
	LOAD4(DI, Z20, Z21, Z22, Z23) \
	QUAD_WEIGHTS \
	dot(Z25, Z16, Z17, Z18, Z19, Z0, Z1, Z2, Z3) \
	dot(Z26, Z16, Z17, Z18, Z19, Z4, Z5, Z6, Z7) \
	dot(Z27, Z20, Z21, Z22, Z23, Z8, Z9, Z10, Z11) \
	dot(Z28, Z20, Z21, Z22, Z23, Z12, Z13, Z14, Z15) \
	ADDQ $8, BX \
	ADDQ $16, DX

// STEPS runs a kernel's CX ≥ 1 steps with step(DOT4) where vnni (a
// flag in memory) is set, else with step(DOT4_BW) after DOT_BW_SETUP.
// (Labels: the two loops, the second's set-up, and past both.)
#define STEPS(vnni, step, loop, bw, bwLoop, done) \
	CMPB vnni, $0 \
	JEQ  bw \
loop: \
	step(DOT4) \
	DECQ CX \
	JNZ  loop \
	JMP  done \
bw: \
	DOT_BW_SETUP \
bwLoop: \
	step(DOT4_BW) \
	DECQ CX \
	JNZ  bwLoop \
done:

// QUAD_WEIGHTS broadcasts the four channels' weight quads at DX into
// Z25-Z28.
#define QUAD_WEIGHTS \
	VPBROADCASTD (DX), Z25 \
	VPBROADCASTD 4(DX), Z26 \
	VPBROADCASTD 8(DX), Z27 \
	VPBROADCASTD 12(DX), Z28

// QUAD_STEP1 is QUAD_STEP for the first sixteen positions alone, with
// the step at off(BX) and its weights at 2·off(DX), into accumulators
// a0-a3 (channels 0-3).
#define QUAD_STEP1(off, a0, a1, a2, a3) \
	MOVQ         off(BX), AX \
	VMOVDQU32    (SI)(AX*1), Z16 \
	VPBROADCASTD 2*off(DX), Z25 \
	VPBROADCASTD 2*off+4(DX), Z26 \
	VPBROADCASTD 2*off+8(DX), Z27 \
	VPBROADCASTD 2*off+12(DX), Z28 \
	VPDPBUSD     Z25, Z16, a0 \
	VPDPBUSD     Z26, Z16, a1 \
	VPDPBUSD     Z27, Z16, a2 \
	VPDPBUSD     Z28, Z16, a3

// DOT_LOAD loads dotStore's and dotScatter's tile arguments.
#define DOT_LOAD \
	MOVQ in+24(FP), SI \
	MOVQ steps+32(FP), BX \
	MOVQ n+40(FP), CX \
	MOVQ w+48(FP), DX \
	MOVQ q+56(FP), R8 \
	MOVQ out+0(FP), DI \
	DOT_ZERO

// SCATTER scatters z under a copy of mask (the scatter clears its mask)
// to DI + 4·offsets.
#define SCATTER(z, mask, offsets) \
	KMOVW       mask, K5 \
	VSCATTERDPS z, K5, (DI)(offsets*4)

// STAGED transforms the sixteen floats in z with scale and shift
// (multiply, then add) and rounds them to int32s, clamped above at 255
// (Z22): the minimum's operands are in the order that keeps a NaN, which
// converts to the integer indefinite, a negative number, as below 0 does,
// and the packs after saturate both to 0.
#define STAGED(scale, shift, z) \
	VMULPS    scale, z, z \
	VADDPS    shift, z, z \
	VMINPS    z, Z22, z \
	VCVTPS2DQ z, z

// QUAD_VECTOR quantises a quad's sixteen pixels at off from its four
// channels' planes (R11-R14) under mask k, with their transforms in
// Z24-Z31, into z0-z3, packs them into the pixels' dwords and stores
// them at off(DI).
#define QUAD_VECTOR(off, k, z0, z1, z2, z3) \
	VMOVUPS.Z off(R11), k, z0 \
	VMOVUPS.Z off(R12), k, z1 \
	VMOVUPS.Z off(R13), k, z2 \
	VMOVUPS.Z off(R14), k, z3 \
	STAGED(Z24, Z28, z0) \
	STAGED(Z25, Z29, z1) \
	STAGED(Z26, Z30, z2) \
	STAGED(Z27, Z31, z3) \
	VPACKUSDW z1, z0, z0 \
	VPACKUSDW z3, z2, z2 \
	VPACKUSWB z2, z0, z0 \
	VPSHUFB   Z23, z0, z0 \
	VMOVDQU32 z0, k, off(DI)

// QUANTISE_ARGS loads the quantising kernels' first eight arguments.
#define QUANTISE_ARGS \
	MOVQ dst+0(FP), DI \
	MOVQ planeBytes+8(FP), DX \
	MOVQ staged+16(FP), SI \
	MOVQ strideBytes+24(FP), R10 \
	MOVQ idx+32(FP), BX \
	MOVQ scale+40(FP), R8 \
	MOVQ shift+48(FP), R9 \
	MOVQ quads+56(FP), CX

// QUAD_CHANNEL points r at the staged plane of the quad's channel at
// off(BX) and broadcasts its scale and shift into zs and zt.
#define QUAD_CHANNEL(off, r, zs, zt) \
	MOVL         off(BX), r \
	IMULQ        R10, r \
	ADDQ         SI, r \
	VBROADCASTSS off(R8), zs \
	VBROADCASTSS off(R9), zt

// STORE_RUNS stores z0-z3, a tile's four vectors: each run's vector
// (its first position 0, 16, 32 or 48) under the run's mask (R11 to R12),
// to R10 plus the run's offset. It leaves R8 to
// R13 and DX, SI, DI as they were. (Labels: run and the branches to the
// second, last two and last vectors' stores, and past the store.)
#define STORE_RUNS(z0, z1, z2, z3, run, second, upper, last, stored) \
	MOVQ     R11, BX \
run: \
	KMOVQ    8(BX), K1 \
	MOVQ     16(BX), AX \
	CMPQ     (BX), $16 \
	JEQ      second \
	JGT      upper \
	VMOVDQU8 z0, K1, (R10)(AX*1) \
	JMP      stored \
second: \
	VMOVDQU8 z1, K1, (R10)(AX*1) \
	JMP      stored \
upper: \
	CMPQ     (BX), $48 \
	JEQ      last \
	VMOVDQU8 z2, K1, (R10)(AX*1) \
	JMP      stored \
last: \
	VMOVDQU8 z3, K1, (R10)(AX*1) \
stored: \
	ADDQ     $24, BX \
	CMPQ     BX, R12 \
	JNE      run

// QUADS requantises a channel's sums in z0-z3 (its constants at R8) into
// integers in [0, 255] (Step 1: no rounding is left after the
// conversion's, and no multiplying) and stores its runs into the
// channel's plane at DI (R9: its quadDest): each integer's low byte,
// under the runs' masks of every fourth byte, at the quads plus the
// channel's byte lane, which puts it in that lane. Then it steps R8 and
// R9 to the next channel.
#define QUADS(z0, z1, z2, z3, run, second, upper, last, stored) \
	REQUANT_CONSTANTS(0) \
	QUANTISE4(z0, z1, z2, z3) \
	MOVQ      (R9), R10 \
	ADDQ      8(R9), R10 \
	ADDQ      DI, R10 \
	STORE_RUNS(z0, z1, z2, z3, run, second, upper, last, stored) \
	ADDQ      $20, R8 \
	ADDQ      $16, R9

// QUANTISE requantises the sixteen int32 sums in z in place into int32s
// within [lo, hi], for a requant of Step 1 (constants in Z20-Z23).
#define QUANTISE(z) \
	VCVTDQ2PS   z, z \
	VMULPS      Z20, z, z \
	VADDPS      Z21, z, z \
	VMAXPS      Z22, z, z \
	VMINPS      Z23, z, z \
	VCVTPS2DQ   z, z

#define QUANTISE4(z0, z1, z2, z3) \
	QUANTISE(z0) \
	QUANTISE(z1) \
	QUANTISE(z2) \
	QUANTISE(z3)

// FLOATS requantises a channel's sums in z0-z3 (constants at R8) and
// stores its runs into its plane at R10; then steps R8 to the next
// channel.
#define FLOATS(z0, z1, z2, z3, run, second, upper, last, stored) \
	REQUANT_CONSTANTS(0) \
	REQUANT4(z0, z1, z2, z3) \
	STORE_RUNS(z0, z1, z2, z3, run, second, upper, last, stored) \
	ADDQ $20, R8

// DOT4 sums the 64 positions' quads in x0-x3 times a channel's weight
// quad in w into its accumulators a0-a3.
#define DOT4(w, x0, x1, x2, x3, a0, a1, a2, a3) \
	VPDPBUSD w, x0, a0 \
	VPDPBUSD w, x1, a1 \
	VPDPBUSD w, x2, a2 \
	VPDPBUSD w, x3, a3

// DOT4_BW is DOT4 in AVX-512BW, for CPUs without VNNI, with the same
// sums: VPMADDUBSW adds pairs of products into int16s, which two 8-bit
// products can overflow, so each pair has one zeroed weight: w's even
// bytes (Z24's mask) take products 0 and 2 of a quad, its odd bytes 1
// and 3, and VPMADDWD by ones (Z29) adds each pair's two into an int32.
// It overwrites w with its odd bytes, and Z30 and Z31.
#define DOT4_BW(w, x0, x1, x2, x3, a0, a1, a2, a3) \
	VPANDD  Z24, w, Z30 \
	VPANDND w, Z24, w \
	PRODUCTS_BW(Z30, w, x0, a0) \
	PRODUCTS_BW(Z30, w, x1, a1) \
	PRODUCTS_BW(Z30, w, x2, a2) \
	PRODUCTS_BW(Z30, w, x3, a3)

// PRODUCTS_BW adds the quads in x times the even weights we and the odd
// wo into a (see DOT4_BW).
#define PRODUCTS_BW(we, wo, x, a) \
	VPMADDUBSW we, x, Z31 \
	VPMADDWD   Z29, Z31, Z31 \
	VPADDD     Z31, a, a \
	VPMADDUBSW wo, x, Z31 \
	VPMADDWD   Z29, Z31, Z31 \
	VPADDD     Z31, a, a

// DOT_BW_SETUP sets DOT4_BW's constants: Z24 the even bytes' mask, Z29
// sixteen-bit ones.
#define DOT_BW_SETUP \
	MOVL         $0x00ff00ff, AX \
	VPBROADCASTD AX, Z24 \
	MOVL         $0x00010001, AX \
	VPBROADCASTD AX, Z29

// QUAD_PACK_AVX2 transforms a quad's four channels of eight pixels in
// Y0-Y3 (scales in Y4-Y7, shifts in Y8-Y11, 255 in Y12) as STAGED does
// and packs them into the pixels' dwords in Y0 (Y13: quadOrder).
#define QUAD_PACK_AVX2 \
	STAGED_AVX2(Y4, Y8, Y0) \
	STAGED_AVX2(Y5, Y9, Y1) \
	STAGED_AVX2(Y6, Y10, Y2) \
	STAGED_AVX2(Y7, Y11, Y3) \
	VPACKUSDW Y1, Y0, Y0 \
	VPACKUSDW Y3, Y2, Y2 \
	VPACKUSWB Y2, Y0, Y0 \
	VPSHUFB   Y13, Y0, Y0

#define STAGED_AVX2(scale, shift, y) \
	VMULPS    scale, y, y \
	VADDPS    shift, y, y \
	VMINPS    y, Y12, y \
	VCVTPS2DQ y, y

// CHANNEL_VECTOR adds eight positions' quads at off(SI)(AX) times the
// even (Y11) and odd (Y10) weights into acc (see dotChannelAVX2).
#define CHANNEL_VECTOR(off, acc) \
	VMOVDQU    off(SI)(AX*1), Y12 \
	VPMADDUBSW Y11, Y12, Y13 \
	VPMADDWD   Y9, Y13, Y13 \
	VPADDD     Y13, acc, acc \
	VPMADDUBSW Y10, Y12, Y13 \
	VPMADDWD   Y9, Y13, Y13 \
	VPADDD     Y13, acc, acc

// func dotStoreAVX512(out *float32, ld int, masks uint64, in *uint8, steps *int, n int, w *int8, q *requant, channels int, vnni bool)
//
// dotStoreGo: the tile's n ≥ 1 steps (with VNNI, or AVX-512BW's
// products), then each channel's requantised outputs stored whole,
// sixteen positions under each sixteen bits of masks; channel 1's ld
// floats after channel 0's.
TEXT ·dotStoreAVX512(SB), NOSPLIT, $0-73
	DOT_LOAD
	STEPS(vnni+72(FP), DOT_STEP, storeStep, storeBW, storeStepBW, storeSums)
	MOVQ  masks+16(FP), AX
	KMOVW AX, K1
	SHRQ  $16, AX
	KMOVW AX, K2
	SHRQ  $16, AX
	KMOVW AX, K3
	SHRQ  $16, AX
	KMOVW AX, K4
	REQUANT_CONSTANTS(0)
	REQUANT4(Z0, Z1, Z2, Z3)
	STORE4(Z0, Z1, Z2, Z3)
	CMPQ    channels+64(FP), $2
	JLT     storeDone
	MOVQ    ld+8(FP), AX
	LEAQ    (DI)(AX*4), DI
	REQUANT_CONSTANTS(20)
	REQUANT4(Z4, Z5, Z6, Z7)
	STORE4(Z4, Z5, Z6, Z7)

storeDone:
	VZEROUPPER
	RET

// func dotScatterAVX512(out *float32, ld int, offs *int32, in *uint8, steps *int, n int, w *int8, q *requant, channels int, vnni bool)
//
// dotScatterGo: the tile's n ≥ 1 steps (with VNNI, or AVX-512BW's
// products), then each channel's requantised outputs scattered to out +
// offs[p] (masked off where negative); channel 1's ld floats after
// channel 0's.
TEXT ·dotScatterAVX512(SB), NOSPLIT, $0-73
	DOT_LOAD
	STEPS(vnni+72(FP), DOT_STEP, scatterStep, scatterBW, scatterStepBW, scatterSums)
	MOVQ      offs+16(FP), AX
	VMOVDQU32 (AX), Z16
	VMOVDQU32 64(AX), Z17
	VMOVDQU32 128(AX), Z18
	VMOVDQU32 192(AX), Z19
	VPMOVD2M  Z16, K1
	KNOTW     K1, K1
	VPMOVD2M  Z17, K2
	KNOTW     K2, K2
	VPMOVD2M  Z18, K3
	KNOTW     K3, K3
	VPMOVD2M  Z19, K4
	KNOTW     K4, K4
	REQUANT_CONSTANTS(0)
	REQUANT4(Z0, Z1, Z2, Z3)
	SCATTER(Z0, K1, Z16)
	SCATTER(Z1, K2, Z17)
	SCATTER(Z2, K3, Z18)
	SCATTER(Z3, K4, Z19)
	CMPQ channels+64(FP), $2
	JLT  scatterDone
	MOVQ ld+8(FP), AX
	LEAQ (DI)(AX*4), DI
	REQUANT_CONSTANTS(20)
	REQUANT4(Z4, Z5, Z6, Z7)
	SCATTER(Z4, K1, Z16)
	SCATTER(Z5, K2, Z17)
	SCATTER(Z6, K3, Z18)
	SCATTER(Z7, K4, Z19)

scatterDone:
	VZEROUPPER
	RET

// quadOrder reorders sixteen bytes held channel by channel (four pixels
// each) pixel by pixel: byte 4i + c is byte 4c + i.
DATA quadOrder<>+0(SB)/8, $0x0d0905010c080400
DATA quadOrder<>+8(SB)/8, $0x0f0b07030e0a0602
GLOBL quadOrder<>(SB), RODATA|NOPTR, $16

// func quantiseStagedAVX512(dst *uint8, planeBytes int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, quads, chunks int, mask uint64, vectors int)
//
// quantiseStagedGo: staged holds source channels as planes, strideBytes
// apart (a transposed input, or an input of planes); quad by quad (each
// planeBytes after the last in dst, quads ≥ 1), its four planes are read
// in a row, in chunks ≥ 0 of 64 pixels and then vectors (0 to 4) of
// sixteen under each sixteen bits of mask, transformed, rounded and packed
// into the pixels' dwords.
TEXT ·quantiseStagedAVX512(SB), NOSPLIT, $0-88
	QUANTISE_ARGS
	MOVQ            chunks+64(FP), AX
	SHLQ            $8, AX
	SUBQ            AX, DX // from past a quad's last chunk to the next quad
	MOVQ            mask+72(FP), AX
	KMOVW           AX, K1
	SHRQ            $16, AX
	KMOVW           AX, K2
	SHRQ            $16, AX
	KMOVW           AX, K3
	SHRQ            $16, AX
	KMOVW           AX, K4
	KXNORW          K5, K5, K5
	MOVL            $0x437f0000, AX // 255.0
	VPBROADCASTD    AX, Z22
	VBROADCASTI32X4 quadOrder<>(SB), Z23

quad:
	QUAD_CHANNEL(0, R11, Z24, Z28)
	QUAD_CHANNEL(4, R12, Z25, Z29)
	QUAD_CHANNEL(8, R13, Z26, Z30)
	QUAD_CHANNEL(12, R14, Z27, Z31)
	MOVQ chunks+64(FP), AX
	TESTQ AX, AX
	JZ   quadTail

	PCALIGN $64

quadChunk:
	QUAD_VECTOR(0, K5, Z0, Z1, Z2, Z3)
	QUAD_VECTOR(64, K5, Z4, Z5, Z6, Z7)
	QUAD_VECTOR(128, K5, Z8, Z9, Z10, Z11)
	QUAD_VECTOR(192, K5, Z12, Z13, Z14, Z15)
	ADDQ $256, R11
	ADDQ $256, R12
	ADDQ $256, R13
	ADDQ $256, R14
	ADDQ $256, DI
	DECQ AX
	JNZ  quadChunk

quadTail:
	MOVQ        vectors+80(FP), AX
	TESTQ       AX, AX
	JZ          quadNext
	QUAD_VECTOR(0, K1, Z0, Z1, Z2, Z3)
	CMPQ        AX, $1
	JEQ         quadNext
	QUAD_VECTOR(64, K2, Z4, Z5, Z6, Z7)
	CMPQ        AX, $2
	JEQ         quadNext
	QUAD_VECTOR(128, K3, Z8, Z9, Z10, Z11)
	CMPQ        AX, $3
	JEQ         quadNext
	QUAD_VECTOR(192, K4, Z12, Z13, Z14, Z15)

quadNext:
	ADDQ DX, DI
	ADDQ $16, BX
	ADDQ $16, R8
	ADDQ $16, R9
	DECQ CX
	JNZ  quad
	VZEROUPPER
	RET

// func dotQuadsAVX512(dst *uint8, runs *tileRun, nruns int, in *uint8, steps *int, n int, w *int8, q *requant, dest *quadDest, channels, groups, groupBytes int, vnni bool)
//
// dotQuadsGo: for each of groups ≥ 1 (its input groupBytes after the
// last's) and each block of four of its channels ≥ 1 (the last may have
// fewer), the tile's n ≥ 1 steps into sixteen accumulators, channel i's
// in Z(4i) to Z(4i+3), then each channel's requantised sums stored as
// bytes of the quads of its runs (nruns ≥ 1). The weights, requants and
// places follow one another across blocks and groups. The steps run with
// VNNI, or AVX-512BW's products.
TEXT ·dotQuadsAVX512(SB), NOSPLIT, $0-97
	MOVQ  dst+0(FP), DI
	MOVQ  runs+8(FP), R11
	MOVQ  nruns+16(FP), R12
	IMULQ $24, R12
	ADDQ  R11, R12
	MOVQ  in+24(FP), SI
	MOVQ  w+48(FP), DX
	MOVQ  q+56(FP), R8
	MOVQ  dest+64(FP), R9
	MOVQ  groups+80(FP), R14

quadsGroup:
	MOVQ channels+72(FP), R13

quadsBlock:
	MOVQ steps+32(FP), BX
	MOVQ n+40(FP), CX
	ZERO16
	STEPS(vnni+96(FP), QUAD_STEP, quadsStep, quadsBW, quadsStepBW, quadsSums)
	QUADS(Z0, Z1, Z2, Z3, quadsRun0, quadsRun0Second, quadsRun0Upper, quadsRun0Last, quadsRun0Stored)
	DECQ R13
	JZ   quadsGroupDone
	QUADS(Z4, Z5, Z6, Z7, quadsRun1, quadsRun1Second, quadsRun1Upper, quadsRun1Last, quadsRun1Stored)
	DECQ R13
	JZ   quadsGroupDone
	QUADS(Z8, Z9, Z10, Z11, quadsRun2, quadsRun2Second, quadsRun2Upper, quadsRun2Last, quadsRun2Stored)
	DECQ R13
	JZ   quadsGroupDone
	QUADS(Z12, Z13, Z14, Z15, quadsRun3, quadsRun3Second, quadsRun3Upper, quadsRun3Last, quadsRun3Stored)
	DECQ R13
	JNZ  quadsBlock

quadsGroupDone:
	ADDQ groupBytes+88(FP), SI
	DECQ R14
	JNZ  quadsGroup
	VZEROUPPER
	RET

// func dotRunsAVX512(out *float32, ldBytes int, runs *tileRun, nruns int, in *uint8, steps *int, n int, w *int8, q *requant, channels, vectors, groups, groupBytes, second int, vnni bool)
//
// dotRunsGo: for each of groups ≥ 1 (its input groupBytes after the
// last's) and each block of four of its channels ≥ 1 (the last may have
// fewer), the tile's n ≥ 1 steps, then each channel requantised and
// stored as floats under its runs (nruns ≥ 1), ldBytes after the last
// channel's; the weights and requants follow one another across blocks
// and groups. With vectors 1 (the runs are all in the first sixteen
// positions, as in a tile past an image's last row) only those are
// summed, two steps at a time into two accumulators each, so that the
// dot products' latency does not hold up the steps. With second > 0, a
// group is two of the convolution's, of two channels each, and its
// channels 2 and 3 read the input second bytes after 0 and 1 (PAIRED_STEP,
// over every position). The steps run with VNNI, or AVX-512BW's
// products (over every position too).
TEXT ·dotRunsAVX512(SB), NOSPLIT, $0-113
	MOVQ  out+0(FP), R10
	MOVQ  runs+16(FP), R11
	MOVQ  nruns+24(FP), R12
	IMULQ $24, R12
	ADDQ  R11, R12
	MOVQ  in+32(FP), SI
	MOVQ  w+56(FP), DX
	MOVQ  q+64(FP), R8
	MOVQ  groups+88(FP), R9

runsGroup:
	MOVQ channels+72(FP), R13

runsBlock:
	MOVQ  steps+40(FP), BX
	MOVQ  n+48(FP), CX
	ZERO16
	MOVQ  second+104(FP), DI
	TESTQ DI, DI
	JNZ   runsPaired
	CMPB  vnni+112(FP), $0
	JEQ   runsAll
	CMPQ  vectors+80(FP), $1
	JEQ   runsOne

runsAll:
	STEPS(vnni+112(FP), QUAD_STEP, runsStep, runsBW, runsStepBW, runsSteps)
	JMP   runsStore

runsPaired:
	ADDQ SI, DI
	STEPS(vnni+112(FP), PAIRED_STEP, runsPairedStep, runsPairedBW, runsPairedStepBW, runsPairedSteps)
	JMP  runsStore

runsOne:
	CMPQ       CX, $2
	JLT        runsOneLast
	QUAD_STEP1(0, Z0, Z4, Z8, Z12)
	QUAD_STEP1(8, Z1, Z5, Z9, Z13)
	ADDQ       $16, BX
	ADDQ       $32, DX
	SUBQ       $2, CX
	JMP        runsOne

runsOneLast:
	TESTQ      CX, CX
	JZ         runsOneSum
	QUAD_STEP1(0, Z0, Z4, Z8, Z12)
	ADDQ       $16, DX

runsOneSum:
	VPADDD Z1, Z0, Z0
	VPADDD Z5, Z4, Z4
	VPADDD Z9, Z8, Z8
	VPADDD Z13, Z12, Z12

runsStore:
	FLOATS(Z0, Z1, Z2, Z3, runsRun0, runsRun0Second, runsRun0Upper, runsRun0Last, runsRun0Stored)
	ADDQ ldBytes+8(FP), R10
	DECQ R13
	JZ   runsGroupDone
	FLOATS(Z4, Z5, Z6, Z7, runsRun1, runsRun1Second, runsRun1Upper, runsRun1Last, runsRun1Stored)
	ADDQ ldBytes+8(FP), R10
	DECQ R13
	JZ   runsGroupDone
	FLOATS(Z8, Z9, Z10, Z11, runsRun2, runsRun2Second, runsRun2Upper, runsRun2Last, runsRun2Stored)
	ADDQ ldBytes+8(FP), R10
	DECQ R13
	JZ   runsGroupDone
	FLOATS(Z12, Z13, Z14, Z15, runsRun3, runsRun3Second, runsRun3Upper, runsRun3Last, runsRun3Stored)
	ADDQ ldBytes+8(FP), R10
	DECQ R13
	JNZ  runsBlock

runsGroupDone:
	ADDQ groupBytes+96(FP), SI
	DECQ R9
	JNZ  runsGroup
	VZEROUPPER
	RET

// func dotChannelAVX2(acc *int32, in *uint8, steps *int, n int, w *int8, wStride int)
//
// dotChannelGo's sums with AVX2: acc[p] for the 64 positions p is the sum
// over the n ≥ 1 steps s (byte offsets at steps) of the quads at in +
// steps[s] + 4p times the weight quad at w + s·wStride, the products
// taken as DOT4_BW takes them, eight positions a vector.
TEXT ·dotChannelAVX2(SB), NOSPLIT, $0-48
	MOVQ         acc+0(FP), DI
	MOVQ         in+8(FP), SI
	MOVQ         steps+16(FP), BX
	MOVQ         n+24(FP), CX
	MOVQ         w+32(FP), DX
	MOVQ         wStride+40(FP), R8
	VPXOR        Y0, Y0, Y0
	VPXOR        Y1, Y1, Y1
	VPXOR        Y2, Y2, Y2
	VPXOR        Y3, Y3, Y3
	VPXOR        Y4, Y4, Y4
	VPXOR        Y5, Y5, Y5
	VPXOR        Y6, Y6, Y6
	VPXOR        Y7, Y7, Y7
	MOVL         $0x00ff00ff, AX
	VMOVD        AX, X8
	VPBROADCASTD X8, Y8
	MOVL         $0x00010001, AX
	VMOVD        AX, X9
	VPBROADCASTD X9, Y9

channelStep:
	MOVQ         (BX), AX
	VPBROADCASTD (DX), Y10
	VPAND        Y8, Y10, Y11 // the even weights
	VPANDN       Y10, Y8, Y10 // the odd
	CHANNEL_VECTOR(0, Y0)
	CHANNEL_VECTOR(32, Y1)
	CHANNEL_VECTOR(64, Y2)
	CHANNEL_VECTOR(96, Y3)
	CHANNEL_VECTOR(128, Y4)
	CHANNEL_VECTOR(160, Y5)
	CHANNEL_VECTOR(192, Y6)
	CHANNEL_VECTOR(224, Y7)
	ADDQ         $8, BX
	ADDQ         R8, DX
	DECQ         CX
	JNZ          channelStep

	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VMOVDQU Y4, 128(DI)
	VMOVDQU Y5, 160(DI)
	VMOVDQU Y6, 192(DI)
	VMOVDQU Y7, 224(DI)
	VZEROUPPER
	RET

// func quantiseStagedAVX2(dst *uint8, planeBytes int, staged *float32, strideBytes int, idx *int32, scale, shift *float32, quads, vectors int, mask *int32, tail int)
//
// quantiseStagedAVX512 in AVX2: quad by quad, its four planes read in
// vectors ≥ 0 of eight pixels, then, with tail > 0, one of tail pixels
// under mask (eight dwords), transformed, clamped above at 255 (keeping
// NaN: see STAGED), rounded and packed into the pixels' dwords.
TEXT ·quantiseStagedAVX2(SB), NOSPLIT, $0-88
	QUANTISE_ARGS
	MOVQ            vectors+64(FP), AX
	SHLQ            $5, AX
	SUBQ            AX, DX // from past a quad's last full vector to the next quad
	MOVQ            mask+72(FP), AX
	VMOVDQU         (AX), Y14
	MOVL            $0x437f0000, AX // 255.0
	VMOVD           AX, X12
	VPBROADCASTD    X12, Y12
	VBROADCASTI128  quadOrder<>(SB), Y13

quad2:
	QUAD_CHANNEL(0, R11, Y4, Y8)
	QUAD_CHANNEL(4, R12, Y5, Y9)
	QUAD_CHANNEL(8, R13, Y6, Y10)
	QUAD_CHANNEL(12, R14, Y7, Y11)
	MOVQ         vectors+64(FP), AX
	TESTQ        AX, AX
	JZ           quad2Tail

quad2Vector:
	VMOVUPS   (R11), Y0
	VMOVUPS   (R12), Y1
	VMOVUPS   (R13), Y2
	VMOVUPS   (R14), Y3
	QUAD_PACK_AVX2
	VMOVDQU   Y0, (DI)
	ADDQ      $32, R11
	ADDQ      $32, R12
	ADDQ      $32, R13
	ADDQ      $32, R14
	ADDQ      $32, DI
	DECQ      AX
	JNZ       quad2Vector

quad2Tail:
	CMPQ       tail+80(FP), $0
	JEQ        quad2Next
	VMASKMOVPS (R11), Y14, Y0
	VMASKMOVPS (R12), Y14, Y1
	VMASKMOVPS (R13), Y14, Y2
	VMASKMOVPS (R14), Y14, Y3
	QUAD_PACK_AVX2
	VPMASKMOVD Y0, Y14, (DI)

quad2Next:
	ADDQ DX, DI
	ADDQ $16, BX
	ADDQ $16, R8
	ADDQ $16, R9
	DECQ CX
	JNZ  quad2
	VZEROUPPER
	RET
