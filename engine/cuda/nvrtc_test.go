package cuda

import (
	"errors"
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
	c, err := loadCompiler()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NVRTC is required under CI (.ci/run installs Debian's libnvrtc11.2): %v", err)
		}
		t.Skipf("no NVRTC on this machine, kernels not compiled: %v", err)
	}
	return c
}

// TestKernelsCompile compiles kernels.cu for every architecture this NVRTC
// supports from Volta on, and checks that the PTX defines every kernel with
// as many parameters as the launcher packs.
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
		ptx, err := c.compile(kernelSource, int(a))
		if err != nil {
			t.Fatalf("compute_%d: %v", a, err)
		}
		if !validPTX(ptx) {
			t.Fatalf("compute_%d: NVRTC's output does not look like PTX", a)
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
	_, err := c.compile(`extern "C" __global__ void broken(float* x) { x[0] = undeclared; }`, 70)
	var ce *CompileError
	if !errors.As(err, &ce) || !strings.Contains(ce.Log, "undeclared") {
		t.Fatalf("got %v, want a CompileError whose log names the undeclared identifier", err)
	}
}

func TestPickArch(t *testing.T) {
	archs := []int32{50, 60, 70, 75, 80, 86, 89, 90}
	for _, tc := range []struct{ device, want int }{{90, 90}, {100, 90}, {86, 86}, {87, 86}, {70, 70}} {
		if got, err := pickArch(archs, tc.device); err != nil || got != tc.want {
			t.Errorf("device sm_%d: got compute_%d, %v; want compute_%d", tc.device, got, err, tc.want)
		}
	}
	if _, err := pickArch([]int32{80, 90}, 75); err == nil || !strings.Contains(err.Error(), "sm_75") {
		t.Errorf("a device older than every architecture: got %v", err)
	}
}

const fakePTX = "//\n.version 7.8\n.target sm_90\n.address_size 64\n\x00"

func TestPTXCache(t *testing.T) {
	cache := ptxCache{dir: filepath.Join(t.TempDir(), "ptx")}
	compiles := 0
	compile := func() ([]byte, error) { compiles++; return []byte(fakePTX), nil }

	ptx, cached, err := cache.get("src", 90, "12.4", compile)
	if err != nil || cached || string(ptx) != fakePTX || compiles != 1 {
		t.Fatalf("first get: cached %v, err %v, %d compiles", cached, err, compiles)
	}
	if _, cached, _ = cache.get("src", 90, "12.4", compile); !cached || compiles != 1 {
		t.Fatalf("second get compiled again (cached %v, %d compiles)", cached, compiles)
	}
	// Another source, architecture or NVRTC version is another entry.
	for _, k := range []struct {
		src   string
		arch  int
		nvrtc string
	}{{"src2", 90, "12.4"}, {"src", 80, "12.4"}, {"src", 90, "11.8"}} {
		if _, cached, _ := cache.get(k.src, k.arch, k.nvrtc, compile); cached {
			t.Errorf("%+v: served from another key's entry", k)
		}
	}
	// A torn file (no NUL at the end) is compiled afresh and replaced.
	path := cache.path("src", 90, "12.4")
	os.WriteFile(path, []byte(fakePTX[:20]), 0o644)
	before := compiles
	if ptx, cached, _ = cache.get("src", 90, "12.4", compile); cached || compiles != before+1 || string(ptx) != fakePTX {
		t.Fatalf("torn entry: cached %v, compiles %d → %d", cached, before, compiles)
	}
	if b, _ := os.ReadFile(path); string(b) != fakePTX {
		t.Errorf("torn entry not replaced")
	}
	if left, _ := filepath.Glob(filepath.Join(cache.dir, ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// An unwritable cache costs a compile, not a failure.
	ro := ptxCache{dir: "/proc/no-such-dir/ptx"}
	if _, _, err := ro.get("src", 90, "12.4", compile); err != nil {
		t.Errorf("unwritable cache: %v", err)
	}
	// A compile error is returned, and nothing is cached.
	bad := func() ([]byte, error) { return nil, &CompileError{Arch: 90, Log: "boom"} }
	if _, _, err := cache.get("other", 90, "12.4", bad); err == nil {
		t.Errorf("compile error swallowed")
	}
	if _, err := os.Stat(cache.path("other", 90, "12.4")); err == nil {
		t.Errorf("a failed compile left a cache entry")
	}
}
