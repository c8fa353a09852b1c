package cpu

import (
	"reflect"
	"testing"
)

// Each level's table runs exactly the kernels of its instructions, and
// withISA puts table and level back.
func TestKernelTable(t *testing.T) {
	count := func(k kernelSet) (on int) {
		v := reflect.ValueOf(k)
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.Bool && f.Bool() {
				on++
			}
		}
		return on
	}
	if k := kernelsFor(isaGo); count(k) != 0 || k.fmaWidth != 0 {
		t.Errorf("pure Go runs %+v", k)
	}
	if k := kernelsFor(isaAVX2); count(k) != 5 || !k.gemm || !k.runs || !k.gather8 || !k.bnEights || !k.int8AVX2 || k.gemmPair || k.fmaWidth != 8 {
		t.Errorf("AVX2 runs %+v", k)
	}
	if k := kernelsFor(isaAVX512); count(k) != reflect.TypeFor[kernelSet]().NumField()-2 || k.vnni || k.fmaWidth != 16 {
		t.Errorf("AVX-512 runs %+v", k)
	}
	if k := kernelsFor(isaVNNI); count(k) != reflect.TypeFor[kernelSet]().NumField()-1 || k.fmaWidth != 16 {
		t.Errorf("AVX-512 with VNNI runs %+v", k)
	}
	was := use
	restore := withISA(isaGo)
	if use.gemm || level != isaGo {
		t.Error("withISA(isaGo) left assembly kernels on")
	}
	restore()
	if use != was || use != kernelsFor(level) {
		t.Error("withISA's restore left another table")
	}
}
