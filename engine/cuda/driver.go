package cuda

import (
	"fmt"
	"unsafe"
)

// driver holds the CUDA driver API functions the backend calls, bound at
// run time from libcuda.so.1. Every one returns a CUresult (0 is success).
type driver struct {
	init               func(flags uint32) int32
	driverGetVersion   func(v *int32) int32
	deviceGetCount     func(n *int32) int32
	deviceGet          func(dev *int32, ordinal int32) int32
	deviceGetName      func(name *byte, n int32, dev int32) int32
	deviceGetAttribute func(v *int32, attr int32, dev int32) int32
	deviceTotalMem     func(bytes *uint64, dev int32) int32
	primaryCtxRetain   func(ctx *uintptr, dev int32) int32
	primaryCtxRelease  func(dev int32) int32
	ctxSetCurrent      func(ctx uintptr) int32
	memAlloc           func(ptr *uintptr, bytes uint64) int32
	memFree            func(ptr uintptr) int32
	memcpyHtoDAsync    func(dst uintptr, src unsafe.Pointer, bytes uint64, stream uintptr) int32
	memcpyDtoHAsync    func(dst unsafe.Pointer, src uintptr, bytes uint64, stream uintptr) int32
	memsetD32Async     func(dst uintptr, v uint32, n uint64, stream uintptr) int32
	streamCreate       func(stream *uintptr, flags uint32) int32
	streamSynchronize  func(stream uintptr) int32
	streamDestroy      func(stream uintptr) int32
	moduleLoadData     func(mod *uintptr, image unsafe.Pointer) int32
	moduleUnload       func(mod uintptr) int32
	moduleGetFunction  func(fn *uintptr, mod uintptr, name string) int32
	launchKernel       uintptr // (fn, gx, gy, gz, bx, by, bz, shared, stream, params, extra), through call
	getErrorName       func(r int32, s **byte) int32
	getErrorString     func(r int32, s **byte) int32
	path               string // where libcuda was found
}

// Device attributes (CUdevice_attribute).
const (
	attrComputeMajor = 75
	attrComputeMinor = 76
	attrSMCount      = 16
)

const streamNonBlocking = 1

func loadDriver() (*driver, error) {
	lib, path, err := libCUDA.open(nil)
	if err != nil {
		return nil, err
	}
	d := &driver{path: path}
	err = bind(lib, path, map[string]any{
		"cuInit": &d.init, "cuDriverGetVersion": &d.driverGetVersion,
		"cuDeviceGetCount": &d.deviceGetCount, "cuDeviceGet": &d.deviceGet,
		"cuDeviceGetName": &d.deviceGetName, "cuDeviceGetAttribute": &d.deviceGetAttribute,
		"cuDeviceTotalMem_v2":          &d.deviceTotalMem,
		"cuDevicePrimaryCtxRetain":     &d.primaryCtxRetain,
		"cuDevicePrimaryCtxRelease_v2": &d.primaryCtxRelease,
		"cuCtxSetCurrent":              &d.ctxSetCurrent,
		"cuMemAlloc_v2":                &d.memAlloc, "cuMemFree_v2": &d.memFree,
		"cuMemcpyHtoDAsync_v2": &d.memcpyHtoDAsync, "cuMemcpyDtoHAsync_v2": &d.memcpyDtoHAsync,
		"cuMemsetD32Async": &d.memsetD32Async,
		"cuStreamCreate":   &d.streamCreate, "cuStreamSynchronize": &d.streamSynchronize,
		"cuStreamDestroy_v2": &d.streamDestroy,
		"cuModuleLoadData":   &d.moduleLoadData, "cuModuleUnload": &d.moduleUnload,
		"cuModuleGetFunction": &d.moduleGetFunction, "cuLaunchKernel": &d.launchKernel,
		"cuGetErrorName": &d.getErrorName, "cuGetErrorString": &d.getErrorString,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// version returns the CUDA version the driver supports, as 1000·major +
// 10·minor (13000 for 13.0), or 0 if it does not say.
func (d *driver) version() int32 {
	var v int32
	if d.driverGetVersion(&v) != 0 {
		return 0
	}
	return v
}

// A DriverError is a failed driver call: the function and CUDA's own name
// and description of the result.
type DriverError struct {
	Call string
	Code int32
	Name string
	Desc string
}

func (e *DriverError) Error() string {
	return fmt.Sprintf("cuda: %s: %s (%d): %s", e.Call, e.Name, e.Code, e.Desc)
}

// check turns a CUresult into an error naming the call.
func (d *driver) check(r int32, call string) error {
	if r == 0 {
		return nil
	}
	e := &DriverError{Call: call, Code: r, Name: "CUDA_ERROR", Desc: "unknown error"}
	var s *byte
	if d.getErrorName(r, &s) == 0 {
		e.Name = goString(s)
	}
	if d.getErrorString(r, &s) == 0 {
		e.Desc = goString(s)
	}
	return e
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for q := unsafe.Pointer(p); *(*byte)(q) != 0; q = unsafe.Add(q, 1) {
		b = append(b, *(*byte)(q))
	}
	return string(b)
}
