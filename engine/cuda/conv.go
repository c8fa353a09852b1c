package cuda

import (
	"fmt"

	"github.com/condensenet/condensenet/engine"
)

// conv lowers a convolution to one strided-batched GEMM over its groups.
// A pointwise convolution (1×1, stride 1, no padding) multiplies the
// channels-last input in place; any other builds the patch matrix (im2col)
// in the backend's shared scratch first. With J = C/G·R·S, group g's
// output columns are out[:, g·K/G:(g+1)·K/G] = patches[:, g·J:(g+1)·J] · W_gᵀ,
// W_g being rows g·K/G… of PyTorch's (K, C/G, R, S) weights.
type conv struct {
	b *Backend
	engine.ConvShape
	pointwise bool
}

func (b *Backend) NewConv(s engine.ConvShape) engine.Conv {
	if s.G <= 0 || s.C%s.G != 0 || s.K%s.G != 0 || s.LdIn < s.C || s.LdOut < s.K || s.OH() <= 0 || s.OW() <= 0 {
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
	c.b.run("im2col", c.pixels()*crs, ptrArg(col), va(in), ia(c.N), ia(c.H), ia(c.W), ia(c.C), ia(c.OH()), ia(c.OW()),
		ia(c.R), ia(c.S), ia(c.Stride), ia(c.Pad), ia(c.LdIn))
	return col, crs
}

func (c *conv) Forward(out, in, w engine.View) {
	col, ld := c.patches(in)
	kg, j := c.K/c.G, c.j()
	c.b.matmul(matmul{transB: true, m: c.pixels(), n: kg, k: j,
		a: col, lda: ld, strideA: j, b: ptr(w), ldb: j, strideB: kg * j, c: ptr(out), ldc: c.LdOut, strideC: kg, batch: c.G})
}

func (c *conv) Backward(dIn, dW, dOut, in, w engine.View) {
	col, ld := c.patches(in)
	kg, j, p := c.K/c.G, c.j(), c.pixels()
	// dW_g += dOut_gᵀ · patches_g
	c.b.matmul(matmul{transA: true, m: kg, n: j, k: p,
		a: ptr(dOut), lda: c.LdOut, strideA: kg, b: col, ldb: ld, strideB: j, c: ptr(dW), ldc: j, strideC: kg * j, batch: c.G, beta: 1})
	// dPatches_g = dOut_g · W_g, straight into dIn when pointwise
	dcol, ldd, beta := ptr(dIn), c.LdIn, float32(1)
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
