package cpu

// An isa is a level of instructions the kernels use; each level has the
// ones below it too. The level is chosen once, at start, from the CPU
// (GODEBUG=cpu.avx512f=off, or cpu.avx2=off,cpu.fma=off, lowers it: the
// same kernels a CPU without them runs); avx2 and avx512 are the only
// readers of it, and tests set it with forEachISA or withISA.
type isa int

const (
	isaGo     isa = iota // the pure-Go kernels, which define the others
	isaAVX2              // AVX2 and FMA assembly
	isaAVX512            // AVX-512F assembly besides
)

var (
	cpuISA = detectISA() // the best this CPU runs
	level  = cpuISA      // what the kernels use
)

func avx2() bool   { return level >= isaAVX2 }
func avx512() bool { return level >= isaAVX512 }

func (l isa) String() string { return [...]string{"go", "avx2", "avx512"}[l] }
