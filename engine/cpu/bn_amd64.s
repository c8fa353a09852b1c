#include "textflag.h"

// BACKLOAD(off, k, sc, sh, ca, cb, cc) loads a column vector's
// coefficients for BACKV (bnBackApply512; macros that name arguments go
// before every TEXT, for vet's sake).
#define BACKLOAD(off, k, sc, sh, ca, cb, cc) \
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

// FUSEDLOAD(off, k, sc, sh, ca, sg, sgx) loads a column vector's scale,
// shift, coefficient a and sums for FUSEDV (bnBackFused512).
#define FUSEDLOAD(off, k, sc, sh, ca, sg, sgx) \
	MOVQ      scale+40(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sc \
	MOVQ      shift+48(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, sh \
	MOVQ      a+56(FP), CX \
	VMOVUPS.Z off(CX)(AX*1), k, ca \
	VMOVUPS.Z off(DI)(AX*1), k, sg \
	VMOVUPS.Z off(R12)(AX*1), k, sgx

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
// full vectors; BNCOLS(body, col, tail) runs body(K2) over them and
// body(K1) over the rest, AX the column's byte offset (col and tail are
// the labels it needs).
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

#define BNCOLS(body, col, tail) \
	XORQ AX, AX \
	CMPQ AX, R10 \
	JEQ  tail \
col: \
	body(K2) \
	ADDQ $64, AX \
	CMPQ AX, R10 \
	JLT  col \
tail: \
	body(K1)

// func bnStats512(s1, s2, x *float32, n, rows, ldx int)
//
// Column-major, as bnBackSums512: STATSV(off, k, s1, s2) adds one
// vector's row at R13 into s1 and its squares into s2.
#define STATSV(off, k, s1, s2) \
	VMOVUPS.Z   off(R13), k, Z0 \
	VADDPS      Z0, s1, s1 \
	VFMADD231PS Z0, Z0, s2

#define STATSLOAD(off, k, s1, s2) \
	VMOVUPS.Z off(DI)(AX*1), k, s1 \
	VMOVUPS.Z off(R8)(AX*1), k, s2

#define STATSSTORE(off, k, s1, s2) \
	VMOVUPS s1, k, off(DI)(AX*1) \
	VMOVUPS s2, k, off(R8)(AX*1)

#define STATSROWS \
	LEAQ (SI)(AX*1), R13 \
	MOVQ DX, CX

#define STATSNEXT(loop) \
	ADDQ R9, R13 \
	DECQ CX \
	JNZ  loop

TEXT ·bnStats512(SB), NOSPLIT, $0-48
	MOVQ s1+0(FP), DI
	MOVQ s2+8(FP), R8
	MOVQ x+16(FP), SI
	BNMASKS(n+24(FP))
	MOVQ rows+32(FP), DX
	MOVQ ldx+40(FP), R9
	SHLQ $2, R9
	XORQ AX, AX

stats512Quad:
	LEAQ 256(AX), CX
	CMPQ CX, R10
	JGT  stats512One
	STATSLOAD(0, K2, Z16, Z17)
	STATSLOAD(64, K2, Z18, Z19)
	STATSLOAD(128, K2, Z20, Z21)
	STATSLOAD(192, K2, Z22, Z23)
	STATSROWS

stats512QuadRow:
	STATSV(0, K2, Z16, Z17)
	STATSV(64, K2, Z18, Z19)
	STATSV(128, K2, Z20, Z21)
	STATSV(192, K2, Z22, Z23)
	STATSNEXT(stats512QuadRow)
	STATSSTORE(0, K2, Z16, Z17)
	STATSSTORE(64, K2, Z18, Z19)
	STATSSTORE(128, K2, Z20, Z21)
	STATSSTORE(192, K2, Z22, Z23)
	ADDQ $256, AX
	JMP  stats512Quad

stats512One:
	CMPQ AX, R10
	JGE  stats512Tail
	STATSLOAD(0, K2, Z16, Z17)
	STATSROWS

stats512OneRow:
	STATSV(0, K2, Z16, Z17)
	STATSNEXT(stats512OneRow)
	STATSSTORE(0, K2, Z16, Z17)
	ADDQ $64, AX
	JMP  stats512One

stats512Tail:
	KORTESTW K1, K1
	JZ       stats512Done
	STATSLOAD(0, K1, Z16, Z17)
	STATSROWS

stats512TailRow:
	STATSV(0, K1, Z16, Z17)
	STATSNEXT(stats512TailRow)
	STATSSTORE(0, K1, Z16, Z17)

stats512Done:
	VZEROUPPER
	RET

// func bnApply512(y, x, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
#define APPLY(k) \
	VMOVUPS.Z   (SI)(AX*1), k, Z0 \
	VMOVUPS.Z   (R11)(AX*1), k, Z1 \
	VMOVUPS.Z   (R12)(AX*1), k, Z2 \
	VFMADD231PS Z1, Z0, Z2 \
	VMAXPS      Z15, Z2, Z2 \
	VMOVUPS     Z2, k, (DI)(AX*1)

TEXT ·bnApply512(SB), NOSPLIT, $0-68
	MOVQ         y+0(FP), DI
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

apply512Row:
	BNCOLS(APPLY, apply512Col, apply512Tail)
	ADDQ R8, SI
	ADDQ R9, DI
	DECQ DX
	JNZ  apply512Row
	VZEROUPPER
	RET

// GRAD512(k) leaves x in Z2 and g in Z1: dy where x·scale + shift (the
// forward's output before its floor) is above floor, else 0.
#define GRAD512(k) \
	VMOVUPS.Z   (SI)(AX*1), k, Z2 \
	VMOVUPS.Z   (R12)(AX*1), k, Z4 \
	VMOVUPS.Z   (R15)(AX*1), k, Z3 \
	VFMADD231PS Z4, Z2, Z3 \
	VCMPPS      $0x1e, Z15, Z3, k, K3 \
	VMOVUPS.Z   (BX)(AX*1), K3, Z1

// func bnBackSums512(sg, sgx, x, dy, scale, shift *float32, n, rows, ldx, ldy int, floor float32)
//
// Column-major: the sums of a column of vectors are kept in registers down
// all the rows, instead of being loaded and stored at every row, whose
// chain through memory bounded the row loop. Each channel's sums are still
// added row by row, in order: the bits of sums kept in memory.
// SUMSV(off, k, sc, sh, sg, sgx) adds one vector's row at R13 (x) and R14
// (dy) into sg and sgx, given its scale and shift.
#define SUMSV(off, k, sc, sh, sg, sgx) \
	VMOVUPS.Z   off(R13), k, Z0 \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	VMOVUPS.Z   off(R14), K3, Z2 \
	VADDPS      Z2, sg, sg \
	VFMADD231PS Z0, Z2, sgx

// SUMSLOAD and SUMSSTORE move a column vector's constants and sums at
// byte offset AX + off between memory and registers.
#define SUMSLOAD(off, k, sc, sh, sg, sgx) \
	VMOVUPS.Z off(R12)(AX*1), k, sc \
	VMOVUPS.Z off(R15)(AX*1), k, sh \
	VMOVUPS.Z off(DI)(AX*1), k, sg \
	VMOVUPS.Z off(R11)(AX*1), k, sgx

#define SUMSSTORE(off, k, sg, sgx) \
	VMOVUPS sg, k, off(DI)(AX*1) \
	VMOVUPS sgx, k, off(R11)(AX*1)

// SUMSROWS points R13 and R14 at column AX of the first row and CX at the
// row count.
#define SUMSROWS \
	LEAQ (SI)(AX*1), R13 \
	LEAQ (BX)(AX*1), R14 \
	MOVQ DX, CX

#define SUMSNEXT(loop) \
	ADDQ R8, R13 \
	ADDQ R9, R14 \
	DECQ CX \
	JNZ  loop

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
	XORQ         AX, AX

sums512Quad: // four full vectors at a time
	LEAQ 256(AX), CX
	CMPQ CX, R10
	JGT  sums512One
	SUMSLOAD(0, K2, Z16, Z17, Z18, Z19)
	SUMSLOAD(64, K2, Z20, Z21, Z22, Z23)
	SUMSLOAD(128, K2, Z24, Z25, Z26, Z27)
	SUMSLOAD(192, K2, Z28, Z29, Z30, Z31)
	SUMSROWS

sums512QuadRow:
	SUMSV(0, K2, Z16, Z17, Z18, Z19)
	SUMSV(64, K2, Z20, Z21, Z22, Z23)
	SUMSV(128, K2, Z24, Z25, Z26, Z27)
	SUMSV(192, K2, Z28, Z29, Z30, Z31)
	SUMSNEXT(sums512QuadRow)
	SUMSSTORE(0, K2, Z18, Z19)
	SUMSSTORE(64, K2, Z22, Z23)
	SUMSSTORE(128, K2, Z26, Z27)
	SUMSSTORE(192, K2, Z30, Z31)
	ADDQ $256, AX
	JMP  sums512Quad

sums512One: // the other full vectors, one at a time
	CMPQ AX, R10
	JGE  sums512Tail
	SUMSLOAD(0, K2, Z16, Z17, Z18, Z19)
	SUMSROWS

sums512OneRow:
	SUMSV(0, K2, Z16, Z17, Z18, Z19)
	SUMSNEXT(sums512OneRow)
	SUMSSTORE(0, K2, Z18, Z19)
	ADDQ $64, AX
	JMP  sums512One

sums512Tail: // the last channels under K1, if any
	KORTESTW K1, K1
	JZ       sums512Done
	SUMSLOAD(0, K1, Z16, Z17, Z18, Z19)
	SUMSROWS

sums512TailRow:
	SUMSV(0, K1, Z16, Z17, Z18, Z19)
	SUMSNEXT(sums512TailRow)
	SUMSSTORE(0, K1, Z18, Z19)

sums512Done:
	VZEROUPPER
	RET

// func bnBackApply512(dx, x, dy, scale, shift, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
//
// Column-major, as bnBackSums512, so that a column of vectors' five
// coefficients stay in registers down the rows instead of being loaded at
// every row. BACKV(off, k, sc, sh, ca, cb, cc) does one vector of the row
// at R13 (x; dx R11 bytes on) and R14 (dy): dx = ((dx + c) + a·g) + b·x.
#define BACKV(off, k, sc, sh, ca, cb, cc) \
	VMOVUPS.Z   off(R13), k, Z0 \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	VMOVUPS.Z   off(R14), K3, Z2 \
	VMOVUPS.Z   off(R13)(R11*1), k, Z3 \
	VADDPS      cc, Z3, Z3 \
	VFMADD231PS ca, Z2, Z3 \
	VFMADD231PS cb, Z0, Z3 \
	VMOVUPS     Z3, k, off(R13)(R11*1)

TEXT ·bnBackApply512(SB), NOSPLIT, $0-100
	MOVQ         dx+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         dy+16(FP), BX
	BNMASKS(n+64(FP))
	MOVQ         rows+72(FP), DX
	MOVQ         ldx+80(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+88(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+96(FP), Z15
	MOVQ         DI, R11
	SUBQ         SI, R11
	XORQ         AX, AX

back512Quad:
	LEAQ 256(AX), CX
	CMPQ CX, R10
	JGT  back512One
	BACKLOAD(0, K2, Z16, Z17, Z18, Z19, Z20)
	BACKLOAD(64, K2, Z21, Z22, Z23, Z24, Z25)
	BACKLOAD(128, K2, Z26, Z27, Z28, Z29, Z30)
	BACKLOAD(192, K2, Z31, Z4, Z5, Z6, Z7)
	SUMSROWS

back512QuadRow:
	BACKV(0, K2, Z16, Z17, Z18, Z19, Z20)
	BACKV(64, K2, Z21, Z22, Z23, Z24, Z25)
	BACKV(128, K2, Z26, Z27, Z28, Z29, Z30)
	BACKV(192, K2, Z31, Z4, Z5, Z6, Z7)
	SUMSNEXT(back512QuadRow)
	ADDQ $256, AX
	JMP  back512Quad

back512One:
	CMPQ AX, R10
	JGE  back512Tail
	BACKLOAD(0, K2, Z16, Z17, Z18, Z19, Z20)
	SUMSROWS

back512OneRow:
	BACKV(0, K2, Z16, Z17, Z18, Z19, Z20)
	SUMSNEXT(back512OneRow)
	ADDQ $64, AX
	JMP  back512One

back512Tail:
	KORTESTW K1, K1
	JZ       back512Done
	BACKLOAD(0, K1, Z16, Z17, Z18, Z19, Z20)
	SUMSROWS

back512TailRow:
	BACKV(0, K1, Z16, Z17, Z18, Z19, Z20)
	SUMSNEXT(back512TailRow)

back512Done:
	VZEROUPPER
	RET

// func bnBackFused512(sg, sgx, dx, x, dy, scale, shift, a *float32, n, rows, ldx, ldy int, floor float32)
//
// bnBackSums512 and the a·g of bnBackApply512 in one pass, column-major:
// FUSEDV(off, k, sc, sh, ca, sg, sgx) does one vector of the row at R13
// (x; dx R11 bytes on) and R14 (dy): sg += g, sgx += g·x, dx += a·g.
#define FUSEDV(off, k, sc, sh, ca, sg, sgx) \
	VMOVUPS.Z   off(R13), k, Z0 \
	VMOVAPS     sh, Z1 \
	VFMADD231PS sc, Z0, Z1 \
	VCMPPS      $0x1e, Z15, Z1, k, K3 \
	VMOVUPS.Z   off(R14), K3, Z2 \
	VADDPS      Z2, sg, sg \
	VFMADD231PS Z0, Z2, sgx \
	VMOVUPS.Z   off(R13)(R11*1), k, Z3 \
	VFMADD231PS ca, Z2, Z3 \
	VMOVUPS     Z3, k, off(R13)(R11*1)

#define FUSEDSTORE(off, k, sg, sgx) \
	VMOVUPS sg, k, off(DI)(AX*1) \
	VMOVUPS sgx, k, off(R12)(AX*1)

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
	XORQ         AX, AX

fused512Quad:
	LEAQ 256(AX), CX
	CMPQ CX, R10
	JGT  fused512One
	FUSEDLOAD(0, K2, Z16, Z17, Z18, Z19, Z20)
	FUSEDLOAD(64, K2, Z21, Z22, Z23, Z24, Z25)
	FUSEDLOAD(128, K2, Z26, Z27, Z28, Z29, Z30)
	FUSEDLOAD(192, K2, Z31, Z4, Z5, Z6, Z7)
	SUMSROWS

fused512QuadRow:
	FUSEDV(0, K2, Z16, Z17, Z18, Z19, Z20)
	FUSEDV(64, K2, Z21, Z22, Z23, Z24, Z25)
	FUSEDV(128, K2, Z26, Z27, Z28, Z29, Z30)
	FUSEDV(192, K2, Z31, Z4, Z5, Z6, Z7)
	SUMSNEXT(fused512QuadRow)
	FUSEDSTORE(0, K2, Z19, Z20)
	FUSEDSTORE(64, K2, Z24, Z25)
	FUSEDSTORE(128, K2, Z29, Z30)
	FUSEDSTORE(192, K2, Z6, Z7)
	ADDQ $256, AX
	JMP  fused512Quad

fused512One:
	CMPQ AX, R10
	JGE  fused512Tail
	FUSEDLOAD(0, K2, Z16, Z17, Z18, Z19, Z20)
	SUMSROWS

fused512OneRow:
	FUSEDV(0, K2, Z16, Z17, Z18, Z19, Z20)
	SUMSNEXT(fused512OneRow)
	FUSEDSTORE(0, K2, Z19, Z20)
	ADDQ $64, AX
	JMP  fused512One

fused512Tail:
	KORTESTW K1, K1
	JZ       fused512Done
	FUSEDLOAD(0, K1, Z16, Z17, Z18, Z19, Z20)
	SUMSROWS

fused512TailRow:
	FUSEDV(0, K1, Z16, Z17, Z18, Z19, Z20)
	SUMSNEXT(fused512TailRow)
	FUSEDSTORE(0, K1, Z19, Z20)

fused512Done:
	VZEROUPPER
	RET
