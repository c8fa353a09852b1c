package cpu

// An isa is a level of instructions the kernels use; each level has the
// ones below it too. The level is chosen once, at start, from the CPU
// (GODEBUG=cpu.avx512f=off, or cpu.avx2=off,cpu.fma=off, lowers it: the
// same kernels a CPU without them runs), and fills the table of kernels,
// use; tests set both with forEachISA or withISA.
type isa int

const (
	isaGo     isa = iota // the pure-Go kernels, which define the others
	isaAVX2              // AVX2 and FMA assembly
	isaAVX512            // AVX-512 (F, BW and DQ) assembly besides
	isaVNNI              // and AVX-512 VNNI's integer dot products
)

var (
	cpuISA = detectISA()       // the best this CPU runs
	level  = cpuISA            // what the kernels use
	use    = kernelsFor(level) // which assembly kernels run
)

// A kernelSet says, per family of assembly kernels, whether it runs; where
// it does not, the Go definition beside its wrapper does (the wrappers
// check lengths and indices for every implementation alike). Nothing but
// this table decides which instructions run.
type kernelSet struct {
	gemm      bool // the 6×16 GEMM tile, its 6×8 variant, the packing copies (AVX2)
	gemmPair  bool // the 6×32 GEMM tile over two packed strips (AVX-512)
	runs      bool // copying and adding runs of whole eights (AVX2)
	gather8   bool // index select of whole eights of channels (AVX2)
	gather16  bool // of whole sixteens with gathers, and with BatchNorm (AVX-512)
	bnEights  bool // BatchNorm's row kernels on whole eights of channels (AVX2)
	bnAll     bool // on every channel, with masked tails (AVX-512)
	strided   bool // strided copies, with an affine map (AVX-512)
	transpose bool // 16×16 register transposes of pixels and channels (AVX-512)
	direct3x3 bool // the direct grouped 3×3 convolution (AVX-512)
	conv1x1G4 bool // 1×1 convolutions of four groups in one kernel (AVX-512)
	planes    bool // the pointwise convolution into planes (AVX-512)
	int8      bool // the int8 convolution's: quantising, dot products, requantising (AVX-512BW)
	vnni      bool // the int8 dot products with VNNI's VPDPBUSD, not AVX-512BW's pairs of products (AVX-512 VNNI)
	int8AVX2  bool // the int8 convolution's quantising, and a channel's sums for its tile kernels' Go forms, where its AVX-512 kernels do not run (AVX2)
	fmaWidth  int  // floats in the widest FMA vector: 16, 8, or 0 (Go's)
}

func kernelsFor(l isa) kernelSet {
	avx2, avx512 := l >= isaAVX2, l >= isaAVX512
	k := kernelSet{gemm: avx2, gemmPair: avx512, runs: avx2, gather8: avx2, gather16: avx512, bnEights: avx2, bnAll: avx512, int8AVX2: avx2,
		strided: avx512, transpose: avx512, direct3x3: avx512, conv1x1G4: avx512, planes: avx512, int8: avx512, vnni: l >= isaVNNI}
	switch {
	case avx512:
		k.fmaWidth = 16
	case avx2:
		k.fmaWidth = 8
	}
	return k
}

func (l isa) String() string { return [...]string{"go", "avx2", "avx512", "avx512vnni"}[l] }
