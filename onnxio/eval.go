package onnxio

import (
	"fmt"
	"math"

	"github.com/condensenet/condensenet/onnxio/onnxpb"
)

// A Tensor is a dense float32 tensor, row-major (NCHW for images).
type Tensor struct {
	Dims []int
	Data []float32
}

// value is a tensor during evaluation: float32 data, or int64 for indices
// and shapes.
type value struct {
	dims []int
	f    []float32
	i    []int64
	typ  onnxpb.TensorProto_DataType // an initializer's, for QuantizeLinear's zero point
}

func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// Eval runs m on the named inputs and returns its outputs. It implements
// the operators this project exports, plainly (no fusion, float64 sums),
// as a reference to check exports against; any other operator is an error.
func Eval(m *onnxpb.ModelProto, inputs map[string]Tensor) (map[string]Tensor, error) {
	if err := check(m); err != nil {
		return nil, err
	}
	inits, err := Initializers(m)
	if err != nil {
		return nil, err
	}
	env := map[string]value{}
	for name, t := range inits {
		env[name] = value{dims: t.Dims, f: t.Floats, i: t.Ints, typ: t.Type}
	}
	for name, t := range inputs {
		if size(t.Dims) != len(t.Data) {
			return nil, fmt.Errorf("onnxio: input %s: dims %v but %d values", name, t.Dims, len(t.Data))
		}
		env[name] = value{dims: t.Dims, f: t.Data}
	}
	for _, in := range m.GetGraph().GetInput() {
		if _, ok := env[in.GetName()]; !ok {
			return nil, fmt.Errorf("onnxio: input %q not given", in.GetName())
		}
	}
	// A value is dropped after the last node that reads it (unless it is
	// an output), so that memory holds the live values, not every one.
	nodes := m.GetGraph().GetNode()
	last := map[string]int{}
	for i, n := range nodes {
		for _, in := range n.GetInput() {
			last[in] = i
		}
	}
	for _, o := range m.GetGraph().GetOutput() {
		last[o.GetName()] = len(nodes)
	}
	for i, n := range nodes {
		args := make([]value, len(n.GetInput()))
		for k, in := range n.GetInput() {
			args[k] = env[in]
		}
		out, err := apply(n, args)
		if err != nil {
			return nil, fmt.Errorf("onnxio: node %s (%s): %w", n.GetName(), n.GetOpType(), err)
		}
		env[n.GetOutput()[0]] = out
		for _, in := range n.GetInput() {
			if last[in] == i {
				delete(env, in)
			}
		}
	}
	res := map[string]Tensor{}
	for _, o := range m.GetGraph().GetOutput() {
		v := env[o.GetName()]
		res[o.GetName()] = Tensor{Dims: v.dims, Data: v.f}
	}
	return res, nil
}

func attrs(n *onnxpb.NodeProto) map[string]*onnxpb.AttributeProto {
	m := map[string]*onnxpb.AttributeProto{}
	for _, a := range n.GetAttribute() {
		m[a.GetName()] = a
	}
	return m
}

func intAttr(a map[string]*onnxpb.AttributeProto, name string, def int64) int64 {
	if v, ok := a[name]; ok {
		return v.GetI()
	}
	return def
}

func intsAttr(a map[string]*onnxpb.AttributeProto, name string, def ...int64) []int64 {
	if v, ok := a[name]; ok {
		return v.GetInts()
	}
	return def
}

func apply(n *onnxpb.NodeProto, x []value) (value, error) {
	a := attrs(n)
	need := func(k int) error {
		if len(x) < k {
			return fmt.Errorf("%d inputs, want %d", len(x), k)
		}
		for i := range k {
			if x[i].f == nil && x[i].i == nil {
				return fmt.Errorf("input %d is empty", i)
			}
		}
		return nil
	}
	switch n.GetOpType() {
	case "Conv":
		if err := need(2); err != nil {
			return value{}, err
		}
		return conv(x, a)
	case "BatchNormalization":
		if err := need(5); err != nil {
			return value{}, err
		}
		eps := float64(1e-5)
		if v, ok := a["epsilon"]; ok {
			eps = float64(v.GetF())
		}
		in, c := x[0], x[0].dims[1]
		hw := size(in.dims[2:])
		out := make([]float32, len(in.f))
		for i := range out {
			ch := i / hw % c
			s := float64(x[1].f[ch]) / math.Sqrt(float64(x[4].f[ch])+eps)
			out[i] = float32((float64(in.f[i])-float64(x[3].f[ch]))*s + float64(x[2].f[ch]))
		}
		return value{dims: in.dims, f: out}, nil
	case "QuantizeLinear", "DequantizeLinear":
		if err := need(2); err != nil {
			return value{}, err
		}
		return quantizeLinear(n.GetOpType() == "QuantizeLinear", x, int(intAttr(a, "axis", 1)))
	case "Relu":
		out := make([]float32, len(x[0].f))
		for i, v := range x[0].f {
			out[i] = max(v, 0)
		}
		return value{dims: x[0].dims, f: out}, nil
	case "Sub", "Div":
		return broadcast(n.GetOpType(), x[0], x[1])
	case "Gather":
		if err := need(2); err != nil {
			return value{}, err
		}
		axis := int(intAttr(a, "axis", 0))
		data, idx := x[0], x[1].i
		if axis != 1 || len(data.dims) < 2 || len(x[1].dims) != 1 {
			return value{}, fmt.Errorf("only Gather on axis 1 with 1-D indices is supported")
		}
		outer, inner, c := data.dims[0], size(data.dims[2:]), data.dims[1]
		out := make([]float32, outer*len(idx)*inner)
		for o := range outer {
			for j, k := range idx {
				if k < 0 || int(k) >= c {
					return value{}, fmt.Errorf("index %d out of range %d", k, c)
				}
				copy(out[(o*len(idx)+j)*inner:], data.f[(o*c+int(k))*inner:(o*c+int(k)+1)*inner])
			}
		}
		dims := append([]int{outer, len(idx)}, data.dims[2:]...)
		return value{dims: dims, f: out}, nil
	case "Reshape":
		if err := need(2); err != nil {
			return value{}, err
		}
		dims := make([]int, len(x[1].i))
		infer := -1
		for k, d := range x[1].i {
			switch {
			case d == 0:
				dims[k] = x[0].dims[k] // 0 copies the input's dimension
			case d == -1:
				infer = k
			default:
				dims[k] = int(d)
			}
		}
		if infer >= 0 {
			dims[infer] = 1
			dims[infer] = len(x[0].f) / size(dims)
		}
		if size(dims) != len(x[0].f) {
			return value{}, fmt.Errorf("cannot reshape %v to %v", x[0].dims, x[1].i)
		}
		return value{dims: dims, f: x[0].f}, nil
	case "Transpose":
		return transpose(x[0], intsAttr(a, "perm"))
	case "Concat":
		return concat(x, int(intAttr(a, "axis", 0)))
	case "AveragePool":
		k, s := intsAttr(a, "kernel_shape"), intsAttr(a, "strides", 1, 1)
		if len(k) != 2 || len(s) != 2 {
			return value{}, fmt.Errorf("only 2-D pooling is supported")
		}
		return avgPool(x[0], int(k[0]), int(k[1]), int(s[0]), int(s[1])), nil
	case "GlobalAveragePool":
		in := x[0]
		return avgPool(in, in.dims[2], in.dims[3], 1, 1), nil
	case "Flatten":
		axis := int(intAttr(a, "axis", 1))
		return value{dims: []int{size(x[0].dims[:axis]), size(x[0].dims[axis:])}, f: x[0].f}, nil
	case "Gemm":
		return gemm(x, a)
	}
	return value{}, fmt.Errorf("operator not supported by this evaluator")
}

func conv(x []value, a map[string]*onnxpb.AttributeProto) (value, error) {
	in, w := x[0], x[1]
	g := int(intAttr(a, "group", 1))
	pads := intsAttr(a, "pads", 0, 0, 0, 0)
	strides := intsAttr(a, "strides", 1, 1)
	n, c, h, wd := in.dims[0], in.dims[1], in.dims[2], in.dims[3]
	k, cg, r, s := w.dims[0], w.dims[1], w.dims[2], w.dims[3]
	if c != cg*g || k%g != 0 {
		return value{}, fmt.Errorf("input has %d channels, weights %v with %d groups", c, w.dims, g)
	}
	pt, pl, st, sl := int(pads[0]), int(pads[1]), int(strides[0]), int(strides[1])
	oh := (h+int(pads[0]+pads[2])-r)/st + 1
	ow := (wd+int(pads[1]+pads[3])-s)/sl + 1
	out := make([]float32, n*k*oh*ow)
	kg := k / g
	for b := range n {
		for o := range k {
			grp := o / kg
			for y := range oh {
				for xx := range ow {
					var sum float64
					if len(x) > 2 && x[2].f != nil {
						sum = float64(x[2].f[o])
					}
					for ci := range cg {
						for dy := range r {
							iy := y*st - pt + dy
							if iy < 0 || iy >= h {
								continue
							}
							for dx := range s {
								ix := xx*sl - pl + dx
								if ix < 0 || ix >= wd {
									continue
								}
								sum += float64(w.f[((o*cg+ci)*r+dy)*s+dx]) * float64(in.f[((b*c+grp*cg+ci)*h+iy)*wd+ix])
							}
						}
					}
					out[((b*k+o)*oh+y)*ow+xx] = float32(sum)
				}
			}
		}
	}
	return value{dims: []int{n, k, oh, ow}, f: out}, nil
}

func avgPool(in value, kh, kw, sh, sw int) value {
	n, c, h, w := in.dims[0], in.dims[1], in.dims[2], in.dims[3]
	oh, ow := (h-kh)/sh+1, (w-kw)/sw+1
	out := make([]float32, n*c*oh*ow)
	for p := range n * c {
		for y := range oh {
			for x := range ow {
				var s float64
				for dy := range kh {
					for dx := range kw {
						s += float64(in.f[(p*h+y*sh+dy)*w+x*sw+dx])
					}
				}
				out[(p*oh+y)*ow+x] = float32(s / float64(kh*kw))
			}
		}
	}
	return value{dims: []int{n, c, oh, ow}, f: out}
}

func transpose(in value, perm []int64) (value, error) {
	if len(perm) != len(in.dims) {
		return value{}, fmt.Errorf("perm %v for %d dimensions", perm, len(in.dims))
	}
	dims := make([]int, len(perm))
	for k, p := range perm {
		dims[k] = in.dims[p]
	}
	stride := make([]int, len(in.dims)) // of the input
	st := 1
	for k := len(in.dims) - 1; k >= 0; k-- {
		stride[k] = st
		st *= in.dims[k]
	}
	out := make([]float32, len(in.f))
	idx := make([]int, len(dims))
	for i := range out {
		src := 0
		for k, p := range perm {
			src += idx[k] * stride[p]
		}
		out[i] = in.f[src]
		for k := len(idx) - 1; k >= 0; k-- { // next output index
			if idx[k]++; idx[k] < dims[k] {
				break
			}
			idx[k] = 0
		}
	}
	return value{dims: dims, f: out}, nil
}

func concat(x []value, axis int) (value, error) {
	dims := append([]int(nil), x[0].dims...)
	dims[axis] = 0
	for _, v := range x {
		dims[axis] += v.dims[axis]
	}
	outer, inner := size(dims[:axis]), size(dims[axis+1:])
	out := make([]float32, 0, size(dims))
	for o := range outer {
		for _, v := range x {
			n := v.dims[axis] * inner
			out = append(out, v.f[o*n:(o+1)*n]...)
		}
	}
	return value{dims: dims, f: out}, nil
}

func gemm(x []value, a map[string]*onnxpb.AttributeProto) (value, error) {
	A, B := x[0], x[1]
	if intAttr(a, "transA", 0) != 0 || intAttr(a, "transB", 0) != 1 {
		return value{}, fmt.Errorf("only transA=0, transB=1 is supported")
	}
	m, k, n := A.dims[0], A.dims[1], B.dims[0]
	if B.dims[1] != k {
		return value{}, fmt.Errorf("A %v and B %v do not fit", A.dims, B.dims)
	}
	out := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(A.f[i*k+p]) * float64(B.f[j*k+p])
			}
			if len(x) > 2 {
				s += float64(x[2].f[j%len(x[2].f)])
			}
			out[i*n+j] = float32(s)
		}
	}
	return value{dims: []int{m, n}, f: out}, nil
}

// broadcast applies Sub or Div with a per-channel (1, C, 1, 1) right side.
func broadcast(op string, l, r value) (value, error) {
	if len(l.dims) != 4 || size(r.dims) != l.dims[1] {
		return value{}, fmt.Errorf("only a per-channel right operand is supported")
	}
	hw, c := l.dims[2]*l.dims[3], l.dims[1]
	out := make([]float32, len(l.f))
	for i, v := range l.f {
		if op == "Sub" {
			out[i] = v - r.f[i/hw%c]
		} else {
			out[i] = v / r.f[i/hw%c]
		}
	}
	return value{dims: l.dims, f: out}, nil
}

// quantizeLinear is QuantizeLinear (saturate(round(x / scale) + zero
// point), ties to even, in the zero point's type: uint8 when there is
// none) or DequantizeLinear ((x - zero point) · scale), with one scale or
// one per index of axis. Quantised values are kept as float32 integers.
func quantizeLinear(quantize bool, x []value, axis int) (value, error) {
	in, scale := x[0], x[1].f
	var zp []int64
	typ := onnxpb.TensorProto_UINT8
	if len(x) > 2 {
		zp, typ = x[2].i, x[2].typ
	}
	if len(scale) == 0 || zp != nil && len(zp) != len(scale) {
		return value{}, fmt.Errorf("%d scales and %d zero points", len(scale), len(zp))
	}
	inner, per := 1, 1 // elements per index of axis, and indices
	if len(scale) > 1 {
		if axis < 0 || axis >= len(in.dims) || in.dims[axis] != len(scale) {
			return value{}, fmt.Errorf("%d scales along axis %d of %v", len(scale), axis, in.dims)
		}
		inner, per = size(in.dims[axis+1:]), len(scale)
	}
	n := max(len(in.f), len(in.i))
	out := make([]float32, n)
	lo, hi, _ := integerRange(typ)
	for j := range n {
		c := j / inner % per
		z := 0.0
		if zp != nil {
			z = float64(zp[c])
		}
		var v float64
		if in.f != nil {
			v = float64(in.f[j])
		} else {
			v = float64(in.i[j])
		}
		if quantize {
			q := math.RoundToEven(float64(float32(v)/scale[c])) + z
			out[j] = float32(min(max(q, float64(lo)), float64(hi)))
		} else {
			out[j] = float32((v - z) * float64(scale[c]))
		}
	}
	return value{dims: in.dims, f: out}, nil
}
