package cuda

import (
	"fmt"
	"sort"
	"unsafe"
)

// hostGPU stands in for a GPU where there is none. Memory is host slices
// at made-up addresses with gaps between them; GEMMs run in plain Go as
// cuBLAS defines them (column-major), after the argument checks cuBLAS
// makes and a bounds check of every element they touch; kernel launches
// are checked against the kernel's signature and every pointer argument
// must point into an allocation, but only im2col and col2im run (in Go,
// from their definitions) so that convolutions can be compared with the
// CPU's. Everything else a kernel would compute is not computed.
type hostGPU struct {
	bases    []uintptr // sorted
	mem      map[uintptr][]float32
	next     uintptr
	launches map[string]int
	packed   packed
	limit    int // bytes it may hand out; 0: no limit
	used     int
}

func newHostGPU() *hostGPU {
	return &hostGPU{mem: map[uintptr][]float32{}, next: 0x7f00_0000_0000, launches: map[string]int{}}
}

func (h *hostGPU) alloc(bytes int) (uintptr, error) {
	if h.limit > 0 && h.used+bytes > h.limit {
		return 0, &DriverError{Call: "cuMemAlloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Desc: "out of memory"}
	}
	h.used += bytes
	p := h.next
	h.next += uintptr(bytes+4096) &^ 255 // a gap, 256-byte aligned like cuMemAlloc
	h.mem[p] = make([]float32, bytes/4)
	h.bases = append(h.bases, p)
	return p, nil
}

func (h *hostGPU) free(p uintptr) error {
	if _, ok := h.mem[p]; !ok {
		return fmt.Errorf("free of %#x, which is not an allocation", p)
	}
	delete(h.mem, p)
	i := sort.Search(len(h.bases), func(i int) bool { return h.bases[i] >= p })
	h.bases = append(h.bases[:i], h.bases[i+1:]...)
	return nil
}

// at resolves an address to its allocation's storage from that element on.
func (h *hostGPU) at(p uintptr) ([]float32, error) {
	i := sort.Search(len(h.bases), func(i int) bool { return h.bases[i] > p }) - 1
	if i < 0 {
		return nil, fmt.Errorf("address %#x below every allocation", p)
	}
	base := h.bases[i]
	m := h.mem[base]
	off := p - base
	if off%4 != 0 || off/4 >= uintptr(len(m)) {
		return nil, fmt.Errorf("address %#x is %d bytes into an allocation of %d", p, off, 4*len(m))
	}
	return m[off/4:], nil
}

func (h *hostGPU) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	m, err := h.at(dst)
	if err != nil || bytes/4 > len(m) {
		return fmt.Errorf("upload of %d bytes to %#x: %v", bytes, dst, err)
	}
	copy(m, unsafe.Slice((*float32)(src), bytes/4))
	return nil
}

func (h *hostGPU) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	m, err := h.at(src)
	if err != nil || bytes/4 > len(m) {
		return fmt.Errorf("download of %d bytes from %#x: %v", bytes, src, err)
	}
	copy(unsafe.Slice((*float32)(dst), bytes/4), m)
	return nil
}

func (h *hostGPU) zero(dst uintptr, n int) error {
	m, err := h.at(dst)
	if err != nil || n > len(m) {
		return fmt.Errorf("zero of %d floats at %#x: %v", n, dst, err)
	}
	clear(m[:n])
	return nil
}

func (h *hostGPU) sync() error { return nil }

func (h *hostGPU) launch(kernel string, grid, block [3]int, args []arg) error {
	if err := h.packed.pack(kernel, args); err != nil {
		return err
	}
	if t := block[0] * block[1] * block[2]; t < 1 || t > 1024 || grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || grid[1] > 65535 {
		return fmt.Errorf("%s: launch grid %v block %v", kernel, grid, block)
	}
	for i, a := range args {
		if a.kind != pPtr || a.bits == 0 && kernel == "bn_apply" { // bn_apply's index may be null
			continue
		}
		if _, err := h.at(uintptr(a.bits)); err != nil {
			return fmt.Errorf("%s argument %d: %v", kernel, i, err)
		}
	}
	h.launches[kernel]++
	switch kernel {
	case "im2col", "col2im":
		return h.patches(kernel, args)
	}
	return nil
}

// patches runs im2col or col2im as kernels.cu defines them.
func (h *hostGPU) patches(kernel string, args []arg) error {
	a, err := h.at(uintptr(args[0].bits))
	if err != nil {
		return err
	}
	b, err := h.at(uintptr(args[1].bits))
	if err != nil {
		return err
	}
	var x [11]int
	for i := range x {
		x[i] = int(int32(uint32(args[2+i].bits)))
	}
	n, ih, iw, c, oh, ow, R, S, stride, pad, ldIn := x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10]
	crs := c * R * S
	for bi := range n {
		for oy := range oh {
			for ox := range ow {
				q := (bi*oh+oy)*ow + ox
				for ch := range c {
					for r := range R {
						for s := range S {
							y, xx := oy*stride-pad+r, ox*stride-pad+s
							t := q*crs + ch*R*S + r*S + s
							inside := y >= 0 && y < ih && xx >= 0 && xx < iw
							src := ((bi*ih+y)*iw+xx)*ldIn + ch
							if kernel == "im2col" { // a = col, b = in
								a[t] = 0
								if inside {
									a[t] = b[src]
								}
							} else if inside { // a = dIn, b = dCol
								a[src] += b[t]
							}
						}
					}
				}
			}
		}
	}
	return nil
}

func (h *hostGPU) gemm(c gemmCall) error {
	rows := func(trans bool, m, k int) (int, int) { // stored shape, column-major
		if trans {
			return k, m
		}
		return m, k
	}
	ar, ac := rows(c.transA, c.m, c.k)
	br, bc := rows(c.transB, c.k, c.n)
	if c.m < 0 || c.n < 0 || c.k < 0 || c.lda < max(1, ar) || c.ldb < max(1, br) || c.ldc < max(1, c.m) || c.batch < 1 {
		return fmt.Errorf("CUBLAS_STATUS_INVALID_VALUE: %+v", c)
	}
	span := func(r, cols, ld, stride int) int { return (c.batch-1)*stride + (cols-1)*ld + r }
	A, errA := h.at(c.a)
	B, errB := h.at(c.b)
	C, errC := h.at(c.c)
	if errA != nil || errB != nil || errC != nil {
		return fmt.Errorf("gemm operands: %v %v %v", errA, errB, errC)
	}
	if span(ar, ac, c.lda, c.strideA) > len(A) || span(br, bc, c.ldb, c.strideB) > len(B) || span(c.m, c.n, c.ldc, c.strideC) > len(C) {
		return fmt.Errorf("gemm reads or writes past an allocation: %+v", c)
	}
	for bt := range c.batch {
		a, b, cc := A[bt*c.strideA:], B[bt*c.strideB:], C[bt*c.strideC:]
		for j := range c.n {
			for i := range c.m {
				var s float64
				for l := range c.k {
					ai, bi := i+l*c.lda, l+j*c.ldb
					if c.transA {
						ai = l + i*c.lda
					}
					if c.transB {
						bi = j + l*c.ldb
					}
					av, bv := a[ai], b[bi]
					s += float64(av) * float64(bv)
				}
				if c.beta != 0 { // cuBLAS does not read C when beta is 0
					s += float64(c.beta) * float64(cc[i+j*c.ldc])
				}
				cc[i+j*c.ldc] = float32(s)
			}
		}
	}
	return nil
}
