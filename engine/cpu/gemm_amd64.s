#include "textflag.h"
#include "zero_amd64.h"

// GEMM micro-kernels and packing (see gemm.go).

// packAffineA512's steps (macros that name arguments go before every
// TEXT, for vet's sake). The masks: K2 a strip's six lanes, K1 the
// tail's. LOADX(row, load) loads a row's strip into Z0: under the mask,
// or whole (WIDE), which is much faster where the row misses the cache
// (a masked load that misses waits for the line, measured 8 against 13
// GB/s), where sixteen floats can be read.
#define MASKED(row, load) VMOVUPS.Z (row), load, Z0
#define WIDE(row, load) VMOVUPS (row), Z0

#define PACK_ROW(row, off, load, LOADX, ZEROX, STOREX) \
	LOADX(row, load) \
	VFMADD213PS Z5, Z4, Z0 \
	VMAXPS      Z15, Z0, Z0 \
	ZEROX(load) \
	STOREX(off)

// STOREX(off) stores a row's six floats: under the mask, or as eight
// (STORE8), the two past them landing where the next row's six go,
// which must be stored after. Masked stores are slow on this CPU.
#define STORE6(off) VMOVUPS Z0, K2, off(R11)
#define STORE8(off) VMOVUPS Y0, off(R11)

// ZEROX(load) zeroes Z0's lanes past a tail strip's columns, which a
// whole strip's store (K2) writes as zero; a full strip has none.
#define KEEP(load)
#define ZEROPAST(load) VMOVAPS.Z Z0, load, Z0

#define PACK_COEFFICIENTS(load) \
	VMOVUPS.Z (R13), load, Z4 \
	VMOVUPS.Z (R14), load, Z5

// PACK_FOUR packs a strip of four rows, R12 pointing at the first, and
// asks for the lines eight rows on.
#define PACK_FOUR(load, LOADX, ZEROX, STOREX) \
	PACK_COEFFICIENTS(load) \
	LEAQ       (R12)(DX*1), R15 \
	LEAQ       (R12)(DX*2), AX \
	LEAQ       (R15)(DX*2), R9 \
	PREFETCHT0 (R12)(DX*8) \
	PREFETCHT0 (R15)(DX*8) \
	PREFETCHT0 (AX)(DX*8) \
	PREFETCHT0 (R9)(DX*8) \
	PACK_ROW(R12, 0, load, LOADX, ZEROX, STOREX) \
	PACK_ROW(R15, 24, load, LOADX, ZEROX, STOREX) \
	PACK_ROW(AX, 48, load, LOADX, ZEROX, STOREX) \
	PACK_ROW(R9, 72, load, LOADX, ZEROX, STOREX)

#define PACK_ONE(load, LOADX, ZEROX, STOREX) \
	PACK_COEFFICIENTS(load) \
	PACK_ROW(R12, 0, load, LOADX, ZEROX, STOREX)

// PACK_ROWS packs every strip of the rows at SI into DI (labels follow).
#define PACK_ROWS(PACK, LOADX, STOREX, strip, tail, next) \
	MOVQ     DI, R11 \
	MOVQ     SI, R12 \
	MOVQ     scale+56(FP), R13 \
	MOVQ     shift+64(FP), R14 \
	MOVQ     R8, BX \
	TESTQ    BX, BX \
	JE       tail \
strip: \
	PACK(K2, LOADX, KEEP, STOREX) \
	ADDQ     $24, R12 \
	ADDQ     $24, R13 \
	ADDQ     $24, R14 \
	ADDQ     R10, R11 \
	DECQ     BX \
	JNE      strip \
tail: \
	KORTESTW K1, K1 \
	JE       next \
	PACK(K1, LOADX, ZEROPAST, STOREX) \
next:

// PACK_AFFINE is packAffineA512's body.
#define PACK_AFFINE(LOADX) \
	MOVQ         dst+0(FP), DI \
	MOVQ         src+8(FP), SI \
	MOVQ         k+16(FP), CX \
	MOVQ         stride+24(FP), R10 \
	SHLQ         $2, R10 \
	MOVQ         lda+32(FP), DX \
	SHLQ         $2, DX \
	MOVQ         strips+40(FP), R8 \
	MOVQ         tail+48(FP), R9 \
	MOVQ         $1, AX \
	SHLXQ        R9, AX, AX \
	DECQ         AX \
	KMOVW        AX, K1 \
	MOVQ         $0x3f, AX \
	KMOVW        AX, K2 \
	VBROADCASTSS floor+72(FP), Z15 \
fours: \
	CMPQ CX, $4 \
	JLE  lastFour \
	PACK_ROWS(PACK_FOUR, LOADX, STORE8, fourStrip, fourTail, fourNext) \
	ADDQ $96, DI \
	LEAQ (SI)(DX*4), SI \
	SUBQ $4, CX \
	JMP  fours \
lastFour: \
	CMPQ CX, $4 \
	JLT  ones \
	PACK_ROWS(PACK_FOUR, LOADX, STORE6, lastStrip, lastTail, lastNext) \
	ADDQ $96, DI \
	LEAQ (SI)(DX*4), SI \
	SUBQ $4, CX \
ones: \
	TESTQ CX, CX \
	JE    done \
	PACK_ROWS(PACK_ONE, LOADX, STORE6, oneStrip, oneTail, oneNext) \
	ADDQ  $24, DI \
	ADDQ  DX, SI \
	DECQ  CX \
	JMP   ones \
done: \
	VZEROUPPER \
	RET

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

// PAIR_STEP(step) is one p of the 6×32 tile: Z0..Z11 += A[0:6, p]·(b0,
// b1)[p], as LOAD_A leaves SI, R10 and R9, with BX and R12 at the strips'
// rows; it moves them all on (A by step bytes) and counts CX down.
#define PAIR_STEP(step) \
	VMOVUPS (BX), Z12 \
	VMOVUPS (R12), Z13 \
	FMA2((SI), Z12, Z13, Z14, Z0, Z1) \
	FMA2((SI)(R9*1), Z12, Z13, Z14, Z2, Z3) \
	FMA2((SI)(R9*2), Z12, Z13, Z14, Z4, Z5) \
	FMA2((R10), Z12, Z13, Z14, Z6, Z7) \
	FMA2((R10)(R9*1), Z12, Z13, Z14, Z8, Z9) \
	FMA2((R10)(R9*2), Z12, Z13, Z14, Z10, Z11) \
	ADDQ step, SI \
	ADDQ step, R10 \
	ADDQ $64, BX \
	ADDQ $64, R12 \
	DECQ CX

// func kernel6x32AVX512(k int, a *float32, aStep, aRow, aTile, tiles int, b0, b1, c *float32, ldc int, accumulate bool)
//
// kernelAVX2 over two adjacent packed strips of B at once, with 512-bit
// registers: C[0:6, 0:16] from strip b0 and C[0:6, 16:32] from strip b1,
// for tiles tiles of six rows one after another (A's aTile floats apart,
// C's six rows): the strips stay in cache across them, and a GEMM of a
// short k makes one call instead of one per tile. Z0..Z11 hold the 6×32
// tile (two registers per row), Z12/Z13 a row of each strip, Z14 a
// broadcast element of A, which serves both strips. Each element is
// summed in the same order with the same FMAs as kernelAVX2, so the two
// give the same bits. AX and R15 hold the tile's A and C.
TEXT ·kernel6x32AVX512(SB), NOSPLIT, $0-81
	LOAD_A
	MOVQ SI, AX
	MOVQ aTile+32(FP), R13
	SHLQ $2, R13
	MOVQ tiles+40(FP), R14
	MOVQ c+64(FP), R15
	MOVQ ldc+72(FP), DX
	SHLQ $2, DX

tile512:
	MOVQ AX, SI
	LEAQ (SI)(R9*2), R10
	ADDQ R9, R10
	MOVQ b0+48(FP), BX
	MOVQ b1+56(FP), R12
	MOVQ R15, DI
	MOVQ k+0(FP), CX
	ZERO4(Z0, Z1, Z2, Z3)
	ZERO4(Z4, Z5, Z6, Z7)
	ZERO4(Z8, Z9, Z10, Z11)
	TESTQ CX, CX
	JE    store512

loop512:
	PAIR_STEP(R11)
	JNE  loop512

store512:
	MOVBQZX accumulate+80(FP), R8
	TESTQ   R8, R8
	JE      overwrite512
	ADD2(64, Z0, Z1)
	ADD2(64, Z2, Z3)
	ADD2(64, Z4, Z5)
	ADD2(64, Z6, Z7)
	ADD2(64, Z8, Z9)
	ADD2(64, Z10, Z11)
	MOVQ    R15, DI

overwrite512:
	PUT2(64, Z0, Z1)
	PUT2(64, Z2, Z3)
	PUT2(64, Z4, Z5)
	PUT2(64, Z6, Z7)
	PUT2(64, Z8, Z9)
	PUT2(64, Z10, Z11)
	MOVQ    DI, R15 // six rows on
	ADDQ    R13, AX
	DECQ    R14
	JNE     tile512
	VZEROUPPER
	RET

// func packAffineA512(dst, src *float32, k, stride, lda, strips, tail int, scale, shift *float32, floor float32)
//
// packA6 of k rows of a transposed A's first 6·strips + tail columns
// (tail < 6 columns in a last strip, zero past them), with
// max(x·scale[i] + shift[i], floor) in column i (as bnApply512 computes
// it): strip s holds row p's six at dst[s·stride + 6p]. It walks the rows
// once, four at a time, each strip of the four in turn with its scale and
// shift loaded once, so that every line of the input is read once and in
// order (a strip at a time walked the rows once per strip: 1.5x slower
// on CondenseNet-86's first block).
TEXT ·packAffineA512(SB), NOSPLIT, $0-76
	PACK_AFFINE(MASKED)

// func packAffineWideA512(dst, src *float32, k, stride, lda, strips, tail int, scale, shift *float32, floor float32)
//
// packAffineA512 reading sixteen floats from each strip's start: the
// caller has checked that they are there to read.
TEXT ·packAffineWideA512(SB), NOSPLIT, $0-76
	PACK_AFFINE(WIDE)

// BNGRAD_V(off, k, LD, ST, g, sc, sh, ca, sg, sgx) is bnBackFused512's
// step (bn_amd64.s: the same instructions, so the same bits) on one vector
// of the row at R8 (x; dx R15 bytes on), its dy in register g: sg += g,
// sgx += g·x, dx += a·g, g = dy where x·scale + shift > floor (Z15). It
// leaves max(x·scale + shift, floor) in g, the normalised input that the
// weight gradient multiplies (as packAffineA512 computes it).
// LD and ST load and store x and dx: whole, or under the mask k (a masked
// load that misses the cache is slow).
#define BNGRAD_V(off, k, LD, ST, g, sc, sh, ca, sg, sgx) \
	LD(off(R8), k, Z26) \
	VMOVAPS     sh, Z27 \
	VFMADD231PS sc, Z26, Z27 \
	VCMPPS      $0x1e, Z15, Z27, k, K3 \
	VMOVAPS.Z   g, K3, g \
	VADDPS      g, sg, sg \
	VFMADD231PS Z26, g, sgx \
	LD(off(R8)(R15*1), k, Z28) \
	VFMADD231PS ca, g, Z28 \
	ST(Z28, k, off(R8)(R15*1)) \
	VMAXPS      Z15, Z27, g

#define LDWHOLE(mem, k, z) VMOVUPS mem, z
#define LDUNDER(mem, k, z) VMOVUPS.Z mem, k, z
#define STWHOLE(z, k, mem) VMOVUPS z, mem
#define STUNDER(z, k, mem) VMOVUPS z, k, mem

// BNGRAD_ROW does a row's 32 channels (K4 and K5 the two vectors' masks)
// and moves R8 to the next row (DX bytes on). It asks for the lines of x
// and dx twelve rows on, two tiles ahead: without, the rows' reads from
// memory waited between the tiles' multiplying instead of overlapping it.
#define BNGRAD_ROW(LD, ST, g0, g1) \
	LEAQ       (R8)(DX*8), SI \
	LEAQ       (SI)(DX*4), SI \
	PREFETCHT0 (SI) \
	PREFETCHT0 64(SI) \
	PREFETCHT0 (SI)(R15*1) \
	PREFETCHT0 64(SI)(R15*1) \
	BNGRAD_V(0, K4, LD, ST, g0, Z16, Z18, Z20, Z22, Z24) \
	BNGRAD_V(64, K5, LD, ST, g1, Z17, Z19, Z21, Z23, Z25) \
	ADDQ DX, R8

// BNGRAD_COUNTED is BNGRAD_ROW, then on to done once R10 rows are done.
#define BNGRAD_COUNTED(LD, ST, g0, g1, done) \
	BNGRAD_ROW(LD, ST, g0, g1) \
	DECQ R10 \
	JZ   done

// DW_ROW(o0, o1, a, c) adds dOut[r, o]·(a, c) into an output's
// accumulators Z26, Z27 and dOut[r, o+1]·(a, c) into Z29, Z30, where a
// and c hold row r's normalised input and o0 and o1 address dOut[r, o]
// and dOut[r, o+1].
#define DW_ROW(o0, o1, a, c) \
	VBROADCASTSS o0, Z28 \
	VFMADD231PS  a, Z28, Z26 \
	VFMADD231PS  c, Z28, Z27 \
	VBROADCASTSS o1, Z31 \
	VFMADD231PS  a, Z31, Z29 \
	VFMADD231PS  c, Z31, Z30

// DW_UPDATE adds the tile's part of the weight gradient into the 32
// channels' rows at R13 (one of 32 floats for each of the k outputs, k
// even), two outputs at a time: row o += Σ_r dOut[r, o]·x̂[r], the six
// rows in order, as the weight gradient's GEMM sums them. SI and BX
// point at dOut's rows 0 and 3 of the tile. Rows past a last tile's have
// x̂ and dOut zero (their dy is zero) and add nothing.
#define DW_UPDATE(loop) \
	MOVQ AX, SI \
	LEAQ (SI)(R9*2), BX \
	ADDQ R9, BX \
	MOVQ R13, R12 \
	MOVQ R11, CX \
	SHRQ $7, CX \
loop: \
	VMOVUPS (R12), Z26 \
	VMOVUPS 64(R12), Z27 \
	VMOVUPS 128(R12), Z29 \
	VMOVUPS 192(R12), Z30 \
	DW_ROW((SI), 4(SI), Z0, Z1) \
	DW_ROW((SI)(R9*1), 4(SI)(R9*1), Z2, Z3) \
	DW_ROW((SI)(R9*2), 4(SI)(R9*2), Z4, Z5) \
	DW_ROW((BX), 4(BX), Z6, Z7) \
	DW_ROW((BX)(R9*1), 4(BX)(R9*1), Z8, Z9) \
	DW_ROW((BX)(R9*2), 4(BX)(R9*2), Z10, Z11) \
	VMOVUPS Z26, (R12) \
	VMOVUPS Z27, 64(R12) \
	VMOVUPS Z29, 128(R12) \
	VMOVUPS Z30, 192(R12) \
	ADDQ    $8, SI \
	ADDQ    $8, BX \
	ADDQ    $256, R12 \
	DECQ    CX \
	JNE     loop

// BNGRAD_TILES runs R14 tiles: each a 6×32 tile of dy from A at AX (rows
// R9 bytes apart, six rows a tile) and the strips at DI and DI + R11
// (R11 = k·64 bytes), then the steps on the tile's rows: six, or in the
// last tile as many as K6 holds; then the tile's weight gradient.
#define BNGRAD_TILES(LD, ST, tile, loop, last, done, dwLoop) \
tile: \
	MOVQ AX, SI \
	LEAQ (SI)(R9*2), R10 \
	ADDQ R9, R10 \
	MOVQ DI, BX \
	LEAQ (DI)(R11*1), R12 \
	MOVQ R11, CX \
	SHRQ $6, CX \
	ZERO4(Z0, Z1, Z2, Z3) \
	ZERO4(Z4, Z5, Z6, Z7) \
	ZERO4(Z8, Z9, Z10, Z11) \
loop: \
	PAIR_STEP($4) \
	JNE  loop \
	MOVQ $6, R10 \
	CMPQ R14, $1 \
	JNE  last \
	KMOVW K6, R10 \
last: \
	BNGRAD_COUNTED(LD, ST, Z0, Z1, done) \
	BNGRAD_COUNTED(LD, ST, Z2, Z3, done) \
	BNGRAD_COUNTED(LD, ST, Z4, Z5, done) \
	BNGRAD_COUNTED(LD, ST, Z6, Z7, done) \
	BNGRAD_COUNTED(LD, ST, Z8, Z9, done) \
	BNGRAD_ROW(LD, ST, Z10, Z11) \
done: \
	DW_UPDATE(dwLoop) \
	LEAQ (R9)(R9*2), SI \
	LEAQ (AX)(SI*2), AX \
	DECQ R14 \
	JNE  tile

// LOAD32(arg, lo, hi) loads the 32 channels of the argument pointer arg
// into lo and hi, under K4 and K5 (zero past the channels there are);
// STORE32 stores them back.
#define LOAD32(arg, lo, hi) \
	MOVQ      arg, CX \
	VMOVUPS.Z (CX), K4, lo \
	VMOVUPS.Z 64(CX), K5, hi

#define STORE32(arg, lo, hi) \
	MOVQ    arg, CX \
	VMOVUPS lo, K4, (CX) \
	VMOVUPS hi, K5, 64(CX)

// func bnBackFusedGemm512(k int, a *float32, lda, tiles, rows int, b, x, dx *float32, ldx, mask0, mask1 int, scale, shift, ca, sg, sgx, t *float32, floor float32)
//
// bnBackFused512 on 32 channels (mask0 and mask1 those of the two vectors
// that are there) of (tiles−1)·6 + rows rows of x and dx (1 ≤ rows ≤ 6;
// A has six rows in every tile, zero past the last's), their dy computed
// here as kernel6x32AVX512 computes a tile (A's rows in place, lda floats
// apart, k even; the strips at b and b + 16k) and used while it is in
// registers: it is never stored. sg and sgx stay in registers down all
// the rows, which it adds in order, as bnBackFused512 does. It also adds
// the 1×1 convolution's weight gradient of the rows into t (k rows of
// 32 floats): t[o] += Σ_r A[r, o]·max(x[r]·scale + shift, floor).
TEXT ·bnBackFusedGemm512(SB), NOSPLIT, $0-140
	MOVQ      k+0(FP), R11
	SHLQ      $6, R11
	MOVQ      a+8(FP), AX
	MOVQ      lda+16(FP), R9
	SHLQ      $2, R9
	MOVQ      tiles+24(FP), R14
	MOVQ      rows+32(FP), BX
	KMOVW     BX, K6
	MOVQ      b+40(FP), DI
	MOVQ      x+48(FP), R8
	MOVQ      dx+56(FP), R15
	SUBQ      R8, R15
	MOVQ      ldx+64(FP), DX
	SHLQ      $2, DX
	MOVQ      mask0+72(FP), BX
	KMOVW     BX, K4
	MOVQ      mask1+80(FP), R12
	KMOVW     R12, K5
	ANDQ      BX, R12
	LOAD32(scale+88(FP), Z16, Z17)
	LOAD32(shift+96(FP), Z18, Z19)
	LOAD32(ca+104(FP), Z20, Z21)
	LOAD32(sg+112(FP), Z22, Z23)
	LOAD32(sgx+120(FP), Z24, Z25)
	MOVQ      t+128(FP), R13
	VBROADCASTSS floor+136(FP), Z15
	CMPQ      R12, $0xffff
	JNE       under
	BNGRAD_TILES(LDWHOLE, STWHOLE, wholeTile, wholeLoop, wholeLast, wholeDone, wholeDW)
	JMP       sums

under:
	BNGRAD_TILES(LDUNDER, STUNDER, underTile, underLoop, underLast, underDone, underDW)

sums:
	STORE32(sg+112(FP), Z22, Z23)
	STORE32(sgx+120(FP), Z24, Z25)
	VZEROUPPER
	RET
