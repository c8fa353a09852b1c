#include "textflag.h"

// BACKLOAD(off, k, LD, sc, sh, ca, cb, cc) loads a column vector's
// coefficients for BACKV (bnBackApply512; macros that name arguments go
// before every TEXT, for vet's sake).
#define BACKLOAD(off, k, LD, sc, sh, ca, cb, cc) \
	MOVQ      scale+24(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sc \
	MOVQ      shift+32(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sh \
	MOVQ      a+40(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, ca \
	MOVQ      b+48(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, cb \
	MOVQ      c+56(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, cc

// FUSEDLOAD(off, k, LD, sc, sh, ca, sg, sgx) loads a column vector's scale,
// shift, coefficient a and sums for FUSEDV (bnBackFused512).
#define FUSEDLOAD(off, k, LD, sc, sh, ca, sg, sgx) \
	MOVQ      scale+40(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sc \
	MOVQ      shift+48(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sh \
	MOVQ      a+56(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, ca \
	VMOVUPS.Z off(DI)(AX*1), k, sg \
	VMOVUPS.Z off(R12)(AX*1), k, sgx

// BACK_ARGS loads bnBackApply512's and bnBackSet512's arguments: R11 dx's
// distance from x, SI x, BX dy, DX the rows, R8 and R9 the rows' strides in
// bytes, Z15 the floor, and the masks (BNMASKS).
#define BACK_ARGS \
	MOVQ         dx+0(FP), R11 \
	MOVQ         x+8(FP), SI \
	MOVQ         dy+16(FP), BX \
	BNMASKS(n+64(FP)) \
	MOVQ         rows+72(FP), DX \
	MOVQ         ldx+80(FP), R8 \
	SHLQ         $2, R8 \
	MOVQ         ldy+88(FP), R9 \
	SHLQ         $2, R9 \
	VBROADCASTSS floor+96(FP), Z15 \
	SUBQ         SI, R11

// Row kernels for BatchNorm. Each walks `rows` rows of n channels (n a
// multiple of 8, at least 8), rows ldx and ldy floats apart; per-channel
// vectors (sums, scale, shift, coefficients) have n elements. `floor` is 0
// for a fused ReLU (masking where the output is not positive) and -Inf
// otherwise.

// func bnStatsAVX2(s1, s2, x *float32, n, rows, ldx int)
// s1 += x; s2 += x² for every row.
TEXT ·bnStatsAVX2(SB), NOSPLIT, $0-48
	MOVQ s1+0(FP), DI
	MOVQ s2+8(FP), R8
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), R10
	SHLQ $2, R10
	MOVQ rows+32(FP), DX
	MOVQ ldx+40(FP), R9
	SHLQ $2, R9

statsRow:
	XORQ AX, AX

statsCol:
	VMOVUPS     (SI)(AX*1), Y0
	VADDPS      (DI)(AX*1), Y0, Y1
	VMOVUPS     Y1, (DI)(AX*1)
	VMOVUPS     (R8)(AX*1), Y2
	VFMADD231PS Y0, Y0, Y2
	VMOVUPS     Y2, (R8)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         statsCol
	ADDQ        R9, SI
	DECQ        DX
	JNZ         statsRow
	VZEROUPPER
	RET

// func bnApplyAVX2(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
// y = max(x·scale + shift, floor).
TEXT ·bnApplyAVX2(SB), NOSPLIT, $0-68
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         scale+16(FP), R11
	MOVQ         shift+24(FP), R12
	MOVQ         n+32(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+40(FP), DX
	MOVQ         ldx+48(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+56(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+64(FP), Y15

applyRow:
	XORQ AX, AX

applyCol:
	VMOVUPS     (SI)(AX*1), Y0
	VMOVUPS     (R12)(AX*1), Y2
	VFMADD231PS (R11)(AX*1), Y0, Y2
	VMAXPS      Y15, Y2, Y2
	VMOVUPS     Y2, (DI)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         applyCol
	ADDQ        R8, SI
	ADDQ        R9, DI
	DECQ        DX
	JNZ         applyRow
	VZEROUPPER
	RET

// The backward kernels take the forward's scale and shift: its output
// before the floor, x·scale + shift, is computed again as the forward
// computed it, instead of reading the output back from memory.

// GRADAVX2 leaves x in Y2 and g in Y1: dy where x·scale + shift is above
// floor, else 0.
#define GRADAVX2 \
	VMOVUPS     (SI)(AX*1), Y2 \
	VMOVUPS     (R15)(AX*1), Y3 \
	VFMADD231PS (R12)(AX*1), Y2, Y3 \
	VCMPPS      $0x1e, Y15, Y3, Y4 \
	VANDPS      (BX)(AX*1), Y4, Y1

// func bnBackSumsAVX2(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
// sg += g; sgx += g·x.
TEXT ·bnBackSumsAVX2(SB), NOSPLIT, $0-84
	MOVQ         sg+0(FP), DI
	MOVQ         sgx+8(FP), R11
	MOVQ         x+16(FP), SI
	MOVQ         dy+24(FP), BX
	MOVQ         scale+32(FP), R12
	MOVQ         shift+40(FP), R15
	MOVQ         n+48(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+56(FP), DX
	MOVQ         ldx+64(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+72(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+80(FP), Y15

sumsRow:
	XORQ AX, AX

sumsCol:
	GRADAVX2
	VADDPS      (DI)(AX*1), Y1, Y5
	VMOVUPS     Y5, (DI)(AX*1)
	VMOVUPS     (R11)(AX*1), Y6
	VFMADD231PS Y2, Y1, Y6
	VMOVUPS     Y6, (R11)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         sumsCol
	ADDQ        R8, SI
	ADDQ        R9, BX
	DECQ        DX
	JNZ         sumsRow
	VZEROUPPER
	RET

// func bnBackApplyAVX2(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
// dx += a·g + b·x + c.
TEXT ·bnBackApplyAVX2(SB), NOSPLIT, $0-100
	MOVQ         dx+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         dy+16(FP), BX
	MOVQ         scale+24(FP), R12
	MOVQ         shift+32(FP), R15
	MOVQ         a+40(FP), R11
	MOVQ         b+48(FP), R13
	MOVQ         c+56(FP), CX
	MOVQ         n+64(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+72(FP), DX
	MOVQ         ldx+80(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+88(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+96(FP), Y15

backRow:
	XORQ AX, AX

backCol:
	GRADAVX2
	VMOVUPS     (DI)(AX*1), Y0
	VADDPS      (CX)(AX*1), Y0, Y0
	VFMADD231PS (R11)(AX*1), Y1, Y0
	VFMADD231PS (R13)(AX*1), Y2, Y0
	VMOVUPS     Y0, (DI)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         backCol
	ADDQ        R8, SI
	ADDQ        R8, DI
	ADDQ        R9, BX
	DECQ        DX
	JNZ         backRow
	VZEROUPPER
	RET

// The AVX-512 row kernels compute what the AVX2 ones do, sixteen channels
// at a time and any n: the last few channels of a row go through the same
// code under the mask K1 (the full vectors under K2, all ones), so every
// channel gets the same instructions and the results are the AVX2
// kernels' bits. BNMASKS sets the masks and R10, the bytes of a row's
// full vectors.
#define BNMASKS(n) \
	MOVQ  n, CX \
	ANDQ  $15, CX \
	MOVQ  $1, AX \
	SHLQ  CX, AX \
	DECQ  AX \
	KMOVW AX, K1 \
	MOVQ  $0xffff, AX \
	KMOVW AX, K2 \
	MOVQ  n, R10 \
	ANDQ  $-16, R10 \
	SHLQ  $2, R10

// The column-major row kernels: the sums (or coefficients) of a column of
// vectors are kept in registers down all the rows, instead of being
// loaded and stored at every row, whose chain through memory bounded the
// row loop. Each channel's sums are still added row by row, in order: the
// bits of sums kept in memory.
//
// COLUMNS runs one: four full vectors of channels at a time while there
// are four (LOAD4, then BODY4 on every row, then STORE4), then one full
// vector at a time (LOAD1, BODY1, STORE1 under K2), then the last few
// channels under K1, if any. ROWS points R13 and R14 at column AX of the
// first row of x and dy and CX at the row count (DX); NEXT(loop) moves them
// on a row (R8 and R9 bytes) and loops, asking for the lines eight rows
// on: rows of a wide buffer lie a page apart every few rows, where the
// hardware's prefetchers stop (the training step gained 3-7%). BNMASKS
// must have run; the rest are labels. Every step macro takes (off, k, LD,
// registers...): the vector's byte offset, its mask, and how to load a
// row's vector (LDFULL or LDMASK).
#define ROWS \
	LEAQ (SI)(AX*1), R13 \
	LEAQ (BX)(AX*1), R14 \
	MOVQ DX, CX

#define NEXT(loop) \
	PREFETCHT0 (R13)(R8*8) \
	PREFETCHT0 128(R13)(R8*8) \
	PREFETCHT0 (R14)(R9*8) \
	ADDQ R8, R13 \
	ADDQ R9, R14 \
	DECQ CX \
	JNZ  loop

// LDFULL and LDMASK load a vector of a row: whole, for full vectors,
// or under mask k for the last few channels. A masked load that misses the
// cache is slower than a plain one, even under a mask of all ones
// (bnBackFused512 on CondenseNet-86's first block: 28 against 34 GB/s).
#define LDFULL(src, k, dst) VMOVUPS src, dst
#define LDMASK(src, k, dst) VMOVUPS.Z src, k, dst

#define COLUMNS(LOAD4, BODY4, STORE4, LOAD1, BODY1, STORE1, quad, quadRow, one, oneRow, tail, tailRow, done) \
	XORQ     AX, AX \
quad: \
	LEAQ     256(AX), CX \
	CMPQ     CX, R10 \
	JGT      one \
	LOAD4 \
	ROWS \
quadRow: \
	BODY4 \
	NEXT(quadRow) \
	STORE4 \
	ADDQ     $256, AX \
	JMP      quad \
one: \
	CMPQ     AX, R10 \
	JGE      tail \
	LOAD1(K2, LDFULL) \
	ROWS \
oneRow: \
	BODY1(K2, LDFULL) \
	NEXT(oneRow) \
	STORE1(K2, LDFULL) \
	ADDQ     $64, AX \
	JMP      one \
tail: \
	KORTESTW K1, K1 \
	JZ       done \
	LOAD1(K1, LDMASK) \
	ROWS \
tailRow: \
	BODY1(K1, LDMASK) \
	NEXT(tailRow) \
	STORE1(K1, LDMASK) \
done:

// func bnStats512(s1, s2, x *float32, n, rows, ldx int)
// STATSV(off, k, LD, s1, s2) adds one vector's row at R13 into s1 and its
// squares into s2.
#define STATSV(off, k, LD, s1, s2) \
	LD(off(R13), k, Z0) \
	VADDPS      Z0, s1, s1 \
	VFMADD231PS Z0, Z0, s2

#define STATSLOAD(off, k, LD, s1, s2) \
	VMOVUPS.Z off(DI)(AX*1), k, s1 \
	VMOVUPS.Z off(R12)(AX*1), k, s2

#define STATSSTORE(off, k, LD, s1, s2) \
	VMOVUPS s1, k, off(DI)(AX*1) \
	VMOVUPS s2, k, off(R12)(AX*1)

// TWO4(V) and TWO1(V, k, LD) give V the registers of four vectors, or one,
// with two per vector (bnStats512 and bnApply512).
#define TWO4(V) \
	V(0, K2, LDFULL, Z16, Z17) \
	V(64, K2, LDFULL, Z18, Z19) \
	V(128, K2, LDFULL, Z20, Z21) \
	V(192, K2, LDFULL, Z22, Z23)

#define TWO1(V, k, LD) V(0, k, LD, Z16, Z17)

#define STATS4LOAD TWO4(STATSLOAD)
#define STATS4BODY TWO4(STATSV)
#define STATS4STORE TWO4(STATSSTORE)
#define STATS1LOAD(k, LD) TWO1(STATSLOAD, k, LD)
#define STATS1BODY(k, LD) TWO1(STATSV, k, LD)
#define STATS1STORE(k, LD) TWO1(STATSSTORE, k, LD)

// (It has no dy: R14 follows x, for NEXT.)
TEXT ·bnStats512(SB), NOSPLIT, $0-48
	MOVQ s1+0(FP), DI
	MOVQ s2+8(FP), R12
	MOVQ x+16(FP), SI
	BNMASKS(n+24(FP))
	MOVQ rows+32(FP), DX
	MOVQ ldx+40(FP), R8
	SHLQ $2, R8
	MOVQ SI, BX
	MOVQ R8, R9
	COLUMNS(STATS4LOAD, STATS4BODY, STATS4STORE, STATS1LOAD, STATS1BODY, STATS1STORE, stats512Quad, stats512QuadRow, stats512One, stats512OneRow, stats512Tail, stats512TailRow, stats512Done)
	VZEROUPPER
	RET

// func bnApply512(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
// APPLYV(off, k, LD, sc, sh) writes one vector of the row at R14 (y):
// max(x·scale + shift, floor), x at R13.
#define APPLYV(off, k, LD, sc, sh) \
	LD(off(R13), k, Z0) \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VMAXPS      Z15, Z1, Z1 \
	VMOVUPS     Z1, k, off(R14)

#define APPLYLOAD(off, k, LD, sc, sh) \
	VMOVUPS.Z off(R11)(AX*1), k, sc \
	VMOVUPS.Z off(R12)(AX*1), k, sh

#define APPLYNONE(off, k, LD, sc, sh)

#define APPLY4LOAD TWO4(APPLYLOAD)
#define APPLY4BODY TWO4(APPLYV)
#define APPLY4STORE TWO4(APPLYNONE)
#define APPLY1LOAD(k, LD) TWO1(APPLYLOAD, k, LD)
#define APPLY1BODY(k, LD) TWO1(APPLYV, k, LD)
#define APPLY1STORE(k, LD) TWO1(APPLYNONE, k, LD)

TEXT ·bnApply512(SB), NOSPLIT, $0-68
	MOVQ         y+0(FP), BX
	MOVQ         x+8(FP), SI
	MOVQ         scale+16(FP), R11
	MOVQ         shift+24(FP), R12
	BNMASKS(n+32(FP))
	MOVQ         rows+40(FP), DX
	MOVQ         ldx+48(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+56(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+64(FP), Z15
	COLUMNS(APPLY4LOAD, APPLY4BODY, APPLY4STORE, APPLY1LOAD, APPLY1BODY, APPLY1STORE, apply512Quad, apply512QuadRow, apply512One, apply512OneRow, apply512Tail, apply512TailRow, apply512Done)
	VZEROUPPER
	RET

// func bnBackSums512(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
// SUMSV(off, k, LD, sc, sh, sg, sgx) adds one vector's row at R13 (x) and R14
// (dy) into sg and sgx, given its scale and shift: g is dy where
// x·scale + shift (the forward's output before its floor) is above
// floor, else 0.
#define SUMSV(off, k, LD, sc, sh, sg, sgx) \
	LD(off(R13), k, Z0) \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	LD(off(R14), k, Z2) \
	VMOVAPS.Z   Z2, K3, Z2 \
	VADDPS      Z2, sg, sg \
	VFMADD231PS Z0, Z2, sgx

#define SUMSLOAD(off, k, LD, sc, sh, sg, sgx) \
	VMOVUPS.Z off(R12)(AX*1), k, sc \
	VMOVUPS.Z off(R15)(AX*1), k, sh \
	VMOVUPS.Z off(DI)(AX*1), k, sg \
	VMOVUPS.Z off(R11)(AX*1), k, sgx

#define SUMSSTORE(off, k, LD, sc, sh, sg, sgx) \
	VMOVUPS sg, k, off(DI)(AX*1) \
	VMOVUPS sgx, k, off(R11)(AX*1)

#define SUMS4(V) \
	V(0, K2, LDFULL, Z16, Z17, Z18, Z19) \
	V(64, K2, LDFULL, Z20, Z21, Z22, Z23) \
	V(128, K2, LDFULL, Z24, Z25, Z26, Z27) \
	V(192, K2, LDFULL, Z28, Z29, Z30, Z31)

#define SUMS4LOAD SUMS4(SUMSLOAD)
#define SUMS4BODY SUMS4(SUMSV)
#define SUMS4STORE SUMS4(SUMSSTORE)
#define SUMS1LOAD(k, LD) SUMSLOAD(0, k, LD, Z16, Z17, Z18, Z19)
#define SUMS1BODY(k, LD) SUMSV(0, k, LD, Z16, Z17, Z18, Z19)
#define SUMS1STORE(k, LD) SUMSSTORE(0, k, LD, Z16, Z17, Z18, Z19)

TEXT ·bnBackSums512(SB), NOSPLIT, $0-84
	MOVQ         sg+0(FP), DI
	MOVQ         sgx+8(FP), R11
	MOVQ         x+16(FP), SI
	MOVQ         dy+24(FP), BX
	MOVQ         scale+32(FP), R12
	MOVQ         shift+40(FP), R15
	BNMASKS(n+48(FP))
	MOVQ         rows+56(FP), DX
	MOVQ         ldx+64(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+72(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+80(FP), Z15
	COLUMNS(SUMS4LOAD, SUMS4BODY, SUMS4STORE, SUMS1LOAD, SUMS1BODY, SUMS1STORE, sums512Quad, sums512QuadRow, sums512One, sums512OneRow, sums512Tail, sums512TailRow, sums512Done)
	VZEROUPPER
	RET

// func bnBackApply512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
// BACKV(off, k, LD, sc, sh, ca, cb, cc) does one vector of the row at R13
// (x; dx R11 bytes on) and R14 (dy): dx = ((dx + c) + a·g) + b·x, g as in
// SUMSV; SETV the same with dx zero (BACKSTEP, with DX the load of dx).
// They store dx themselves; BACKNONE stores nothing after the rows.
#define BACKSTEP(off, k, LD, sc, sh, ca, cb, cc, DX) \
	LD(off(R13), k, Z0) \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	LD(off(R14), k, Z2) \
	VMOVAPS.Z   Z2, K3, Z2 \
	DX(off, k, LD) \
	VADDPS      cc, Z3, Z3 \
	VFMADD231PS ca, Z2, Z3 \
	VFMADD231PS cb, Z0, Z3 \
	VMOVUPS     Z3, k, off(R13)(R11*1)

// DXADD loads dx into Z3; DXZERO zeroes Z3 instead (bnBackSet512: then
// 0 + c is c, and the rest as bnBackApply512 computes it).
#define DXADD(off, k, LD) LD(off(R13)(R11*1), k, Z3)
#define DXZERO(off, k, LD) VXORPS Z3, Z3, Z3
#define BACKV(off, k, LD, sc, sh, ca, cb, cc) BACKSTEP(off, k, LD, sc, sh, ca, cb, cc, DXADD)
#define SETV(off, k, LD, sc, sh, ca, cb, cc) BACKSTEP(off, k, LD, sc, sh, ca, cb, cc, DXZERO)

#define BACKNONE(off, k, LD, sc, sh, ca, cb, cc)

// FIVE4(V) and FIVE1(V, k, LD) give V the registers of four vectors, or one,
// with five per vector (bnBackApply512 and bnBackFused512).
#define FIVE4(V) \
	V(0, K2, LDFULL, Z16, Z17, Z18, Z19, Z20) \
	V(64, K2, LDFULL, Z21, Z22, Z23, Z24, Z25) \
	V(128, K2, LDFULL, Z26, Z27, Z28, Z29, Z30) \
	V(192, K2, LDFULL, Z31, Z4, Z5, Z6, Z7)

#define FIVE1(V, k, LD) V(0, k, LD, Z16, Z17, Z18, Z19, Z20)

#define BACK4LOAD FIVE4(BACKLOAD)
#define BACK4BODY FIVE4(BACKV)
#define BACK4STORE FIVE4(BACKNONE)
#define BACK1LOAD(k, LD) FIVE1(BACKLOAD, k, LD)
#define BACK1BODY(k, LD) FIVE1(BACKV, k, LD)
#define BACK1STORE(k, LD) FIVE1(BACKNONE, k, LD)
#define SET4BODY FIVE4(SETV)
#define SET1BODY(k, LD) FIVE1(SETV, k, LD)

TEXT ·bnBackApply512(SB), NOSPLIT, $0-100
	BACK_ARGS
	COLUMNS(BACK4LOAD, BACK4BODY, BACK4STORE, BACK1LOAD, BACK1BODY, BACK1STORE, back512Quad, back512QuadRow, back512One, back512OneRow, back512Tail, back512TailRow, back512Done)
	VZEROUPPER
	RET

// func bnBackSet512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
// bnBackApply512 writing dx = ((0 + c) + a·g) + b·x, without reading it.
TEXT ·bnBackSet512(SB), NOSPLIT, $0-100
	BACK_ARGS
	COLUMNS(BACK4LOAD, SET4BODY, BACK4STORE, BACK1LOAD, SET1BODY, BACK1STORE, set512Quad, set512QuadRow, set512One, set512OneRow, set512Tail, set512TailRow, set512Done)
	VZEROUPPER
	RET

// func bnBackFused512(sg, sgx, dx, x, dy, scale, shift, a *float32, n, rows, ldx, ldy int, floor float32)
// bnBackSums512 and the a·g of bnBackApply512 in one pass: FUSEDV(off, k,
// LD, sc, sh, ca, sg, sgx) does one vector of the row at R13 (x; dx R11 bytes
// on) and R14 (dy): sg += g, sgx += g·x, dx += a·g.
#define FUSEDV(off, k, LD, sc, sh, ca, sg, sgx) \
	LD(off(R13), k, Z0) \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	VMOVUPS.Z   off(R14), K3, Z2 \
	VADDPS      Z2, sg, sg \
	VFMADD231PS Z0, Z2, sgx \
	LD(off(R13)(R11*1), k, Z3) \
	VFMADD231PS ca, Z2, Z3 \
	VMOVUPS     Z3, k, off(R13)(R11*1)

#define FUSEDSTORE(off, k, LD, sc, sh, ca, sg, sgx) \
	VMOVUPS sg, k, off(DI)(AX*1) \
	VMOVUPS sgx, k, off(R12)(AX*1)

#define FUSED4LOAD FIVE4(FUSEDLOAD)
#define FUSED4BODY FIVE4(FUSEDV)
#define FUSED4STORE FIVE4(FUSEDSTORE)
#define FUSED1LOAD(k, LD) FIVE1(FUSEDLOAD, k, LD)
#define FUSED1BODY(k, LD) FIVE1(FUSEDV, k, LD)
#define FUSED1STORE(k, LD) FIVE1(FUSEDSTORE, k, LD)

TEXT ·bnBackFused512(SB), NOSPLIT, $0-100
	MOVQ         sg+0(FP), DI
	MOVQ         sgx+8(FP), R12
	MOVQ         dx+16(FP), R11
	MOVQ         x+24(FP), SI
	MOVQ         dy+32(FP), BX
	BNMASKS(n+64(FP))
	MOVQ         rows+72(FP), DX
	MOVQ         ldx+80(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+88(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+96(FP), Z15
	SUBQ         SI, R11
	COLUMNS(FUSED4LOAD, FUSED4BODY, FUSED4STORE, FUSED1LOAD, FUSED1BODY, FUSED1STORE, fused512Quad, fused512QuadRow, fused512One, fused512OneRow, fused512Tail, fused512TailRow, fused512Done)
	VZEROUPPER
	RET

// func normSum512(x *float32, n int, scale, shift, floor float32) float32
//
// normSumGo: sixteen lanes of sums, the last vector's lanes past n left
// as they are, then folded in halves. n ≥ 1.
TEXT ·normSum512(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS scale+16(FP), Z1
	VBROADCASTSS shift+20(FP), Z2
	VBROADCASTSS floor+24(FP), Z3
	VXORPS       Z0, Z0, Z0

normSumVector:
	CMPQ    CX, $16
	JLT     normSumTail
	VMULPS  (SI), Z1, Z4
	VADDPS  Z2, Z4, Z4
	VMAXPS  Z3, Z4, Z4
	VADDPS  Z4, Z0, Z0
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     normSumVector

normSumTail:
	TESTQ     CX, CX
	JZ        normSumFold
	MOVQ      $1, AX
	SHLQ      CX, AX
	DECQ      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z5
	VMULPS    Z5, Z1, Z4
	VADDPS    Z2, Z4, Z4
	VMAXPS    Z3, Z4, Z4
	VADDPS    Z4, Z0, K1, Z0

normSumFold:
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VADDPS        X1, X0, X0
	VMOVHLPS      X0, X0, X1
	VADDPS        X1, X0, X0
	VMOVSHDUP     X0, X1
	VADDSS        X1, X0, X0
	VZEROUPPER
	MOVSS         X0, ret+32(FP)
	RET
