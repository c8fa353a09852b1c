package cuda

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/condensenet/condensenet/internal/atomicfile"
)

// compiler holds NVRTC, which turns our CUDA C into machine code for the
// device (a cubin, which the driver loads as is) or into PTX (which the
// driver compiles itself, where NVRTC does not know the device).
type compiler struct {
	version           func(major, minor *int32) int32
	numSupportedArchs func(n *int32) int32
	supportedArchs    func(archs *int32) int32
	createProgram     func(prog *uintptr, src, name string, nHeaders int32, headers, includeNames unsafe.Pointer) int32
	compileProgram    func(prog uintptr, nOptions int32, options unsafe.Pointer) int32
	getPTXSize        func(prog uintptr, n *uint64) int32
	getPTX            func(prog uintptr, ptx *byte) int32
	getCUBINSize      func(prog uintptr, n *uint64) int32
	getCUBIN          func(prog uintptr, cubin *byte) int32
	getLogSize        func(prog uintptr, n *uint64) int32
	getLog            func(prog uintptr, log *byte) int32
	destroyProgram    func(prog *uintptr) int32
	path              string
	// Skipped says which NVRTCs were passed over for being newer than the
	// driver, and why.
	Skipped []string
	// cubinOnly marks an NVRTC newer than the driver in its minor version
	// only, taken when no other fits: the driver loads its cubins (CUDA's
	// minor version compatibility) but refuses its PTX.
	cubinOnly bool
}

// loadCompiler loads the first NVRTC (in the library search order) that is
// not newer than the driver; driver is cuDriverGetVersion's 1000·major +
// 10·minor, or 0 when there is no driver to compare with. A newer NVRTC
// writes PTX that the driver refuses (CUDA_ERROR_UNSUPPORTED_PTX_VERSION),
// so it is skipped, and said so; one of the driver's major version is
// still taken, for cubins only, when nothing else is found.
func loadCompiler(driver int32) (*compiler, error) {
	var c, minorNewer *compiler
	var skipped []string
	accept := func(lib uintptr, path string) error {
		cand := &compiler{path: path}
		if err := bind(lib, path, map[string]any{
			"nvrtcVersion": &cand.version, "nvrtcGetNumSupportedArchs": &cand.numSupportedArchs,
			"nvrtcGetSupportedArchs": &cand.supportedArchs, "nvrtcCreateProgram": &cand.createProgram,
			"nvrtcCompileProgram": &cand.compileProgram, "nvrtcGetPTXSize": &cand.getPTXSize,
			"nvrtcGetPTX": &cand.getPTX, "nvrtcGetCUBINSize": &cand.getCUBINSize, "nvrtcGetCUBIN": &cand.getCUBIN,
			"nvrtcGetProgramLogSize": &cand.getLogSize, "nvrtcGetProgramLog": &cand.getLog,
			"nvrtcDestroyProgram": &cand.destroyProgram,
		}); err != nil {
			return err
		}
		if v := cand.number(); driver > 0 && v > driver {
			why := fmt.Sprintf("%s is NVRTC %s, newer than the driver's CUDA %s", path, cand.Version(), cudaVersion(driver))
			skipped = append(skipped, why)
			if minorNewer == nil && v/1000 == driver/1000 {
				minorNewer = cand
			}
			return errors.New(why)
		}
		c = cand
		return nil
	}
	_, _, err := libNVRTC.open(accept)
	if err != nil && minorNewer == nil {
		return nil, err
	}
	if err != nil {
		c = minorNewer
		c.cubinOnly = true
		skipped = append(skipped, fmt.Sprintf("yet %s is taken, for cubins only, as nothing older was found", c.path))
	}
	c.Skipped = skipped
	return c, nil
}

// number returns NVRTC's version as the driver counts: 1000·major + 10·minor.
func (c *compiler) number() int32 {
	var major, minor int32
	c.version(&major, &minor)
	return 1000*major + 10*minor
}

// Version returns NVRTC's version as "major.minor".
func (c *compiler) Version() string { return cudaVersion(c.number()) }

// cudaVersion writes 1000·major + 10·minor as "major.minor".
func cudaVersion(v int32) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// A target is what NVRTC compiles for: machine code for one architecture
// (a cubin) or PTX for a virtual one.
type target struct {
	arch  int // 10·major + minor
	cubin bool
}

func (t target) String() string {
	if t.cubin {
		return fmt.Sprintf("sm_%d cubin", t.arch)
	}
	return fmt.Sprintf("compute_%d PTX", t.arch)
}

// targets returns what to try for a device (compute capability as
// 10·major + minor), best first.
func (c *compiler) targets(device int) ([]target, error) {
	var n int32
	if r := c.numSupportedArchs(&n); r != 0 || n == 0 {
		return nil, fmt.Errorf("cuda: %s lists no supported architectures (nvrtc error %d)", c.path, r)
	}
	archs := make([]int32, n)
	c.supportedArchs(&archs[0])
	ts, err := pickTargets(archs, device)
	if err == nil && c.cubinOnly {
		if !ts[0].cubin {
			return nil, fmt.Errorf("cuda: NVRTC %s at %s cannot build a cubin for sm_%d, and the driver would refuse its PTX: install an NVRTC no newer than the driver, or update the driver", c.Version(), c.path, device)
		}
		ts = ts[:1]
	}
	return ts, err
}

// pickTargets prefers a cubin for the device's exact architecture, which
// the driver loads without compiling anything, and falls back to PTX for
// the newest architecture not newer than the device's, so that an NVRTC
// older than the GPU still serves it through the driver's compiler.
func pickTargets(archs []int32, device int) ([]target, error) {
	best, exact := 0, false
	for _, a := range archs {
		exact = exact || int(a) == device
		if int(a) <= device && int(a) > best {
			best = int(a)
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("cuda: NVRTC supports architectures %v, none at or below the device's sm_%d", archs, device)
	}
	var ts []target
	if exact {
		ts = append(ts, target{arch: device, cubin: true})
	}
	return append(ts, target{arch: best}), nil
}

// A CompileError carries NVRTC's log.
type CompileError struct {
	Target string
	Log    string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: NVRTC could not compile the kernels to %s:\n%s", e.Target, e.Log)
}

// compileFlags are NVRTC's options besides the architecture. The language
// dialect is left at NVRTC's default: the kernels are plain C++ that every
// version since 11.2 accepts.
var compileFlags = []string{"--fmad=true"}

// options returns the NVRTC options that compile for t; the kernel cache's
// key holds them, so changing one compiles afresh.
func (t target) options() []string {
	arch := fmt.Sprintf("--gpu-architecture=compute_%d", t.arch)
	if t.cubin {
		arch = fmt.Sprintf("--gpu-architecture=sm_%d", t.arch)
	}
	return append([]string{arch}, compileFlags...)
}

// compile returns src compiled for t: a cubin, or NUL-terminated PTX.
func (c *compiler) compile(src string, t target) ([]byte, error) {
	var prog uintptr
	if r := c.createProgram(&prog, src, "kernels.cu", 0, nil, nil); r != 0 {
		return nil, fmt.Errorf("cuda: nvrtcCreateProgram failed (%d)", r)
	}
	defer c.destroyProgram(&prog)
	size, get, what := c.getPTXSize, c.getPTX, "nvrtcGetPTX"
	if t.cubin {
		size, get, what = c.getCUBINSize, c.getCUBIN, "nvrtcGetCUBIN"
	}
	opts := cStrings(t.options()...)
	if r := c.compileProgram(prog, int32(len(opts.ptrs)), unsafe.Pointer(&opts.ptrs[0])); r != 0 {
		return nil, &CompileError{Target: t.String(), Log: c.log(prog)}
	}
	var n uint64
	if r := size(prog, &n); r != 0 || n == 0 {
		return nil, fmt.Errorf("cuda: %sSize failed (%d)", what, r)
	}
	img := make([]byte, n)
	if r := get(prog, &img[0]); r != 0 {
		return nil, fmt.Errorf("cuda: %s failed (%d)", what, r)
	}
	return img, nil
}

func (c *compiler) log(prog uintptr) string {
	var n uint64
	if c.getLogSize(prog, &n) != 0 || n <= 1 {
		return "(no log)"
	}
	b := make([]byte, n)
	c.getLog(prog, &b[0])
	return string(b[:n-1])
}

// cStrs keeps NUL-terminated copies of strings and an array of pointers
// to them alive together.
type cStrs struct {
	bufs [][]byte
	ptrs []*byte
}

func cStrings(ss ...string) *cStrs {
	c := &cStrs{}
	for _, s := range ss {
		b := append([]byte(s), 0)
		c.bufs = append(c.bufs, b)
		c.ptrs = append(c.ptrs, &b[0])
	}
	return c
}

// kernelCache keeps compiled kernels on disk, one file per (source,
// target and options, NVRTC version), so only the first run on a machine pays for
// NVRTC. A file is the image followed by its SHA-256, so a torn or
// damaged file is recognised and compiled afresh.
type kernelCache struct{ dir string }

func (k kernelCache) path(src string, t target, nvrtc string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "nvrtc %s\n%s\n%s\n%s", nvrtc, t, strings.Join(t.options(), " "), src))
	ext := ".ptx"
	if t.cubin {
		ext = ".cubin"
	}
	return filepath.Join(k.dir, hex.EncodeToString(h[:16])+ext)
}

// get returns the cached image, or compiles it and stores it. A cache that
// cannot be written costs a compile per run, not a failure.
func (k kernelCache) get(src string, t target, nvrtc string, compile func() ([]byte, error)) (img []byte, cached bool, err error) {
	path := k.path(src, t, nvrtc)
	if b, err := os.ReadFile(path); err == nil && len(b) > sha256.Size {
		img, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		if h := sha256.Sum256(img); bytes.Equal(h[:], sum) {
			return img, true, nil
		}
	}
	img, err = compile()
	if err != nil {
		return nil, false, err
	}
	k.put(path, img)
	return img, false, nil
}

// put writes the image and its hash atomically; a cache that cannot be
// written only costs compiles.
func (k kernelCache) put(path string, img []byte) {
	if os.MkdirAll(k.dir, 0o755) == nil {
		h := sha256.Sum256(img)
		atomicfile.WriteFile(path, append(img[:len(img):len(img)], h[:]...))
	}
}
