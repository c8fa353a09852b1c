package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/condensenet/condensenet/engine"
)

func TestCandidatesOrder(t *testing.T) {
	env := map[string]string{"HOME": "/home/u"}
	getenv := func(k string) string { return env[k] }
	present := map[string][]string{
		"/usr/local/lib/python3*/dist-packages/nvidia/*/lib":                          {"/usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib"},
		"/home/u/.local/lib/python3*/site-packages/nvidia/*/lib":                      {"/home/u/.local/lib/python3.11/site-packages/nvidia/cu13/lib"},
		"/usr/local/cuda/lib64/libcublas.so.12":                                       {"/usr/local/cuda/lib64/libcublas.so.12"},
		"/usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib/libcublas.so.12":   {"x"},
		"/home/u/.local/lib/python3.11/site-packages/nvidia/cu13/lib/libcublas.so.13": {"x"},
	}
	var globbed []string
	glob := func(p string) []string { globbed = append(globbed, p); return present[p] }
	got := libCUBLAS.candidates(getenv, glob)
	want := []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so",
		"/usr/local/cuda/lib64/libcublas.so.12",
		"/usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib/libcublas.so.12",
		"/home/u/.local/lib/python3.11/site-packages/nvidia/cu13/lib/libcublas.so.13"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates:\n got %q\nwant %q", got, want)
	}
	for _, p := range globbed {
		if strings.HasPrefix(p, "/lib/") {
			t.Errorf("an unset variable was globbed as %q", p)
		}
	}
	// The driver's library is never looked for in wheels.
	for _, c := range libCUDA.candidates(getenv, glob) {
		if strings.Contains(c, "python") {
			t.Errorf("libcuda looked for in a wheel: %s", c)
		}
	}
	// The override is the only candidate.
	env["CONDENSENET_LIBCUBLAS"] = "/opt/x/libcublas.so.12"
	if got := libCUBLAS.candidates(getenv, glob); !slices.Equal(got, []string{"/opt/x/libcublas.so.12"}) {
		t.Errorf("with the override: %q", got)
	}
}

// A library that is not there is a LoadError naming it, where the search
// looked and the variable that overrides it; for libcuda that means "no
// device", which auto turns into the CPU.
func TestMissingLibrary(t *testing.T) {
	t.Setenv("CONDENSENET_LIBCUDA", "/nonexistent/libcuda.so.1")
	_, err := Open(0, Options{})
	var le *LoadError
	if !errors.Is(err, engine.ErrNoDevice) || !errors.As(err, &le) {
		t.Fatalf("Open = %v, want a LoadError wrapping engine.ErrNoDevice", err)
	}
	for _, want := range []string{"libcuda not found", "/nonexistent/libcuda.so.1", "CONDENSENET_LIBCUDA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if !NoDevice(err) {
		t.Errorf("a missing driver is not NoDevice")
	}
	if NoDevice(fmt.Errorf("%w: %w", engine.ErrNoDevice, &LoadError{Library: "libcublas"})) {
		t.Errorf("a missing cuBLAS beside a driver is reported as no device, so auto would hide it")
	}
}

// A library that loads but lacks a symbol is an error naming the symbol.
func TestMissingSymbol(t *testing.T) {
	lib := library{name: "libc", env: "CONDENSENET_TEST_LIBC", sonames: []string{"libc.so.6"}}
	h, path, err := lib.open(nil)
	if err != nil {
		t.Skipf("no libc.so.6 to load: %v", err)
	}
	var f func() int32
	err = bind(h, path, map[string]any{"cuNoSuchFunction": &f})
	if err == nil || !strings.Contains(err.Error(), "cuNoSuchFunction") {
		t.Fatalf("bind = %v, want an error naming the symbol", err)
	}
	var getpid func() int32
	if err := bind(h, path, map[string]any{"getpid": &getpid}); err != nil || getpid() <= 0 {
		t.Fatalf("bind getpid: %v", err)
	}
}

func TestPackArguments(t *testing.T) {
	var p packed
	err := p.pack("sgd_nesterov", []arg{ptrArg(0x1000), ptrArg(0x2000), ptrArg(0x3000), intArg(-7), f32Arg(0.5), f32Arg(0.9), f32Arg(1e-4)})
	if err != nil {
		t.Fatal(err)
	}
	// Each pointer points at its slot; an int's low 4 bytes hold it.
	if *(*uintptr)(p.ptrs[1]) != 0x2000 || *(*int32)(p.ptrs[3]) != -7 || *(*float32)(p.ptrs[4]) != 0.5 {
		t.Errorf("packed values: %#x %d %v", *(*uintptr)(p.ptrs[1]), *(*int32)(p.ptrs[3]), *(*float32)(p.ptrs[4]))
	}
	if err := p.pack("dropout_mask", []arg{ptrArg(1), intArg(2), f32Arg(0.1), u64Arg(1 << 40)}); err != nil || *(*uint64)(p.ptrs[3]) != 1<<40 {
		t.Errorf("u64 argument: %v", err)
	}
	for _, bad := range [][]arg{
		{ptrArg(1), ptrArg(2), ptrArg(3), intArg(1), f32Arg(1), f32Arg(1)},            // one short
		{ptrArg(1), ptrArg(2), ptrArg(3), f32Arg(1), f32Arg(1), f32Arg(1), f32Arg(1)}, // float for int
		{ptrArg(1), ptrArg(2), intArg(3), intArg(1), f32Arg(1), f32Arg(1), f32Arg(1)}, // int for pointer
	} {
		if err := p.pack("sgd_nesterov", bad); err == nil {
			t.Errorf("packed %v for sgd_nesterov", bad)
		}
	}
	if err := p.pack("no_such_kernel", nil); err == nil {
		t.Errorf("packed for a kernel that does not exist")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("intArg accepted a value outside a C int")
		}
	}()
	intArg(1 << 40)
}

// When nothing else is found, the wheels of python3's own site-packages are
// searched (a stand-in here: a folder with a file that is not a library).
func TestPythonSitesLastResort(t *testing.T) {
	site := t.TempDir()
	lib := filepath.Join(site, "nvidia", "fake", "lib", "libfake.so.1")
	os.MkdirAll(filepath.Dir(lib), 0o755)
	os.WriteFile(lib, []byte("not an ELF file"), 0o644)
	defer func(f func() []string) { pythonSites = f }(pythonSites)
	pythonSites = func() []string { return []string{site} }
	fake := library{name: "libfake", env: "CONDENSENET_TEST_FAKE", sonames: []string{"libfake.so.1"}, wheels: true}
	_, _, err := fake.open(nil)
	var le *LoadError
	if !errors.As(err, &le) || le.Tried[len(le.Tried)-1] != lib {
		t.Fatalf("open = %v; want a LoadError whose last try is %s", err, lib)
	}
}
