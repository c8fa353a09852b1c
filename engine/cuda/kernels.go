package cuda

import (
	_ "embed"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unsafe"
)

//go:embed kernels.cu
var kernelSource string

// A param is the kind of one kernel parameter as the launch packs it.
type param byte

const (
	pPtr param = 'p' // any pointer: a device address, 8 bytes
	pInt param = 'i' // int, 4 bytes
	pF32 param = 'f' // float, 4 bytes
	pU64 param = 'u' // unsigned long long, 8 bytes
)

// signatures are the parameter kinds of every kernel in kernelSource, read
// from the source itself so that a launch with the wrong arguments is
// caught on the host, before the GPU reads garbage.
var signatures = parseSignatures(kernelSource)

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(([^)]*)\)`)

func parseSignatures(src string) map[string][]param {
	out := map[string][]param{}
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		var ps []param
		for _, decl := range strings.Split(m[2], ",") {
			ps = append(ps, paramKind(strings.Join(strings.Fields(decl), " ")))
		}
		out[m[1]] = ps
	}
	return out
}

func paramKind(decl string) param {
	switch {
	case strings.Contains(decl, "*"):
		return pPtr
	case strings.HasPrefix(decl, "int "):
		return pInt
	case strings.HasPrefix(decl, "float "):
		return pF32
	case strings.HasPrefix(decl, "unsigned long long "):
		return pU64
	}
	panic(fmt.Sprintf("cuda: kernel parameter %q has a type the launcher does not pack", decl))
}

// An arg is one kernel argument: its kind and its bits.
type arg struct {
	kind param
	bits uint64
}

func ptrArg(p uintptr) arg { return arg{pPtr, uint64(p)} }
func f32Arg(v float32) arg { return arg{pF32, uint64(math.Float32bits(v))} }
func u64Arg(v uint64) arg  { return arg{pU64, v} }
func boolArg(v bool) arg {
	if v {
		return intArg(1)
	}
	return intArg(0)
}
func intArg(v int) arg {
	if v != int(int32(v)) {
		panic(fmt.Sprintf("cuda: kernel argument %d does not fit a C int", v))
	}
	return arg{pInt, uint64(uint32(int32(v)))}
}

// packed holds arguments in the form cuLaunchKernel takes: an array of
// pointers, each to one argument's value. Each value has an 8-byte slot;
// the driver reads as many bytes as the parameter's type has, and on a
// little-endian machine a 4-byte value sits at the slot's start.
type packed struct {
	vals [maxArgs]uint64
	ptrs [maxArgs]unsafe.Pointer
}

const maxArgs = 24

// pack checks args against kernel's signature and fills p; it keeps no
// reference to args.
func (p *packed) pack(kernel string, args []arg) error {
	sig, ok := signatures[kernel]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q in kernels.cu", kernel)
	}
	if len(args) != len(sig) || len(args) > maxArgs {
		return fmt.Errorf("cuda: kernel %s takes %d arguments, got %d", kernel, len(sig), len(args))
	}
	for i, a := range args {
		if a.kind != sig[i] {
			return fmt.Errorf("cuda: kernel %s argument %d is %c, got %c", kernel, i, sig[i], a.kind)
		}
		p.vals[i] = a.bits
		p.ptrs[i] = unsafe.Pointer(&p.vals[i])
	}
	return nil
}
