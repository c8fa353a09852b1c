#include "textflag.h"

// Moving rows: runs of floats copied or added, gathers by index (with
// the input transform's affine map), strided copies.

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

// func affineRows512(dst *float32, dstStride int, src *float32, w, h int, scale, shift, floor float32)
// affineRowsGo: h rows of w floats, src's one after another and dst's
// dstStride apart, each max(x·scale + shift, floor), sixteen at a time,
// the last of a row under a mask. w, h ≥ 1.
TEXT ·affineRows512(SB), NOSPLIT, $0-52
	MOVQ         dst+0(FP), DI
	MOVQ         dstStride+8(FP), R8
	SHLQ         $2, R8
	MOVQ         src+16(FP), SI
	MOVQ         h+32(FP), R9
	VBROADCASTSS scale+40(FP), Z3
	VBROADCASTSS shift+44(FP), Z4
	VBROADCASTSS floor+48(FP), Z5

affineRow:
	MOVQ w+24(FP), CX
	MOVQ DI, R10

affineLoads:
	MOVQ        $0xffff, AX
	CMPQ        CX, $16
	JGE         affineWhole
	MOVQ        $1, AX
	SHLQ        CX, AX
	DECQ        AX

affineWhole:
	KMOVW       AX, K1
	VMOVUPS.Z   (SI), K1, Z0
	VFMADD213PS Z4, Z3, Z0
	VMAXPS      Z5, Z0, Z0
	VMOVUPS     Z0, K1, (R10)
	POPCNTL     AX, AX
	LEAQ        (SI)(AX*4), SI
	ADDQ        $64, R10
	SUBQ        $16, CX
	JG          affineLoads
	ADDQ        R8, DI
	DECQ        R9
	JNZ         affineRow
	VZEROUPPER
	RET
