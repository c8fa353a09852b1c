package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// stand-in libcuda.so.1 and libcublas.so.12, so that Open and everything
// in device.go run without a GPU: the real purego bindings, the real NVRTC
// and PTX cache, against C functions written from the CUDA and cuBLAS
// prototypes (CUresult, CUdeviceptr, size_t, long long strides, float
// pointers for alpha and beta). They check what a driver would: that the
// calling thread has the context current (the OS-thread lock), that the
// stream is the one created, that the module is NUL-terminated PTX and that
// every function asked for is an .entry in it. Memory is host memory; a
// launch runs the kernel's C++ build (emuSource) by the name the module
// gave out; a GEMM runs emu_gemm. What is not a driver's: timing, real
// concurrency, the PTX itself (it is checked, not executed).
const driverSource = `
#include <map>
#include <set>
#include <string>
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100,
       INVALID_IMAGE = 200, INVALID_CONTEXT = 201, NO_BINARY_FOR_GPU = 209, INVALID_HANDLE = 400, NOT_FOUND = 500 };
static bool inited;
static int the_ctx, the_stream, the_module;
static thread_local void* current;
static std::set<std::string> entries;
static std::map<const void*, std::string> functions;
static std::set<std::string> names; // a function handle points at its name; set elements stay put

static CUresult need_ctx() { return !inited ? NOT_INITIALIZED : current != &the_ctx ? INVALID_CONTEXT : OK; }
static CUresult need(void* stream) { CUresult r = need_ctx(); return r ? r : stream != &the_stream ? INVALID_HANDLE : OK; }

extern "C" {
CUresult cuInit(unsigned flags) { if (flags) return INVALID_VALUE; inited = true; return getenv("FAKE_CUDA_NO_DEVICE") ? NO_DEVICE : OK; }
CUresult cuDriverGetVersion(int* v) { const char* e = getenv("FAKE_CUDA_DRIVER_VERSION"); *v = e ? atoi(e) : 13000; return OK; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return inited ? OK : NOT_INITIALIZED; }
CUresult cuDeviceGet(int* d, int ordinal) { if (ordinal != 0) return INVALID_VALUE; *d = 0; return OK; }
CUresult cuDeviceGetName(char* s, int n, int d) { snprintf(s, n, "Stand-in GPU"); return d == 0 ? OK : INVALID_VALUE; }
CUresult cuDeviceGetAttribute(int* v, int attr, int d) {
	switch (attr) { case 75: *v = 9; break; case 76: *v = 0; break; case 16: *v = 132; break; default: return INVALID_VALUE; }
	return d == 0 ? OK : INVALID_VALUE;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int d) { *b = (size_t)80 << 30; return d == 0 ? OK : INVALID_VALUE; }
CUresult cuDevicePrimaryCtxRetain(void** ctx, int d) { *ctx = &the_ctx; return inited && d == 0 ? OK : INVALID_VALUE; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { return d == 0 ? OK : INVALID_VALUE; }
CUresult cuCtxSetCurrent(void* ctx) { if (ctx && ctx != &the_ctx) return INVALID_CONTEXT; current = ctx; return OK; }
CUresult cuStreamCreate(void** s, unsigned flags) { CUresult r = need_ctx(); if (r) return r; *s = &the_stream; return flags == 1 ? OK : INVALID_VALUE; }
CUresult cuStreamSynchronize(void* s) { return need(s); }
CUresult cuStreamDestroy_v2(void* s) { return need(s); }
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
	CUresult r = need_ctx(); if (r) return r;
	if (n == 0) return INVALID_VALUE;
	void* m = malloc(n); if (!m) return OUT_OF_MEMORY;
	memset(m, 0x5a, n); // not zeroed, like a real cuMemAlloc
	*p = (CUdeviceptr)m; return OK;
}
CUresult cuMemFree_v2(CUdeviceptr p) { CUresult r = need_ctx(); if (r) return r; free((void*)p); return OK; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void* s) { CUresult r = need(s); if (r) return r; memcpy((void*)dst, src, n); return OK; }
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void* s) { CUresult r = need(s); if (r) return r; memcpy(dst, (void*)src, n); return OK; }
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, void* s) {
	CUresult r = need(s); if (r) return r;
	for (size_t i = 0; i < n; i++) ((unsigned*)dst)[i] = v;
	return OK;
}
// A cubin is an ELF file for EM_CUDA with a .text.NAME section per kernel;
// FAKE_CUDA_NO_CUBIN makes the driver refuse cubins as one for another GPU.
static CUresult load_cubin(const unsigned char* e) {
	if (*(const unsigned short*)(e + 18) != 190) return INVALID_IMAGE;
	if (getenv("FAKE_CUDA_NO_CUBIN")) return NO_BINARY_FOR_GPU;
	unsigned long long shoff = *(const unsigned long long*)(e + 0x28);
	unsigned shentsize = *(const unsigned short*)(e + 0x3a), shnum = *(const unsigned short*)(e + 0x3c),
	         shstrndx = *(const unsigned short*)(e + 0x3e);
	const unsigned char* sh = e + shoff;
	const char* shstrtab = (const char*)e + *(const unsigned long long*)(sh + shstrndx * shentsize + 0x18);
	for (unsigned i = 0; i < shnum; i++) {
		std::string name = shstrtab + *(const unsigned*)(sh + i * shentsize);
		if (name.rfind(".text.", 0) == 0) entries.insert(name.substr(6));
	}
	return OK;
}

CUresult cuModuleLoadData(void** m, const void* image) {
	CUresult r = need_ctx(); if (r) return r;
	if (!memcmp(image, "\177ELF", 4)) {
		if ((r = load_cubin((const unsigned char*)image))) return r;
		*m = &the_module; return OK;
	}
	std::string ptx((const char*)image);
	if (ptx.find(".version ") == std::string::npos || ptx.find(".target ") == std::string::npos) return INVALID_IMAGE;
	for (size_t at = 0; (at = ptx.find(".entry ", at)) != std::string::npos;) {
		at += 7;
		entries.insert(ptx.substr(at, ptx.find('(', at) - at));
	}
	*m = &the_module; return OK;
}
CUresult cuModuleUnload(void* m) { return m == &the_module ? OK : INVALID_HANDLE; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
	CUresult r = need_ctx(); if (r) return r;
	if (m != &the_module) return INVALID_HANDLE;
	if (!entries.count(name)) return NOT_FOUND;
	*f = (void*)&*names.insert(name).first;
	return OK;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void* s, void** params, void** extra) {
	CUresult r = need(s); if (r) return r;
	if (extra || shared || bx * by * bz > 1024 || !gx || !gy || !gz || gy > 65535) return INVALID_VALUE;
	return emu_launch(((std::string*)f)->c_str(), params, gx, gy, gz, bx, by, bz) ? INVALID_HANDLE : OK;
}
CUresult cuGetErrorName(CUresult r, const char** s) {
	*s = r == INVALID_CONTEXT ? "CUDA_ERROR_INVALID_CONTEXT" : r == NO_BINARY_FOR_GPU ? "CUDA_ERROR_NO_BINARY_FOR_GPU" : "CUDA_ERROR_STAND_IN";
	return OK;
}
CUresult cuGetErrorString(CUresult r, const char** s) { *s = "an error of the stand-in driver"; return OK; }

// For the stand-in cuBLAS, which keeps no state of its own.
int fake_need_ctx() { return need_ctx(); }
int fake_is_stream(void* s) { return s == &the_stream; }
}
`

// cublasSource is the stand-in cuBLAS. Like the real one it relies on the
// driver, here for the context check and for emu_gemm, found in the
// stand-in libcuda, which is loaded first and globally.
const cublasSource = `
extern "C" {
int fake_need_ctx();
int fake_is_stream(void* s);
void emu_gemm(int ta, int tb, int m, int n, int k, const float* a, int lda, long long sa,
              const float* b, int ldb, long long sb, float beta, float* c, int ldc, long long sc, int batch);
static int the_handle;
int cublasCreate_v2(void** h) { if (fake_need_ctx()) return 1; *h = &the_handle; return 0; }
int cublasDestroy_v2(void* h) { return h == &the_handle ? 0 : 1; }
int cublasSetStream_v2(void* h, void* s) { return h == &the_handle && fake_is_stream(s) ? 0 : 7; }
int cublasGetVersion_v2(void* h, int* v) { *v = 120400; return h == &the_handle ? 0 : 1; }
int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha,
                              const float* a, int lda, long long sa, const float* b, int ldb, long long sb,
                              const float* beta, float* c, int ldc, long long sc, int batch) {
	if (h != &the_handle || fake_need_ctx()) return 1;
	if (ta < 0 || ta > 1 || tb < 0 || tb > 1 || m < 0 || n < 0 || k < 0 || batch < 1 || *alpha != 1) return 7;
	if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m || lda < 1 || ldb < 1 || ldc < 1) return 7;
	emu_gemm(ta, tb, m, n, k, a, lda, sa, b, ldb, sb, *beta, c, ldc, sc, batch);
	return 0;
}
}
`

var (
	fakeOnce sync.Once
	fakeLibs [2]string // libcuda.so.1, libcublas.so.12
	fakeErr  error
)

// useStandIn points the library search at the stand-in driver and cuBLAS
// (the real NVRTC compiles the kernels), or skips without g++ or NVRTC
// (fails under CI, which installs both). It also skips on a machine with a
// real NVIDIA driver: the stand-ins are loaded globally, and must never
// share a process with the real libcuda and cuBLAS (the gpu legs run
// there instead).
func useStandIn(t *testing.T) {
	t.Helper()
	if realDriverHere() {
		t.Skip("a real NVIDIA driver is on this machine; the stand-in driver never shares a process with it")
	}
	fakeOnce.Do(func() {
		if fakeLibs[0], fakeErr = compileLib("libcuda.so.1", emuSource()+driverSource); fakeErr == nil {
			fakeLibs[1], fakeErr = compileLib("libcublas.so.12", cublasSource)
		}
	})
	if fakeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the stand-in driver is required under CI: %v", fakeErr)
		}
		t.Skipf("no stand-in driver (g++ needed): %v", fakeErr)
	}
	needCompiler(t)
	t.Setenv("CONDENSENET_LIBCUDA", fakeLibs[0])
	t.Setenv("CONDENSENET_LIBCUBLAS", fakeLibs[1])
}

// realDriverHere reports whether the NVIDIA kernel driver is loaded,
// without loading libcuda.
func realDriverHere() bool {
	for _, p := range []string{"/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// openStandIn opens the backend through the stand-in libraries.
func openStandIn(t *testing.T) *Backend {
	t.Helper()
	useStandIn(t)
	var notes []string
	b, err := Open(0, Options{CacheDir: t.TempDir(), Log: func(s string) { notes = append(notes, s) }})
	if err != nil {
		t.Fatalf("Open through the stand-in driver: %v", err)
	}
	if !strings.Contains(b.Name(), "cuda:0 (Stand-in GPU, sm_90, 132 SMs, 80 GiB, driver CUDA 13.0, cuBLAS 12.4, kernels sm_90 cubin (NVRTC ") ||
		len(notes) != 1 || !strings.Contains(notes[0], "compiling kernels to sm_90 cubin") {
		t.Errorf("name %q, notes %q", b.Name(), notes)
	}
	return b
}

// TestDriverPath runs what Open does against the stand-in: the driver and
// cuBLAS calls, NVRTC, the PTX cache (a second Open takes the cached PTX
// and compiles nothing), and a GPU that is not there.
func TestDriverPath(t *testing.T) {
	b := openStandIn(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for i, want := range []int{1, 0} {
		var notes []string
		b, err := Open(0, Options{CacheDir: cache, Log: func(s string) { notes = append(notes, s) }})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if len(notes) != want {
			t.Errorf("Open %d: %d compile notes, want %d: %q", i+1, len(notes), want, notes)
		}
	}
	// A torn cache entry is compiled afresh.
	files, _ := filepath.Glob(filepath.Join(cache, "*.cubin"))
	if len(files) != 1 {
		t.Fatalf("cache holds %q", files)
	}
	whole, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], whole[:len(whole)/2], 0o644)
	var notes []string
	if b, err := Open(0, Options{CacheDir: cache, Log: func(s string) { notes = append(notes, s) }}); err != nil || len(notes) != 1 {
		t.Errorf("torn cache entry: %v, notes %q", err, notes)
	} else {
		b.Close()
	}
	t.Setenv("FAKE_CUDA_NO_DEVICE", "1")
	_, err := Open(0, Options{CacheDir: cache})
	if !NoDevice(err) || Available() == nil {
		t.Errorf("a driver without devices: Open = %v, Available = %v", err, Available())
	}
	if _, err := Open(3, Options{}); err == nil {
		t.Errorf("cuda:3 opened on a one-device machine")
	}
}

// A backend used from a goroutine other than the one that opened it has
// no context there; the driver's refusal surfaces as an error.
func TestOtherGoroutineHasNoContext(t *testing.T) {
	b := openStandIn(t)
	defer b.Close()
	x := b.Alloc(4)
	done := make(chan error)
	go func() {
		b.Zero(x.V(), 4)
		done <- b.Sync()
	}()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "INVALID_CONTEXT") {
		t.Errorf("from another goroutine: %v, want CUDA_ERROR_INVALID_CONTEXT", err)
	}
}

// A driver that refuses the cubin (one built for another GPU, say) gets
// the PTX instead, and the backend says which it runs.
func TestKernelsFallBackToPTX(t *testing.T) {
	useStandIn(t)
	t.Setenv("FAKE_CUDA_NO_CUBIN", "1")
	var notes []string
	b, err := Open(0, Options{CacheDir: t.TempDir(), Log: func(s string) { notes = append(notes, s) }})
	if err != nil {
		t.Fatalf("Open with cubins refused: %v", err)
	}
	defer b.Close()
	if !strings.Contains(b.Name(), "kernels compute_90 PTX") {
		t.Errorf("name %q does not say the PTX runs", b.Name())
	}
	if text := strings.Join(notes, "\n"); !strings.Contains(text, "sm_90 cubin did not load") ||
		!strings.Contains(text, "CUDA_ERROR_NO_BINARY_FOR_GPU") || !strings.Contains(text, "compiling kernels to compute_90 PTX") {
		t.Errorf("notes do not tell the fallback:\n%s", text)
	}
	checkElementwise(t, b)
}

// A driver older than every NVRTC on the machine cannot run what NVRTC
// makes: Open and Available say so, naming both versions, and it is not
// mistaken for a machine without a GPU.
func TestDriverOlderThanNVRTC(t *testing.T) {
	useStandIn(t)
	c := needCompiler(t)
	old := c.number() - 1000
	t.Setenv("FAKE_CUDA_DRIVER_VERSION", fmt.Sprint(old))
	want := fmt.Sprintf("newer than the driver's CUDA %s", cudaVersion(old))
	_, err := Open(0, Options{CacheDir: t.TempDir()})
	if err == nil || NoDevice(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %v, want an error saying %q", err, want)
	}
	if err := Available(); err == nil || NoDevice(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("Available: %v, want an error saying %q", err, want)
	}
	p := Detect()
	if p.NVRTC != "" || len(p.Kernels) != 0 || !strings.Contains(strings.Join(p.Problems, "\n"), want) {
		t.Errorf("Detect: %+v", p)
	}
	// Of the same major version but an older minor one, NVRTC still serves
	// through cubins, which the driver loads; its PTX is never offered.
	if minor := c.number() % 1000 / 10; minor > 0 {
		t.Setenv("FAKE_CUDA_DRIVER_VERSION", fmt.Sprint(c.number()-10*minor))
		b, err := Open(0, Options{CacheDir: t.TempDir()})
		if err != nil || !strings.HasSuffix(b.Name(), "kernels sm_90 cubin (NVRTC "+c.Version()+"))") {
			t.Errorf("a driver of an older minor version: %v", err)
		}
		if b != nil {
			b.Close()
		}
		t.Setenv("FAKE_CUDA_NO_CUBIN", "1")
		if _, err := Open(0, Options{CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "NO_BINARY_FOR_GPU") {
			t.Errorf("a refused cubin with an NVRTC newer than the driver: Open = %v, want the refusal and no PTX", err)
		}
		os.Unsetenv("FAKE_CUDA_NO_CUBIN")
	}
	t.Setenv("FAKE_CUDA_DRIVER_VERSION", fmt.Sprint(c.number()))
	if p := Detect(); len(p.Problems) != 0 || fmt.Sprint(p.Kernels) != "[cuda:0: sm_90 cubin, then compute_90 PTX]" ||
		!strings.Contains(p.NVRTC, "not newer than the driver's CUDA "+c.Version()) {
		t.Errorf("Detect with a driver as new as NVRTC: %+v", p)
	}
}
