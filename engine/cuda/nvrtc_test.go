package cuda

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// needCompiler returns NVRTC, or skips; under CI=true a missing NVRTC
// fails, since .ci/run installs it.
func needCompiler(t *testing.T) *compiler {
	t.Helper()
	c, err := loadCompiler(0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NVRTC is required under CI (.ci/run installs Debian's libnvrtc11.2): %v", err)
		}
		t.Skipf("no NVRTC on this machine, kernels not compiled: %v", err)
	}
	return c
}

// TestKernelsCompile compiles kernels.cu for every architecture this NVRTC
// supports from Volta on, as PTX and as a cubin, and checks that each
// defines every kernel: the PTX with as many parameters as the launcher
// packs, the cubin (read as ELF) with a code section per kernel.
func TestKernelsCompile(t *testing.T) {
	c := needCompiler(t)
	var n int32
	c.numSupportedArchs(&n)
	archs := make([]int32, n)
	c.supportedArchs(&archs[0])
	t.Logf("NVRTC %s at %s, architectures %v", c.Version(), c.path, archs)
	entry := regexp.MustCompile(`(?s)\.visible \.entry (\w+)\((.*?)\)`)
	compiled := 0
	for _, a := range archs {
		if a < 70 {
			continue
		}
		ptx, err := c.compile(kernelSource, target{arch: int(a)})
		if err != nil {
			t.Fatalf("compute_%d: %v", a, err)
		}
		if ptx[len(ptx)-1] != 0 || !strings.Contains(string(ptx), "\n.version ") {
			t.Fatalf("compute_%d: NVRTC's output does not look like NUL-terminated PTX", a)
		}
		found := map[string]int{}
		for _, m := range entry.FindAllStringSubmatch(string(ptx), -1) {
			found[m[1]] = strings.Count(m[2], ".param")
		}
		for name, sig := range signatures {
			if got, ok := found[name]; !ok {
				t.Errorf("compute_%d: kernel %s missing from the PTX (not extern \"C\"?)", a, name)
			} else if got != len(sig) {
				t.Errorf("compute_%d: kernel %s has %d parameters in PTX, %d in its signature", a, name, got, len(sig))
			}
		}
		cubin, err := c.compile(kernelSource, target{arch: int(a), cubin: true})
		if err != nil {
			t.Fatalf("sm_%d: %v", a, err)
		}
		// A cubin keeps its own ABI number in e_version (offset 20), which
		// debug/elf refuses; read it with the standard one.
		binary.LittleEndian.PutUint32(cubin[20:], uint32(elf.EV_CURRENT))
		f, err := elf.NewFile(bytes.NewReader(cubin))
		if err != nil {
			t.Fatalf("sm_%d: the cubin is not ELF: %v", a, err)
		}
		if f.Machine != 190 { // EM_CUDA
			t.Errorf("sm_%d: ELF machine %v, want EM_CUDA", a, f.Machine)
		}
		for name := range signatures {
			if f.Section(".text."+name) == nil {
				t.Errorf("sm_%d: kernel %s has no code section in the cubin", a, name)
			}
		}
		compiled++
	}
	if compiled == 0 {
		t.Fatalf("NVRTC supports none of sm_70 and newer: %v", archs)
	}
	if want := strings.Count(kernelSource, `extern "C" __global__`); len(signatures) != want {
		t.Errorf("parsed %d kernel signatures from kernels.cu, which declares %d", len(signatures), want)
	}
}

func TestCompileErrorCarriesLog(t *testing.T) {
	c := needCompiler(t)
	_, err := c.compile(`extern "C" __global__ void broken(float* x) { x[0] = undeclared; }`, target{arch: 70})
	var ce *CompileError
	if !errors.As(err, &ce) || !strings.Contains(ce.Log, "undeclared") || ce.Target != "compute_70 PTX" {
		t.Fatalf("got %v, want a CompileError whose log names the undeclared identifier", err)
	}
}

// An NVRTC newer than the driver is passed over, saying why: its PTX
// would be refused.
func TestNewerNVRTCSkipped(t *testing.T) {
	c := needCompiler(t)
	v := c.number()
	if _, err := loadCompiler(v); err != nil {
		t.Fatalf("a driver as new as NVRTC %s: %v", c.Version(), err)
	}
	if c, err := loadCompiler(v + 1000); err != nil {
		t.Fatalf("a newer driver: %v", err)
	} else if len(c.Skipped) != 0 {
		t.Fatalf("a newer driver: skipped %q", c.Skipped)
	}
	if minor := v % 1000 / 10; minor > 0 { // a driver of the same major version, older minor
		c, err := loadCompiler(v - 10*minor)
		if err != nil || !c.cubinOnly || len(c.Skipped) != 2 || !strings.Contains(c.Skipped[1], "for cubins only") {
			t.Fatalf("an older minor driver: %v, %+v", err, c)
		}
		if ts, err := c.targets(90); err != nil || fmt.Sprint(ts) != "[sm_90 cubin]" {
			t.Errorf("an older minor driver: targets %v, %v; want the cubin alone", ts, err)
		}
		if _, err := c.targets(100); err == nil || !strings.Contains(err.Error(), "cannot build a cubin for sm_100") {
			t.Errorf("an older minor driver, a GPU NVRTC does not know: %v", err)
		}
	}
	older := v - 10*(v%1000/10) - 1000 // the previous major version
	_, err := loadCompiler(older)
	var le *LoadError
	want := fmt.Sprintf("is NVRTC %s, newer than the driver's CUDA %s", c.Version(), cudaVersion(older))
	if !errors.As(err, &le) || !strings.Contains(err.Error(), want) {
		t.Errorf("a driver older than every NVRTC: got %v, want a LoadError saying %q", err, want)
	}
}

func TestPickTargets(t *testing.T) {
	archs := []int32{50, 60, 70, 75, 80, 86, 89, 90}
	for _, tc := range []struct {
		device int
		want   string
	}{{90, "[sm_90 cubin compute_90 PTX]"}, {100, "[compute_90 PTX]"}, {86, "[sm_86 cubin compute_86 PTX]"},
		{87, "[compute_86 PTX]"}, {70, "[sm_70 cubin compute_70 PTX]"}} {
		if got, err := pickTargets(archs, tc.device); err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("device sm_%d: got %v, %v; want %s", tc.device, got, err, tc.want)
		}
	}
	if _, err := pickTargets([]int32{80, 90}, 75); err == nil || !strings.Contains(err.Error(), "sm_75") {
		t.Errorf("a device older than every architecture: got %v", err)
	}
}

const fakeImage = "//\n.version 7.8\n.target sm_90\n.address_size 64\n\x00"

func TestKernelCache(t *testing.T) {
	cache := kernelCache{dir: filepath.Join(t.TempDir(), "kernels")}
	compiles := 0
	compile := func() ([]byte, error) { compiles++; return []byte(fakeImage), nil }
	sm90 := target{arch: 90, cubin: true}

	img, cached, err := cache.get("src", sm90, "12.4", compile)
	if err != nil || cached || string(img) != fakeImage || compiles != 1 {
		t.Fatalf("first get: cached %v, err %v, %d compiles", cached, err, compiles)
	}
	if img, cached, _ = cache.get("src", sm90, "12.4", compile); !cached || compiles != 1 || string(img) != fakeImage {
		t.Fatalf("second get compiled again or changed the image (cached %v, %d compiles)", cached, compiles)
	}
	// Another source, target or NVRTC version is another entry.
	for _, k := range []struct {
		src   string
		t     target
		nvrtc string
	}{{"src2", sm90, "12.4"}, {"src", target{arch: 80, cubin: true}, "12.4"}, {"src", target{arch: 90}, "12.4"}, {"src", sm90, "11.8"}} {
		if _, cached, _ := cache.get(k.src, k.t, k.nvrtc, compile); cached {
			t.Errorf("%+v: served from another key's entry", k)
		}
	}
	// So are other compile options.
	defer func(was []string) { compileFlags = was }(compileFlags)
	compileFlags = append(compileFlags[:len(compileFlags):len(compileFlags)], "--lineinfo")
	if _, cached, _ := cache.get("src", sm90, "12.4", compile); cached {
		t.Errorf("served with other compile options from the entry without them")
	}
	compileFlags = compileFlags[:len(compileFlags)-1]
	// A torn or damaged file is compiled afresh and replaced.
	path := cache.path("src", sm90, "12.4")
	whole, _ := os.ReadFile(path)
	damaged := bytes.Clone(whole)
	damaged[3] ^= 1
	for name, b := range map[string][]byte{"torn": whole[:20], "damaged": damaged, "empty": nil} {
		os.WriteFile(path, b, 0o644)
		before := compiles
		if img, cached, _ = cache.get("src", sm90, "12.4", compile); cached || compiles != before+1 || string(img) != fakeImage {
			t.Fatalf("%s entry: cached %v, compiles %d → %d", name, cached, before, compiles)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, whole) {
			t.Errorf("%s entry not replaced", name)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(cache.dir, ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// An unwritable cache costs a compile, not a failure.
	ro := kernelCache{dir: "/proc/no-such-dir/kernels"}
	if _, _, err := ro.get("src", sm90, "12.4", compile); err != nil {
		t.Errorf("unwritable cache: %v", err)
	}
	// A compile error is returned, and nothing is cached.
	bad := func() ([]byte, error) { return nil, &CompileError{Target: "sm_90 cubin", Log: "boom"} }
	if _, _, err := cache.get("other", sm90, "12.4", bad); err == nil {
		t.Errorf("compile error swallowed")
	}
	if _, err := os.Stat(cache.path("other", sm90, "12.4")); err == nil {
		t.Errorf("a failed compile left a cache entry")
	}
}
