package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// gpu is what the Backend needs from a device: memory, copies, kernel
// launches and GEMMs, all queued on one stream. The real one is *device;
// tests without a GPU use a recorder that checks every call.
type gpu interface {
	alloc(bytes int) (uintptr, error)
	free(p uintptr) error
	upload(dst uintptr, src unsafe.Pointer, bytes int) error
	download(dst unsafe.Pointer, src uintptr, bytes int) error // waits for the stream
	zero(dst uintptr, n int) error                             // n float32s
	launch(kernel string, grid, block [3]int, args *packed) error
	gemm(c gemmCall) error
	sync() error
}

// device is a CUDA device with its primary context, one non-blocking
// stream, a cuBLAS handle and our compiled kernels.
type device struct {
	drv    *driver
	blas   *blas
	ord    int32
	ctx    uintptr
	stream uintptr
	handle uintptr // cuBLAS
	module uintptr
	funcs  map[string]uintptr
	caller            // for the launches and GEMMs
	alpha  [2]float32 // cuBLAS reads alpha and beta through host pointers
	info   string
}

// Options tune Open.
type Options struct {
	// CacheDir holds compiled kernels; empty means the user cache folder.
	CacheDir string
	// Log hears of slow one-time work (compiling the kernels); may be nil.
	Log func(string)
	// SyncEach waits for every kernel and GEMM as it is queued, so that a
	// fault is reported with the kernel, its grid and its arguments rather
	// than at the next sync without a name. It is slow: for finding faults
	// (the CLI sets it from CONDENSENET_CUDA_SYNC=1).
	SyncEach bool
}

// errNoDevice says that the driver works but has no device to offer.
var errNoDevice = errors.New("no CUDA device")

// startDriver loads libcuda and initialises it, returning the number of
// devices; a driver without devices is errNoDevice. The driver is returned
// whenever it loaded, even with an error.
func startDriver() (*driver, int, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, 0, err
	}
	if r := drv.init(0); r == 100 { // CUDA_ERROR_NO_DEVICE
		return drv, 0, errNoDevice
	} else if err := drv.check(r, "cuInit"); err != nil {
		return drv, 0, err
	}
	var count int32
	if err := drv.check(drv.deviceGetCount(&count), "cuDeviceGetCount"); err != nil {
		return drv, 0, err
	}
	if count == 0 {
		return drv, 0, errNoDevice
	}
	return drv, int(count), nil
}

// describe returns a device's handle, compute capability (10·major+minor)
// and a one-line description.
func (drv *driver) describe(ordinal int) (dev int32, cc int, info string, err error) {
	if err := drv.check(drv.deviceGet(&dev, int32(ordinal)), "cuDeviceGet"); err != nil {
		return 0, 0, "", err
	}
	var major, minor, sms int32
	drv.deviceGetAttribute(&major, attrComputeMajor, dev)
	drv.deviceGetAttribute(&minor, attrComputeMinor, dev)
	drv.deviceGetAttribute(&sms, attrSMCount, dev)
	var name [256]byte
	drv.deviceGetName(&name[0], int32(len(name)), dev)
	var mem uint64
	drv.deviceTotalMem(&mem, dev)
	info = fmt.Sprintf("%s, sm_%d%d, %d SMs, %.0f GiB, driver CUDA %s", goString(&name[0]), major, minor, sms, float64(mem)/(1<<30), cudaVersion(drv.version()))
	return dev, int(10*major + minor), info, nil
}

func openDevice(ordinal int, opt Options) (*device, error) {
	drv, count, err := startDriver()
	if err != nil {
		return nil, err
	}
	if ordinal >= count {
		return nil, fmt.Errorf("cuda:%d asked for, but the driver sees %d device(s): %w", ordinal, count, errNoDevice)
	}
	dev, cc, info, err := drv.describe(ordinal)
	if err != nil {
		return nil, err
	}
	d := &device{drv: drv, ord: dev, info: info}
	if err := drv.check(drv.primaryCtxRetain(&d.ctx, dev), "cuDevicePrimaryCtxRetain"); err != nil {
		return nil, err
	}
	if err := d.start(cc, opt); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// start makes the retained context current and creates the stream, the
// cuBLAS handle and the kernels; close undoes what it did.
func (d *device) start(cc int, opt Options) error {
	drv := d.drv
	if err := drv.check(drv.ctxSetCurrent(d.ctx), "cuCtxSetCurrent"); err != nil {
		return err
	}
	if err := drv.check(drv.streamCreate(&d.stream, streamNonBlocking), "cuStreamCreate"); err != nil {
		return err
	}
	var err error
	if d.blas, err = loadBLAS(); err != nil {
		return err
	}
	if err := blasCheck(d.blas.create(&d.handle), "cublasCreate"); err != nil {
		return err
	}
	if err := blasCheck(d.blas.setStream(d.handle, d.stream), "cublasSetStream"); err != nil {
		return err
	}
	var bv int32
	d.blas.getVersion(d.handle, &bv)
	d.info += fmt.Sprintf(", cuBLAS %d.%d", bv/10000, bv%10000/100)
	return d.loadKernels(cc, opt)
}

// loadKernels compiles kernelSource for the device (or takes it from the
// cache) and resolves every kernel. It tries a cubin for the device's own
// architecture first and PTX second (see pickTargets), and says which
// loaded in the device's description.
func (d *device) loadKernels(cc int, opt Options) error {
	nvrtc, err := loadCompiler(d.drv.version())
	if err != nil {
		return err
	}
	for _, why := range nvrtc.Skipped {
		if opt.Log != nil {
			opt.Log("cuda: skipped " + why)
		}
	}
	targets, err := nvrtc.targets(cc)
	if err != nil {
		return err
	}
	dir := opt.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "condensenet", "kernels")
	}
	var errs []error
	for _, t := range targets {
		err := d.loadModule(nvrtc, kernelCache{dir: dir}, t, opt.Log)
		if err == nil {
			d.info += fmt.Sprintf(", kernels %s (NVRTC %s)", t, nvrtc.Version())
			return d.resolveKernels()
		}
		errs = append(errs, err)
		if opt.Log != nil {
			opt.Log(fmt.Sprintf("cuda: kernels as %s did not load: %v", t, err))
		}
	}
	return errors.Join(errs...)
}

// loadModule loads the kernels compiled for t, from the cache or NVRTC;
// a cached image the driver rejects is compiled afresh once.
func (d *device) loadModule(nvrtc *compiler, cache kernelCache, t target, log func(string)) error {
	compile := func() ([]byte, error) {
		if log != nil {
			log(fmt.Sprintf("cuda: compiling kernels to %s with NVRTC %s (once per machine)", t, nvrtc.Version()))
		}
		return nvrtc.compile(kernelSource, t)
	}
	img, cached, err := cache.get(kernelSource, t, nvrtc.Version(), compile)
	if err != nil {
		return err
	}
	r := d.drv.moduleLoadData(&d.module, unsafe.Pointer(&img[0]))
	if r != 0 && cached {
		if img, err = compile(); err != nil {
			return err
		}
		cache.put(cache.path(kernelSource, t, nvrtc.Version()), img)
		r = d.drv.moduleLoadData(&d.module, unsafe.Pointer(&img[0]))
	}
	return d.drv.check(r, "cuModuleLoadData ("+t.String()+")")
}

func (d *device) resolveKernels() error {
	d.funcs = map[string]uintptr{}
	for name := range signatures {
		var f uintptr
		if err := d.drv.check(d.drv.moduleGetFunction(&f, d.module, name), "cuModuleGetFunction "+name); err != nil {
			return err
		}
		d.funcs[name] = f
	}
	return nil
}

func (d *device) close() {
	if d.handle != 0 {
		d.blas.destroy(d.handle)
	}
	if d.module != 0 {
		d.drv.moduleUnload(d.module)
	}
	if d.stream != 0 {
		d.drv.streamDestroy(d.stream)
	}
	if d.ctx != 0 {
		d.drv.ctxSetCurrent(0) // the thread goes back to Go's pool without it
		d.drv.primaryCtxRelease(d.ord)
	}
}

func (d *device) alloc(bytes int) (uintptr, error) {
	var p uintptr
	return p, d.drv.check(d.drv.memAlloc(&p, uint64(bytes)), fmt.Sprintf("cuMemAlloc(%d MB)", bytes>>20))
}

// free waits for the stream first: queued kernels may still use p.
func (d *device) free(p uintptr) error {
	if err := d.sync(); err != nil {
		return err
	}
	return d.drv.check(d.drv.memFree(p), "cuMemFree")
}

// upload copies from pageable host memory, which the driver stages before
// the call returns, so src may be reused at once. A pageable copy waits
// for the stream's earlier work; staging through pinned memory would not,
// but training uploads its batch right after the step's Sync (for the
// loss), when the stream is empty, so what is left to gain is the copy's
// speed: by estimate about 0.1 ms of CIFAR's batch of 64 (786 KB) and
// some 10 ms of ImageNet's batch of 256 (154 MB) per step, against steps
// of tens and hundreds of ms. bench --layers on a GPU times "upload" to
// check it.
func (d *device) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	return d.drv.check(d.drv.memcpyHtoDAsync(dst, src, uint64(bytes), d.stream), "cuMemcpyHtoDAsync")
}

func (d *device) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	if err := d.drv.check(d.drv.memcpyDtoHAsync(dst, src, uint64(bytes), d.stream), "cuMemcpyDtoHAsync"); err != nil {
		return err
	}
	return d.sync()
}

func (d *device) zero(dst uintptr, n int) error {
	return d.drv.check(d.drv.memsetD32Async(dst, 0, uint64(n), d.stream), "cuMemsetD32Async")
}

func (d *device) launch(kernel string, grid, block [3]int, args *packed) error {
	r := d.call(d.drv.launchKernel, d.funcs[kernel], uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
		uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), 0, d.stream, uintptr(unsafe.Pointer(&args.ptrs[0])), 0)
	if r != 0 { // the name is joined only on failure: launches allocate nothing
		return d.drv.check(r, "cuLaunchKernel "+kernel)
	}
	return nil
}

func (d *device) gemm(c gemmCall) error {
	d.alpha = [2]float32{1, c.beta}
	op := func(t bool) uintptr {
		if t {
			return 1 // CUBLAS_OP_T
		}
		return 0
	}
	// Every value is non-negative and fits its C type (int, long long).
	r := d.call(d.blas.gemmStridedBatched, d.handle, op(c.transA), op(c.transB), uintptr(c.m), uintptr(c.n), uintptr(c.k),
		uintptr(unsafe.Pointer(&d.alpha[0])), c.a, uintptr(c.lda), uintptr(c.strideA), c.b, uintptr(c.ldb), uintptr(c.strideB),
		uintptr(unsafe.Pointer(&d.alpha[1])), c.c, uintptr(c.ldc), uintptr(c.strideC), uintptr(c.batch))
	return blasCheck(r, "cublasSgemmStridedBatched")
}

func (d *device) sync() error {
	return d.drv.check(d.drv.streamSynchronize(d.stream), "cuStreamSynchronize")
}
