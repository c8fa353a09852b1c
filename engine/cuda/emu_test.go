package cuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// emuGPU stands in for a GPU where there is none. kernels.cu itself is
// compiled as C++ by g++ against a small emulation of CUDA's thread model
// (blocks run one after another; a block's threads run as fibers that meet
// at __syncthreads when the kernel synchronises, one after another
// otherwise) and loaded through purego like the real libraries.
// GEMMs run as cuBLAS defines them, in plain loops. On the Go side every
// call is checked first: each launch's arguments against the kernel's C
// signature, each pointer argument against the allocations, each GEMM
// against cuBLAS's argument rules and every element it touches against
// its operands' allocations.
//
// What it cannot show: races between threads of a real GPU, launch limits
// of real hardware, and the PTX that NVRTC makes (TestKernelsCompile
// compiles that).
type emuGPU struct {
	lib      *emuLib
	bases    []uintptr // sorted
	sizes    map[uintptr]int
	launches map[string]int
	fault    string // a kernel whose launch makes the next sync fail, as a GPU fault does
	faulted  bool
	limit    int // bytes it may hand out; 0: no limit
	used     int
}

// emuLib is the compiled emulation, built once per test binary.
type emuLib struct {
	alloc  func(bytes uint64) uintptr
	free   func(p uintptr)
	in     func(dst uintptr, src unsafe.Pointer, bytes uint64)
	out    func(dst unsafe.Pointer, src uintptr, bytes uint64)
	zero   func(p uintptr, n uint64)
	launch func(kernel string, args unsafe.Pointer, gx, gy, gz, bx, by, bz uint32) int32
	gemm   func(ta, tb, m, n, k int32, a uintptr, lda int32, sa int64, b uintptr, ldb int32, sb int64,
		beta float32, c uintptr, ldc int32, sc int64, batch int32)
}

var (
	emuOnce sync.Once
	emu     *emuLib
	emuErr  error
)

// newEmuGPU returns the emulated device, or skips without g++ (fails
// under CI, which installs it).
func newEmuGPU(t testing.TB) *emuGPU {
	t.Helper()
	emuOnce.Do(func() { emu, emuErr = buildEmu() })
	if emuErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the emulated GPU is required under CI: %v", emuErr)
		}
		t.Skipf("no emulated GPU (g++ needed): %v", emuErr)
	}
	return &emuGPU{lib: emu, sizes: map[uintptr]int{}, launches: map[string]int{}}
}

func buildEmu() (*emuLib, error) {
	so, err := compileLib("libemu.so", emuSource())
	if err != nil {
		return nil, err
	}
	h, err := dlopen(so)
	if err != nil {
		return nil, err
	}
	l := new(emuLib)
	return l, bind(h, so, map[string]any{"emu_alloc": &l.alloc, "emu_free": &l.free, "emu_in": &l.in, "emu_out": &l.out,
		"emu_zero": &l.zero, "emu_launch": &l.launch, "emu_gemm": &l.gemm})
}

// compileLib builds C++ source into a shared library named name in a
// fresh temporary folder. -Bsymbolic binds the library's calls to its own
// functions: several of these libraries, with the same kernel names, live
// in one process.
func compileLib(name, src string) (string, error) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "cuda-emu-")
	if err != nil {
		return "", err
	}
	cpp, so := filepath.Join(dir, "src.cpp"), filepath.Join(dir, name)
	if err := os.WriteFile(cpp, []byte(src), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command(gxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-Wl,-Bsymbolic", "-o", so, cpp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("g++: %v\n%s", err, out)
	}
	return so, nil
}

// emuSource is kernels.cu behind a header that gives host C++ CUDA's
// names, then one dispatcher that unpacks cuLaunchKernel-style arguments
// for each kernel.
func emuSource() string {
	var b strings.Builder
	b.WriteString(`#include <algorithm>
#include <cmath>
#include <functional>
#include <ucontext.h>
#include <cstdlib>
#include <cstring>
#include <vector>
using std::max;
using std::min;
struct dim3 { unsigned x, y, z; };
static dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
// A block's threads run as fibers on one OS thread: __syncthreads hands
// control back to run, which resumes every thread in turn, so each runs to
// its next barrier before any passes it.
static ucontext_t scheduler;
static std::vector<ucontext_t> fibers;
static std::vector<std::vector<char>> stacks;
static std::vector<char> finished;
static unsigned current_fiber;
static std::function<void()> fiber_body;
static void __syncthreads() { swapcontext(&fibers[current_fiber], &scheduler); }
static void fiber_main() { fiber_body(); finished[current_fiber] = 1; }
static float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; } // one thread runs at a time
`)
	b.WriteString("#line 1 \"kernels.cu\"\n")
	b.WriteString(kernelSource)
	b.WriteString(`
// run executes a grid, block after block. Without threaded, a block's
// threads run one after another; with it, as fibers (see __syncthreads).
template <class F> static void run(dim3 g, dim3 bl, bool threaded, F f) {
	gridDim = g, blockDim = bl;
	unsigned nt = bl.x * bl.y * bl.z;
	auto at = [&](unsigned t) { threadIdx = {t % bl.x, t / bl.x % bl.y, t / (bl.x * bl.y)}; };
	if (threaded) {
		fiber_body = f;
		fibers.resize(nt);
		stacks.resize(nt);
		finished.assign(nt, 0);
	}
	for (unsigned z = 0; z < g.z; z++)
		for (unsigned y = 0; y < g.y; y++)
			for (unsigned x = 0; x < g.x; x++) {
				blockIdx = {x, y, z};
				if (!threaded) {
					for (unsigned t = 0; t < nt; t++) at(t), f();
					continue;
				}
				for (unsigned t = 0; t < nt; t++) {
					stacks[t].resize(1 << 16);
					getcontext(&fibers[t]);
					fibers[t].uc_stack.ss_sp = stacks[t].data();
					fibers[t].uc_stack.ss_size = stacks[t].size();
					fibers[t].uc_link = &scheduler;
					makecontext(&fibers[t], fiber_main, 0);
					finished[t] = 0;
				}
				for (bool left = true; left;) {
					left = false;
					for (unsigned t = 0; t < nt; t++)
						if (!finished[t]) {
							current_fiber = t, at(t);
							swapcontext(&scheduler, &fibers[t]);
							left = left || !finished[t];
						}
				}
			}
}

extern "C" void* emu_alloc(unsigned long long n) { return calloc(n, 1); }
extern "C" void emu_free(void* p) { free(p); }
extern "C" void emu_in(void* dst, const void* src, unsigned long long n) { memcpy(dst, src, n); }
extern "C" void emu_out(void* dst, const void* src, unsigned long long n) { memcpy(dst, src, n); }
extern "C" void emu_zero(float* p, unsigned long long n) { memset(p, 0, n * 4); }

// Column-major C = op(A)·op(B) + beta·C over batch matrices, as cuBLAS;
// C is not read when beta is 0.
extern "C" void emu_gemm(int ta, int tb, int m, int n, int k, const float* a, int lda, long long sa,
                         const float* b, int ldb, long long sb, float beta, float* c, int ldc, long long sc, int batch) {
	for (int q = 0; q < batch; q++)
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++) {
				double s = 0;
				for (int l = 0; l < k; l++)
					s += (double)a[q * sa + (ta ? l + (long long)i * lda : i + (long long)l * lda)] *
					     b[q * sb + (tb ? j + (long long)l * ldb : l + (long long)j * ldb)];
				float* y = &c[q * sc + i + (long long)j * ldc];
				*y = beta == 0 ? (float)s : (float)(s + (double)beta * *y);
			}
}

extern "C" int emu_launch(const char* name, void** a, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
	dim3 g = {gx, gy, gz}, bl = {bx, by, bz};
`)
	syncing := syncingKernels(kernelSource)
	names := make([]string, 0, len(signatures))
	for name := range signatures {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		types := paramTypes(kernelSource, name)
		var args []string
		for i, ty := range types {
			args = append(args, fmt.Sprintf("*(%s*)a[%d]", ty, i))
		}
		fmt.Fprintf(&b, "\tif (!strcmp(name, %q)) { run(g, bl, %v, [&] { %s(%s); }); return 0; }\n",
			name, syncing[name], name, strings.Join(args, ", "))
	}
	b.WriteString("\treturn 1;\n}\n")
	return b.String()
}

// paramTypes returns the C types of a kernel's parameters.
func paramTypes(src, kernel string) []string {
	m := regexp.MustCompile(`extern "C" __global__ void ` + kernel + `\(([^)]*)\)`).FindStringSubmatch(src)
	var out []string
	for _, decl := range strings.Split(m[1], ",") {
		f := strings.Fields(decl)
		out = append(out, strings.Join(f[:len(f)-1], " "))
	}
	return out
}

// syncingKernels finds the kernels that call __syncthreads, directly or
// through a __device__ function: those need their threads run together.
func syncingKernels(src string) map[string]bool {
	def := regexp.MustCompile(`(?m)^(?:extern "C" __global__|__device__)[^(]*?(\w+)\(`)
	locs := def.FindAllStringSubmatchIndex(src, -1)
	bodies := map[string]string{}
	for i, l := range locs {
		end := len(src)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		bodies[src[l[2]:l[3]]] = src[l[0]:end]
	}
	var syncers []string
	for name, body := range bodies {
		if strings.Contains(body, "__syncthreads()") {
			syncers = append(syncers, name)
		}
	}
	out := map[string]bool{}
	for name := range signatures {
		for _, s := range syncers {
			if strings.Contains(bodies[name], s+"(") || strings.Contains(bodies[name], "__syncthreads()") {
				out[name] = true
			}
		}
	}
	return out
}

func (h *emuGPU) alloc(bytes int) (uintptr, error) {
	if h.limit > 0 && h.used+bytes > h.limit {
		return 0, &DriverError{Call: "cuMemAlloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Desc: "out of memory"}
	}
	p := h.lib.alloc(uint64(bytes))
	h.used += bytes
	h.sizes[p] = bytes
	i := sort.Search(len(h.bases), func(i int) bool { return h.bases[i] > p })
	h.bases = append(h.bases[:i], append([]uintptr{p}, h.bases[i:]...)...)
	return p, nil
}

func (h *emuGPU) free(p uintptr) error {
	if _, ok := h.sizes[p]; !ok {
		return fmt.Errorf("free of %#x, which is not an allocation", p)
	}
	h.lib.free(p)
	delete(h.sizes, p)
	i := sort.Search(len(h.bases), func(i int) bool { return h.bases[i] >= p })
	h.bases = append(h.bases[:i], h.bases[i+1:]...)
	return nil
}

// room returns how many bytes lie from p to the end of its allocation.
func (h *emuGPU) room(p uintptr) (int, error) {
	i := sort.Search(len(h.bases), func(i int) bool { return h.bases[i] > p }) - 1
	if i < 0 || int(p-h.bases[i]) >= h.sizes[h.bases[i]] || (p-h.bases[i])%4 != 0 {
		return 0, fmt.Errorf("address %#x is not inside an allocation", p)
	}
	return h.sizes[h.bases[i]] - int(p-h.bases[i]), nil
}

func (h *emuGPU) span(p uintptr, bytes int, what string) error {
	n, err := h.room(p)
	if err == nil && bytes > n {
		err = fmt.Errorf("%d bytes at %#x, %d left in its allocation", bytes, p, n)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return nil
}

func (h *emuGPU) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	if err := h.span(dst, bytes, "upload"); err != nil {
		return err
	}
	h.lib.in(dst, src, uint64(bytes))
	return nil
}

func (h *emuGPU) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	if err := h.span(src, bytes, "download"); err != nil {
		return err
	}
	h.lib.out(dst, src, uint64(bytes))
	return nil
}

func (h *emuGPU) zero(dst uintptr, n int) error {
	if err := h.span(dst, 4*n, "zero"); err != nil {
		return err
	}
	h.lib.zero(dst, uint64(n))
	return nil
}

func (h *emuGPU) sync() error {
	if h.faulted {
		return &DriverError{Call: "cuStreamSynchronize", Code: 700, Name: "CUDA_ERROR_ILLEGAL_ADDRESS", Desc: "an illegal memory access was encountered"}
	}
	return nil
}

func (h *emuGPU) launch(kernel string, grid, block [3]int, p *packed) error {
	var args []arg
	for i, kind := range signatures[kernel] {
		args = append(args, arg{kind, p.vals[i]})
	}
	if t := block[0] * block[1] * block[2]; t < 1 || t > 1024 || grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || grid[1] > 65535 {
		return fmt.Errorf("%s: launch grid %v block %v", kernel, grid, block)
	}
	for i, a := range args {
		if a.kind != pPtr || a.bits == 0 && kernel == "bn_apply" { // bn_apply's index may be null
			continue
		}
		if _, err := h.room(uintptr(a.bits)); err != nil {
			return fmt.Errorf("%s argument %d: %v", kernel, i, err)
		}
	}
	h.launches[kernel]++
	h.faulted = h.faulted || kernel == h.fault
	if h.lib.launch(kernel, unsafe.Pointer(&p.ptrs[0]), uint32(grid[0]), uint32(grid[1]), uint32(grid[2]),
		uint32(block[0]), uint32(block[1]), uint32(block[2])) != 0 {
		return fmt.Errorf("the emulation has no kernel %s", kernel)
	}
	return nil
}

func (h *emuGPU) gemm(c gemmCall) error {
	stored := func(trans bool, m, k int) (int, int) { // rows, columns, column-major
		if trans {
			return k, m
		}
		return m, k
	}
	ar, ac := stored(c.transA, c.m, c.k)
	br, bc := stored(c.transB, c.k, c.n)
	if c.m < 0 || c.n < 0 || c.k < 0 || c.lda < max(1, ar) || c.ldb < max(1, br) || c.ldc < max(1, c.m) || c.batch < 1 {
		return fmt.Errorf("CUBLAS_STATUS_INVALID_VALUE: %+v", c)
	}
	extent := func(r, cols, ld, stride int) int { return 4 * ((c.batch-1)*stride + (cols-1)*ld + r) }
	for _, op := range []struct {
		p     uintptr
		bytes int
		name  string
	}{{c.a, extent(ar, ac, c.lda, c.strideA), "A"}, {c.b, extent(br, bc, c.ldb, c.strideB), "B"}, {c.c, extent(c.m, c.n, c.ldc, c.strideC), "C"}} {
		if err := h.span(op.p, op.bytes, "gemm "+op.name); err != nil {
			return fmt.Errorf("%v (%+v)", err, c)
		}
	}
	h.faulted = h.faulted || h.fault == "gemm"
	b2i := func(b bool) int32 {
		if b {
			return 1
		}
		return 0
	}
	h.lib.gemm(b2i(c.transA), b2i(c.transB), int32(c.m), int32(c.n), int32(c.k), c.a, int32(c.lda), int64(c.strideA),
		c.b, int32(c.ldb), int64(c.strideB), c.beta, c.c, int32(c.ldc), int64(c.strideC), int32(c.batch))
	return nil
}
