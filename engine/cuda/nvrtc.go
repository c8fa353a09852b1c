package cuda

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// compiler holds NVRTC, which turns our CUDA C into PTX for the device's
// architecture; the driver then loads the PTX.
type compiler struct {
	version           func(major, minor *int32) int32
	numSupportedArchs func(n *int32) int32
	supportedArchs    func(archs *int32) int32
	createProgram     func(prog *uintptr, src, name string, nHeaders int32, headers, includeNames unsafe.Pointer) int32
	compileProgram    func(prog uintptr, nOptions int32, options unsafe.Pointer) int32
	getPTXSize        func(prog uintptr, n *uint64) int32
	getPTX            func(prog uintptr, ptx *byte) int32
	getLogSize        func(prog uintptr, n *uint64) int32
	getLog            func(prog uintptr, log *byte) int32
	destroyProgram    func(prog *uintptr) int32
	path              string
}

func loadCompiler() (*compiler, error) {
	lib, path, err := libNVRTC.open()
	if err != nil {
		return nil, err
	}
	c := &compiler{path: path}
	err = bind(lib, path, map[string]any{
		"nvrtcVersion": &c.version, "nvrtcGetNumSupportedArchs": &c.numSupportedArchs,
		"nvrtcGetSupportedArchs": &c.supportedArchs, "nvrtcCreateProgram": &c.createProgram,
		"nvrtcCompileProgram": &c.compileProgram, "nvrtcGetPTXSize": &c.getPTXSize,
		"nvrtcGetPTX": &c.getPTX, "nvrtcGetProgramLogSize": &c.getLogSize,
		"nvrtcGetProgramLog": &c.getLog, "nvrtcDestroyProgram": &c.destroyProgram,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Version returns NVRTC's version as "major.minor".
func (c *compiler) Version() string {
	var major, minor int32
	c.version(&major, &minor)
	return fmt.Sprintf("%d.%d", major, minor)
}

// arch returns the newest virtual architecture NVRTC supports that is
// not newer than the device's (compute capability as 10·major+minor), so
// an older NVRTC still serves a newer GPU through the driver's JIT.
func (c *compiler) arch(device int) (int, error) {
	var n int32
	if r := c.numSupportedArchs(&n); r != 0 || n == 0 {
		return 0, fmt.Errorf("cuda: %s lists no supported architectures (nvrtc error %d)", c.path, r)
	}
	archs := make([]int32, n)
	c.supportedArchs(&archs[0])
	return pickArch(archs, device)
}

func pickArch(archs []int32, device int) (int, error) {
	best := 0
	for _, a := range archs {
		if int(a) <= device && int(a) > best {
			best = int(a)
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("cuda: NVRTC supports architectures %v, none at or below the device's sm_%d", archs, device)
	}
	return best, nil
}

// A CompileError carries NVRTC's log.
type CompileError struct {
	Arch int
	Log  string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: NVRTC could not compile the kernels for compute_%d:\n%s", e.Arch, e.Log)
}

// compile returns the PTX of src for virtual architecture compute_arch.
func (c *compiler) compile(src string, arch int) ([]byte, error) {
	var prog uintptr
	if r := c.createProgram(&prog, src, "kernels.cu", 0, nil, nil); r != 0 {
		return nil, fmt.Errorf("cuda: nvrtcCreateProgram failed (%d)", r)
	}
	defer c.destroyProgram(&prog)
	// The language dialect is left at NVRTC's default: the kernels are plain
	// C++ that every version since 11.2 accepts.
	opts := cStrings(fmt.Sprintf("--gpu-architecture=compute_%d", arch), "--fmad=true")
	r := c.compileProgram(prog, int32(len(opts.ptrs)), unsafe.Pointer(&opts.ptrs[0]))
	if r != 0 {
		return nil, &CompileError{Arch: arch, Log: c.log(prog)}
	}
	var n uint64
	if r := c.getPTXSize(prog, &n); r != 0 || n == 0 {
		return nil, fmt.Errorf("cuda: nvrtcGetPTXSize failed (%d)", r)
	}
	ptx := make([]byte, n)
	if r := c.getPTX(prog, &ptx[0]); r != 0 {
		return nil, fmt.Errorf("cuda: nvrtcGetPTX failed (%d)", r)
	}
	return ptx, nil // NUL-terminated, as cuModuleLoadData wants it
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

// ptxCache keeps compiled PTX on disk, one file per (source, architecture,
// NVRTC version), so only the first run on a machine pays for NVRTC.
type ptxCache struct{ dir string }

func (p ptxCache) path(src string, arch int, nvrtc string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "nvrtc %s\ncompute_%d\n%s", nvrtc, arch, src))
	return filepath.Join(p.dir, hex.EncodeToString(h[:16])+".ptx")
}

// get returns the cached PTX, or compiles it and stores it. A cache that
// cannot be written costs a compile per run, not a failure. A file that
// is not NUL-terminated PTX (cut short) is compiled afresh.
func (p ptxCache) get(src string, arch int, nvrtc string, compile func() ([]byte, error)) (ptx []byte, cached bool, err error) {
	path := p.path(src, arch, nvrtc)
	if b, err := os.ReadFile(path); err == nil && validPTX(b) {
		return b, true, nil
	}
	ptx, err = compile()
	if err != nil {
		return nil, false, err
	}
	p.put(path, ptx)
	return ptx, false, nil
}

// validPTX checks what a torn write would break: the header and the
// terminating NUL.
func validPTX(b []byte) bool {
	return len(b) > 16 && b[len(b)-1] == 0 && bytes.Contains(b[:min(len(b), 4096)], []byte("\n.version "))
}

// put writes the PTX atomically: a temporary file renamed into place.
func (p ptxCache) put(path string, ptx []byte) {
	if os.MkdirAll(p.dir, 0o755) != nil {
		return
	}
	f, err := os.CreateTemp(p.dir, ".tmp-*.ptx")
	if err != nil {
		return
	}
	_, err = f.Write(ptx)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}
