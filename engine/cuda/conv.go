package cuda

import (
	"fmt"

	"github.com/condensenet/condensenet/engine"
)

// conv lowers a convolution to strided-batched GEMMs over its groups.
// A pointwise convolution (1×1, stride 1, no padding) multiplies the
// channels-last input in place; any other builds the patch matrix (im2col)
// in the backend's shared scratch first. With J = C/G·R·S, group g's
// output columns are out[:, g·K/G:(g+1)·K/G] = patches[:, g·J:(g+1)·J] · W_gᵀ,
// W_g being rows g·K/G… of PyTorch's (K, C/G, R, S) weights.
//
// Backward of a stride-1 convolution needs no input patches: with D the
// patches of dOut per input pixel (see the patches kernel), which have
// K·R·S columns instead of C·R·S, dIn_g += D_g · Wt_g and
// dWt_g = D_gᵀ · in_g, Wt being W with each group's block rearranged to
// (K/G·R·S, C/G). Other strides build the input patches again, take
// dW from them and scatter the patch gradient back with col2im.
type conv struct {
	b *Backend
	engine.ConvShape
	pointwise bool
}

func (b *Backend) NewConv(s engine.ConvShape) engine.Conv {
	if s.Int8 != nil {
		panic("cuda: no int8 convolutions; int8 inference runs on the CPU")
	}
	if s.Input != nil {
		return b.newAffineConv(s)
	}
	if s.G <= 0 || s.C%s.G != 0 || s.K%s.G != 0 || s.LdIn < s.C || s.LdOut < s.K || s.OH() <= 0 || s.OW() <= 0 || s.OverwriteDIn && s.LdIn != s.C {
		panic(fmt.Sprintf("cuda: invalid convolution %+v", s))
	}
	return &conv{b: b, ConvShape: s, pointwise: s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0}
}

func (c *conv) pixels() int { return c.N * c.OH() * c.OW() }
func (c *conv) j() int      { return c.C / c.G * c.R * c.S }

// patches returns the GEMM's left operand and its row stride.
func (c *conv) patches(in engine.View) (uintptr, int) {
	if c.pointwise {
		return ptr(in), c.LdIn
	}
	crs := c.C * c.R * c.S
	col := c.b.grow(&c.b.col, c.pixels()*crs)
	c.b.run("patches", c.pixels()*c.C, ptrArg(col), va(in), ia(c.N), ia(c.OH()), ia(c.OW()), ia(c.C), ia(c.H), ia(c.W),
		ia(c.R), ia(c.S), ia(c.Stride), ia(-c.Pad), ia(1), ia(c.LdIn))
	return col, crs
}

func (c *conv) Forward(out, in, w engine.View) {
	col, ld := c.patches(in)
	kg, j := c.K/c.G, c.j()
	c.b.matmul(matmul{transB: true, m: c.pixels(), n: kg, k: j,
		a: col, lda: ld, strideA: j, b: ptr(w), ldb: j, strideB: kg * j, c: ptr(out), ldc: c.LdOut, strideC: kg, batch: c.G})
}

func (c *conv) Backward(dIn, dW, dOut, in, w engine.View) {
	if !c.pointwise && c.Stride == 1 {
		c.backwardStride1(dIn, dW, dOut, in, w)
		return
	}
	if c.OverwriteDIn && !c.pointwise { // col2im adds up patches
		c.b.Zero(dIn, c.N*c.H*c.W*c.C)
	}
	col, ld := c.patches(in)
	kg, j, p := c.K/c.G, c.j(), c.pixels()
	// dW_g += dOut_gᵀ · patches_g
	c.b.matmul(matmul{transA: true, m: kg, n: j, k: p,
		a: ptr(dOut), lda: c.LdOut, strideA: kg, b: col, ldb: ld, strideB: j, c: ptr(dW), ldc: j, strideC: kg * j, batch: c.G, beta: 1})
	// dPatches_g = dOut_g · W_g, straight into dIn when pointwise
	dcol, ldd, beta := ptr(dIn), c.LdIn, c.dInBeta()
	if !c.pointwise {
		ldd, beta = c.C*c.R*c.S, 0
		dcol = c.b.grow(&c.b.dcol, p*ldd)
	}
	c.b.matmul(matmul{m: p, n: j, k: kg,
		a: ptr(dOut), lda: c.LdOut, strideA: kg, b: ptr(w), ldb: j, strideB: kg * j, c: dcol, ldc: ldd, strideC: j, batch: c.G, beta: beta})
	if !c.pointwise {
		c.b.run("col2im", c.N*c.H*c.W*c.C, va(dIn), ptrArg(dcol), ia(c.N), ia(c.H), ia(c.W), ia(c.C), ia(c.OH()), ia(c.OW()),
			ia(c.R), ia(c.S), ia(c.Stride), ia(c.Pad), ia(c.LdIn))
	}
}

// dInBeta is the beta of a GEMM writing dIn: 0 to overwrite it.
func (c *conv) dInBeta() float32 {
	if c.OverwriteDIn {
		return 0
	}
	return 1
}

func (c *conv) backwardStride1(dIn, dW, dOut, in, w engine.View) {
	b := c.b
	rs, cg, kg := c.R*c.S, c.C/c.G, c.K/c.G
	p, jd, nw := c.N*c.H*c.W, kg*rs, c.K*cg*rs // input pixels, D_g's columns, weights
	d := b.grow(&b.dcol, p*c.K*rs)
	b.run("patches", p*c.K, ptrArg(d), va(dOut), ia(c.N), ia(c.H), ia(c.W), ia(c.K), ia(c.OH()), ia(c.OW()),
		ia(c.R), ia(c.S), ia(1), ia(c.Pad), ia(-1), ia(c.LdOut))
	wt := b.grow(&b.wt, 2*nw)
	dwt := wt + uintptr(4*nw)
	b.run("weight_t", nw, ptrArg(wt), va(w), ia(c.K), ia(cg), ia(rs))
	// dIn_g += D_g · Wt_g
	b.matmul(matmul{m: p, n: cg, k: jd, a: d, lda: c.K * rs, strideA: jd, b: wt, ldb: cg, strideB: jd * cg,
		c: ptr(dIn), ldc: c.LdIn, strideC: cg, batch: c.G, beta: c.dInBeta()})
	// dWt_g = D_gᵀ · in_g, then dW += dWt rearranged
	b.matmul(matmul{transA: true, m: jd, n: cg, k: p, a: d, lda: c.K * rs, strideA: jd, b: ptr(in), ldb: c.LdIn, strideB: cg,
		c: dwt, ldc: cg, strideC: jd * cg, batch: c.G})
	b.run("weight_t_bwd", nw, va(dW), ptrArg(dwt), ia(c.K), ia(cg), ia(rs))
}

// affineConv applies its shape's Input transform with bn_apply into the
// backend's shared buffer, then convolves that.
type affineConv struct {
	b                 *Backend
	s                 engine.ConvShape
	inner             engine.Conv
	idx, scale, shift uintptr
}

func (b *Backend) newAffineConv(s engine.ConvShape) engine.Conv {
	a := s.Input
	if len(a.Scale) != s.C || len(a.Shift) != s.C || (a.Index != nil && len(a.Index) != s.C) {
		panic(fmt.Sprintf("cuda: input transform of %d, %d, %d channels for a convolution of %d", len(a.Scale), len(a.Shift), len(a.Index), s.C))
	}
	plain := s
	plain.Input, plain.LdIn = nil, s.C
	c := &affineConv{b: b, s: s, inner: b.NewConv(plain), scale: b.alloc(s.C), shift: b.alloc(s.C)}
	b.putFloats(c.scale, a.Scale)
	b.putFloats(c.shift, a.Shift)
	if a.Index != nil {
		engine.CheckIndices("cuda: input transform", a.Index, s.LdIn)
		c.idx = b.alloc(s.C)
		b.putInts(c.idx, a.Index)
	}
	return c
}

func (c *affineConv) Forward(out, in, w engine.View) {
	b, s := c.b, c.s
	p := s.N * s.H * s.W
	x := b.grow(&b.input, p*s.C)
	b.run("bn_apply", p*s.C, ptrArg(x), va(in), ptrArg(c.scale), ptrArg(c.shift), ptrArg(c.idx),
		ia(p), ia(s.C), ia(s.LdIn), ia(s.C), boolArg(s.Input.ReLU))
	c.inner.Forward(out, engine.View{T: &engine.Tensor{Len: p * s.C, Device: x}}, w)
}

func (c *affineConv) Backward(dIn, dW, dOut, in, w engine.View) {
	panic("cuda: an input transform is for inference only")
}
