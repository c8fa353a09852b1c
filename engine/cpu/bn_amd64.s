#include "textflag.h"

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

// func bnBackSumsAVX2(sg, sgx, x, dy, y *float32, n, rows, ldx, ldy int, floor float32)
// g = dy where y > floor, else 0; sg += g; sgx += g·x.
TEXT ·bnBackSumsAVX2(SB), NOSPLIT, $0-76
	MOVQ         sg+0(FP), DI
	MOVQ         sgx+8(FP), R11
	MOVQ         x+16(FP), SI
	MOVQ         dy+24(FP), BX
	MOVQ         y+32(FP), R12
	MOVQ         n+40(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+48(FP), DX
	MOVQ         ldx+56(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+64(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+72(FP), Y15

sumsRow:
	XORQ AX, AX

sumsCol:
	VMOVUPS     (R12)(AX*1), Y3
	VCMPPS      $0x1e, Y15, Y3, Y4       // y > floor
	VANDPS      (BX)(AX*1), Y4, Y1       // g
	VADDPS      (DI)(AX*1), Y1, Y5
	VMOVUPS     Y5, (DI)(AX*1)
	VMOVUPS     (R11)(AX*1), Y6
	VFMADD231PS (SI)(AX*1), Y1, Y6
	VMOVUPS     Y6, (R11)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         sumsCol
	ADDQ        R8, SI
	ADDQ        R9, BX
	ADDQ        R9, R12
	DECQ        DX
	JNZ         sumsRow
	VZEROUPPER
	RET

// func bnBackApplyAVX2(dx, x, dy, y, a, b, c *float32, n, rows, ldx, ldy int, floor float32)
// g = dy where y > floor, else 0; dx += a·g + b·x + c.
TEXT ·bnBackApplyAVX2(SB), NOSPLIT, $0-92
	MOVQ         dx+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         dy+16(FP), BX
	MOVQ         y+24(FP), R12
	MOVQ         a+32(FP), R11
	MOVQ         b+40(FP), R13
	MOVQ         c+48(FP), CX
	MOVQ         n+56(FP), R10
	SHLQ         $2, R10
	MOVQ         rows+64(FP), DX
	MOVQ         ldx+72(FP), R8
	SHLQ         $2, R8
	MOVQ         ldy+80(FP), R9
	SHLQ         $2, R9
	VBROADCASTSS floor+88(FP), Y15

backRow:
	XORQ AX, AX

backCol:
	VMOVUPS     (R12)(AX*1), Y3
	VCMPPS      $0x1e, Y15, Y3, Y4
	VANDPS      (BX)(AX*1), Y4, Y1       // g
	VMOVUPS     (DI)(AX*1), Y0
	VADDPS      (CX)(AX*1), Y0, Y0
	VFMADD231PS (R11)(AX*1), Y1, Y0
	VMOVUPS     (SI)(AX*1), Y2
	VFMADD231PS (R13)(AX*1), Y2, Y0
	VMOVUPS     Y0, (DI)(AX*1)
	ADDQ        $32, AX
	CMPQ        AX, R10
	JLT         backCol
	ADDQ        R8, SI
	ADDQ        R8, DI
	ADDQ        R9, BX
	ADDQ        R9, R12
	DECQ        DX
	JNZ         backRow
	VZEROUPPER
	RET
