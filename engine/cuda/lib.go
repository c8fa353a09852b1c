package cuda

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ebitengine/purego"
)

// A library is one CUDA shared library and where to look for it. Search
// order: the environment override, the sonames through the
// dynamic loader's own path (LD_LIBRARY_PATH, ld.so.cache), then each
// soname in the folders the NVIDIA container runtime and the CUDA toolkit
// use, then the nvidia/*/lib folders of Python wheels, where PyTorch keeps
// its CUDA libraries.
type library struct {
	name    string   // for messages: "libcuda"
	env     string   // environment variable holding a path that overrides the search
	sonames []string // newest first
	wheels  bool     // ships in Python wheels (the driver's libcuda does not)
	// companions are libraries in the same folder that the library loads
	// by soname at run time (cuBLASLt, NVRTC's builtins); loading them
	// first, globally, saves relying on the folder being on the loader path.
	companions []string
}

var (
	libCUDA   = library{name: "libcuda", env: "CONDENSENET_LIBCUDA", sonames: []string{"libcuda.so.1", "libcuda.so"}}
	libCUBLAS = library{name: "libcublas", env: "CONDENSENET_LIBCUBLAS", wheels: true,
		sonames:    []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"},
		companions: []string{"libcublasLt.so.*"}}
	libNVRTC = library{name: "libnvrtc", env: "CONDENSENET_LIBNVRTC", wheels: true,
		sonames:    []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11", "libnvrtc.so"},
		companions: []string{"libnvrtc-builtins.so.*"}}
)

// systemDirs are searched after the loader's own path.
var systemDirs = []string{"/usr/local/nvidia/lib64", "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/wsl/lib"}

// wheelPatterns find the lib folders of NVIDIA's Python wheels
// (nvidia/cublas/lib, nvidia/cuda_nvrtc/lib, and CUDA 13's nvidia/cu13/lib).
var wheelPatterns = []string{
	"/usr/local/lib/python3*/dist-packages/nvidia/*/lib",
	"/usr/local/lib/python3*/site-packages/nvidia/*/lib",
	"/usr/lib/python3/dist-packages/nvidia/*/lib",
	"/opt/conda/lib/python3*/site-packages/nvidia/*/lib",
	"/opt/*/lib/python3*/site-packages/nvidia/*/lib",
	"$HOME/.local/lib/python3*/site-packages/nvidia/*/lib",
	"$HOME/*/lib/python3*/site-packages/nvidia/*/lib", // ~/venv
	"$HOME/.venv/lib/python3*/site-packages/nvidia/*/lib",
	"$VIRTUAL_ENV/lib/python3*/site-packages/nvidia/*/lib",
	"$CONDA_PREFIX/lib/python3*/site-packages/nvidia/*/lib",
}

// candidates returns the paths to try, in order. A path without a slash
// is a soname for the dynamic loader to resolve.
func (l library) candidates(getenv func(string) string, glob func(string) []string) []string {
	if p := getenv(l.env); p != "" {
		return []string{p}
	}
	out := append([]string(nil), l.sonames...)
	dirs := append([]string(nil), systemDirs...)
	for _, pat := range wheelPatterns {
		pat = os.Expand(pat, getenv)
		if !l.wheels || !strings.HasPrefix(pat, "/") || strings.HasPrefix(pat, "/lib/") || strings.HasPrefix(pat, "/.") || strings.HasPrefix(pat, "/*/") {
			continue // a library that no wheel holds, or the variable is unset
		}
		dirs = append(dirs, glob(pat)...)
	}
	return append(out, l.in(dirs, glob)...)
}

// in returns the library's sonames present in dirs.
func (l library) in(dirs []string, glob func(string) []string) []string {
	var out []string
	for _, d := range dirs {
		for _, so := range l.sonames {
			if p := filepath.Join(d, so); len(glob(p)) > 0 {
				out = append(out, p)
			}
		}
	}
	return out
}

// pythonSites returns the site-packages folders of the python3 on PATH,
// the last place to look for the wheels: wherever PyTorch was installed,
// its CUDA libraries are there. It costs a process start, so open asks
// only when nothing else was found.
var pythonSites = sync.OnceValue(func() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", "-c",
		"import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))").Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
})

// A LoadError says which library could not be loaded and where the search
// looked.
type LoadError struct {
	Library string
	Env     string
	Tried   []string // paths and sonames, in order
	Last    error    // the loader's message for the last one
	Refused []string // libraries that loaded but did not fit, and why
}

func (e *LoadError) Error() string {
	if len(e.Refused) > 0 {
		return fmt.Sprintf("no usable %s: %s (tried %s): install a version that fits, or set %s to the library's path",
			e.Library, strings.Join(e.Refused, "; "), strings.Join(e.Tried, ", "), e.Env)
	}
	return fmt.Sprintf("%s not found (tried %s; last: %v): install the NVIDIA driver and CUDA libraries, or set %s to the library's path",
		e.Library, strings.Join(e.Tried, ", "), e.Last, e.Env)
}

// open loads the first candidate that the dynamic loader accepts and, if
// accept is not nil, that accept approves (it says why not otherwise).
func (l library) open(accept func(h uintptr, path string) error) (uintptr, string, error) {
	glob := func(p string) []string { m, _ := filepath.Glob(p); return m }
	var refused []string
	if accept != nil {
		check := accept
		accept = func(h uintptr, path string) error {
			err := check(h, path)
			if err != nil {
				refused = append(refused, err.Error())
			}
			return err
		}
	}
	tried := l.candidates(os.Getenv, glob)
	h, path, err := l.first(tried, glob, accept)
	if err != nil && l.wheels && os.Getenv(l.env) == "" {
		var dirs []string
		for _, site := range pythonSites() {
			dirs = append(dirs, glob(filepath.Join(site, "nvidia", "*", "lib"))...)
		}
		more := l.in(dirs, glob)
		tried = append(tried, more...)
		if len(more) > 0 {
			h, path, err = l.first(more, glob, accept)
		}
	}
	if err != nil {
		return 0, "", &LoadError{Library: l.name, Env: l.env, Tried: tried, Last: err, Refused: refused}
	}
	return h, path, nil
}

// first loads the first of paths that the dynamic loader and accept
// accept, returning the last refusal if none does.
func (l library) first(paths []string, glob func(string) []string, accept func(uintptr, string) error) (uintptr, string, error) {
	var last error
	for _, p := range paths {
		if strings.Contains(p, "/") {
			for _, c := range l.companions {
				for _, m := range glob(filepath.Join(filepath.Dir(p), c)) {
					dlopen(m) // best effort: the library says what it misses
				}
			}
		}
		h, err := dlopen(p)
		if err == nil && accept != nil {
			err = accept(h, p)
		}
		if err == nil {
			return h, p, nil
		}
		last = err
	}
	return 0, "", last
}

// bind resolves each symbol in lib into its function pointer, or into a
// *uintptr as the bare address for purego.SyscallN: a symbol missing from
// an old library is an error naming it, not a crash.
func bind(lib uintptr, libName string, fns map[string]any) error {
	for name, fp := range fns {
		sym, err := dlsym(lib, name)
		if err != nil {
			return fmt.Errorf("%s has no %s (too old a version?): %v", libName, name, err)
		}
		if p, ok := fp.(*uintptr); ok {
			*p = sym
			continue
		}
		purego.RegisterFunc(fp, sym)
	}
	return nil
}

// A caller calls bare C functions whose arguments are all integers or
// pointers and which return an int (CUresult, cublasStatus_t). The hot
// calls go this way: a registered function goes through reflection and
// allocates about 12 times a call, and SyscallN's own variadic slice
// would escape, so the arguments are copied into the caller's array.
// Its two callers pass pointers only to fields of heap objects that live
// as long as the device (the GEMM's alpha and beta, the backend's packed
// kernel arguments): the collector does not move heap objects, and these
// stay reachable through the callers' receivers. //go:uintptrescapes
// would make any pointer argument safe, but it makes the variadic slice
// escape, an allocation per launch (TestLaunchesDoNotAllocate fails).
type caller struct{ args [32]uintptr }

func (c *caller) call(fn uintptr, args ...uintptr) int32 {
	n := copy(c.args[:], args)
	r, _, _ := purego.SyscallN(fn, c.args[:n]...)
	return int32(r)
}
