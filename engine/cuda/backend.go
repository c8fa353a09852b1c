// Package cuda is the CUDA backend: the engine's kernels on an NVIDIA GPU,
// with the CUDA libraries loaded at run time through purego, so the binary
// needs no cgo and runs on machines without a GPU (see Open).
//
// Our kernels (kernels.cu) are CUDA C embedded in the binary, compiled by
// NVRTC for the device at first use (machine code for its architecture,
// PTX as the fallback) and cached on disk; GEMMs and
// convolutions go through cuBLAS (strided-batched GEMM over groups). All
// work is queued on one stream; only Download and Sync wait for it.
//
// CUDA binds a context to an OS thread: Open locks the calling goroutine
// to its thread, and the Backend must be used from that goroutine only.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"unsafe"

	"github.com/condensenet/condensenet/engine"
)

// Backend runs the engine's kernels on one CUDA device.
type Backend struct {
	dev      gpu
	name     string
	err      error           // the first failure; later calls are skipped and Sync returns it
	sizes    map[uintptr]int // every allocation's bytes, freed by Close
	bytes    int64           // device memory allocated now, and at most
	peak     int64
	args     packed  // the next launch's arguments
	syncEach bool    // Options.SyncEach
	col      scratch // convolution patches, shared: kernels run in stream order
	dcol     scratch
	wt       scratch // rearranged convolution weights and their gradient
	input    scratch // a convolution's input after its transform
	ints     scratch // labels and indices uploaded for one kernel
	stats    scratch // BatchNorm partial sums
	slots    scratch // the pieces' products of a long GEMM (matmulPieces)
	// pieceRows, when set, replaces minPieceRows, so that tests can cut
	// small GEMMs into pieces.
	pieceRows int
}

var _ engine.Backend = (*Backend)(nil)

// Open returns the backend for device ordinal (cuda:N). Any failure, from
// a missing libcuda.so.1 to a kernel that does not compile, is an error
// wrapping engine.ErrNoDevice that says what was missing and where it was
// looked for.
func Open(ordinal int, opt Options) (*Backend, error) {
	runtime.LockOSThread()
	d, err := openDevice(ordinal, opt)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("%w: %w", engine.ErrNoDevice, err)
	}
	name := fmt.Sprintf("cuda:%d (%s)", ordinal, d.info)
	if opt.SyncEach {
		name += " syncing after every launch"
	}
	return &Backend{dev: d, name: name, syncEach: opt.SyncEach}, nil
}

// NoDevice reports whether err means that the machine has no GPU at all
// (no driver or no device), as opposed to a GPU that failed to start.
func NoDevice(err error) bool {
	var le *LoadError
	return errors.Is(err, errNoDevice) || errors.As(err, &le) && le.Library == libCUDA.name
}

func (b *Backend) Name() string { return b.name }

// PeakMemory returns the most device memory the backend has held, in bytes.
func (b *Backend) PeakMemory() int64 { return b.peak }

// Close frees every tensor and releases the device; the backend is
// unusable afterwards, and closing it again does nothing.
func (b *Backend) Close() error {
	if b.dev == nil {
		return nil
	}
	for p := range b.sizes {
		b.fail(b.dev.free(p))
	}
	b.sizes = nil
	if d, ok := b.dev.(*device); ok {
		d.close()
		runtime.UnlockOSThread()
	}
	err := b.err
	b.dev = nil
	b.fail(errors.New("cuda: backend used after Close"))
	return err
}

// fail keeps the first error.
func (b *Backend) fail(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

func (b *Backend) Sync() error {
	if b.err == nil {
		b.fail(b.dev.sync())
	}
	return b.err
}

// ptr returns a view's device address.
func ptr(v engine.View) uintptr {
	return v.T.Device.(uintptr) + uintptr(v.Off)*4
}

func (b *Backend) Alloc(n int) *engine.Tensor {
	p := b.alloc(n)
	return &engine.Tensor{Len: n, Device: p}
}

// alloc returns n zeroed floats of device memory (one, if n is 0, so that
// every tensor has an address). A failure, such as running out of device
// memory, becomes the backend's error, which the next Sync reports.
func (b *Backend) alloc(n int) uintptr {
	if b.err != nil {
		return 0
	}
	p, err := b.dev.alloc(4 * max(n, 1))
	if err != nil {
		b.fail(err)
		return 0
	}
	if b.sizes == nil {
		b.sizes = map[uintptr]int{}
	}
	b.sizes[p] = 4 * max(n, 1)
	b.bytes += int64(4 * max(n, 1))
	b.peak = max(b.peak, b.bytes)
	b.fail(b.dev.zero(p, max(n, 1)))
	return p
}

func (b *Backend) Upload(dst engine.View, src []float32) {
	if b.err == nil && len(src) > 0 {
		b.check(dst, len(src))
		b.fail(b.dev.upload(ptr(dst), unsafe.Pointer(&src[0]), 4*len(src)))
	}
}

func (b *Backend) Download(dst []float32, src engine.View) {
	if b.err == nil && len(dst) > 0 {
		b.check(src, len(dst))
		b.fail(b.dev.download(unsafe.Pointer(&dst[0]), ptr(src), 4*len(dst)))
	}
}

func (b *Backend) Zero(v engine.View, n int) {
	if b.err == nil && n > 0 {
		b.check(v, n)
		b.fail(b.dev.zero(ptr(v), n))
	}
}

// check panics on a copy past a tensor's end, which on a device would
// corrupt memory silently.
func (b *Backend) check(v engine.View, n int) {
	if v.Off+n > v.T.Len {
		panic(fmt.Sprintf("cuda: %d values at %d of a tensor of %d", n, v.Off, v.T.Len))
	}
}

// A scratch is device memory that grows to the largest request.
type scratch struct {
	p uintptr
	n int
}

func (b *Backend) grow(s *scratch, n int) uintptr {
	if s.n < n && b.err == nil {
		if s.p != 0 {
			b.fail(b.dev.free(s.p))
			delete(b.sizes, s.p)
			b.bytes -= int64(4 * s.n)
		}
		s.p, s.n = b.alloc(n), n
	}
	return s.p
}

// upInts uploads host int32s for the next kernel into the shared buffer:
// stream order keeps the kernel that reads them ahead of the next upload.
func (b *Backend) upInts(v []int32) uintptr {
	p := b.grow(&b.ints, len(v))
	b.putInts(p, v)
	return p
}

// putFloats copies v to device memory at p.
func (b *Backend) putFloats(p uintptr, v []float32) {
	if b.err == nil && len(v) > 0 {
		b.fail(b.dev.upload(p, unsafe.Pointer(&v[0]), 4*len(v)))
	}
}

// putInts copies v to device memory at p.
func (b *Backend) putInts(p uintptr, v []int32) {
	if b.err == nil && len(v) > 0 {
		b.fail(b.dev.upload(p, unsafe.Pointer(&v[0]), 4*len(v)))
	}
}

const threads = 256

// run launches kernel over n elements with a grid-stride loop.
func (b *Backend) run(kernel string, n int, args ...arg) {
	if n > 0 {
		b.launch(kernel, [3]int{min((n+threads-1)/threads, 1<<16), 1, 1}, [3]int{threads, 1, 1}, args...)
	}
}

// launch queues kernel unless an earlier call failed. It packs the
// arguments into the backend's own buffer, so a launch allocates nothing.
func (b *Backend) launch(kernel string, grid, block [3]int, args ...arg) {
	if b.err != nil {
		return
	}
	if b.fail(b.args.pack(kernel, args)); b.err == nil {
		b.fail(b.dev.launch(kernel, grid, block, &b.args))
		b.settle(func() string { return b.describeLaunch(kernel, grid, block, args) })
	}
}

func (b *Backend) matmul(mm matmul) {
	if pieces := b.pieces(mm); pieces > 1 {
		b.matmulPieces(mm, pieces)
		return
	}
	b.gemm(mm)
}

func (b *Backend) gemm(mm matmul) {
	if b.err == nil {
		c := mm.call()
		b.fail(b.dev.gemm(c))
		b.settle(func() string { return b.describeGEMM(c) })
	}
}

// A long GEMM is one whose inner dimension is much longer than its output
// is wide: a convolution's weight gradient, a small matrix summed over
// every pixel of the batch. cuBLAS gives each output tile one thread
// block, so such a GEMM ran on a handful of the GPU's multiprocessors
// for a time growing with the batch (on an H200, CondenseNet-86 trained
// at the same 1,205 images/s at batch 64 and 256, where PyTorch went from
// 1,428 to 3,983). It is cut into pieces of at least minPieceRows of k
// instead, each piece's product into its own slot, and a kernel adds the
// slots in order, so the sum does not depend on timing.
const (
	minPieceRows = 1024
	fullOutput   = 1 << 21 // outputs that fill the GPU without pieces: 128 128×128 tiles
	maxPieceMem  = 1 << 24 // floats of slots at most (64 MB)
)

// pieces returns how many pieces mm is cut into: 1 for a GEMM that is not
// long.
func (b *Backend) pieces(mm matmul) int {
	out := max(mm.batch, 1) * mm.m * mm.n
	if out == 0 || out >= fullOutput {
		return 1
	}
	rows := minPieceRows
	if b.pieceRows > 0 {
		rows = b.pieceRows
	}
	return min(mm.k/rows, maxPieceMem/out)
}

// matmulPieces computes mm as the sum of its products over pieces
// consecutive ranges of k: one strided-batched GEMM over the pieces per
// matrix of mm's batch (and one more for a shorter last piece), then
// sum_pieces.
func (b *Backend) matmulPieces(mm matmul, pieces int) {
	batch, out := max(mm.batch, 1), mm.m*mm.n
	rows := (mm.k + pieces - 1) / pieces
	full, rest := mm.k/rows, mm.k%rows
	slots := full + min(rest, 1)
	part := b.grow(&b.slots, batch*slots*out)
	// The distance between pieces, in floats: k runs down the rows of a
	// stored (k, m) A or (k, n) B and along the rows otherwise.
	stepA, stepB := rows, rows*mm.ldb
	if mm.transA {
		stepA = rows * mm.lda
	}
	if mm.transB {
		stepB = rows
	}
	for g := range batch {
		piece := matmul{transA: mm.transA, transB: mm.transB, m: mm.m, n: mm.n, k: rows,
			a: mm.a + uintptr(4*g*mm.strideA), lda: mm.lda, strideA: stepA,
			b: mm.b + uintptr(4*g*mm.strideB), ldb: mm.ldb, strideB: stepB,
			c: part + uintptr(4*g*slots*out), ldc: mm.n, strideC: out, batch: full}
		b.gemm(piece)
		if rest > 0 {
			piece.a += uintptr(4 * full * stepA)
			piece.b += uintptr(4 * full * stepB)
			piece.c += uintptr(4 * full * out)
			piece.k, piece.batch = rest, 1
			b.gemm(piece)
		}
	}
	b.run("sum_pieces", batch*out, ptrArg(mm.c), ptrArg(part), ia(batch), ia(slots), ia(mm.m), ia(mm.n),
		ia(mm.ldc), ia(mm.strideC), f32Arg(mm.beta))
}

// settle, with Options.SyncEach, waits for the work just queued and names
// it in the error if it failed: without it, a kernel's fault surfaces at
// the next sync, far from its cause.
func (b *Backend) settle(what func() string) {
	if b.syncEach && b.err == nil {
		if err := b.dev.sync(); err != nil {
			b.fail(fmt.Errorf("cuda: %s failed: %w", what(), err))
		}
	}
}

// describeLaunch names a kernel, its grid and its arguments, each pointer
// as the allocation it points into.
func (b *Backend) describeLaunch(kernel string, grid, block [3]int, args []arg) string {
	var parts []string
	for _, a := range args {
		switch a.kind {
		case pPtr:
			parts = append(parts, b.describePtr(uintptr(a.bits)))
		case pF32:
			parts = append(parts, fmt.Sprint(math.Float32frombits(uint32(a.bits))))
		case pInt:
			parts = append(parts, fmt.Sprint(int32(uint32(a.bits))))
		default:
			parts = append(parts, fmt.Sprint(a.bits))
		}
	}
	return fmt.Sprintf("kernel %s (grid %v, block %v; %s)", kernel, grid, block, strings.Join(parts, ", "))
}

func (b *Backend) describeGEMM(c gemmCall) string {
	return fmt.Sprintf("GEMM (transA %v, transB %v, m %d, n %d, k %d, batch %d; A %s lda %d stride %d; B %s ldb %d stride %d; C %s ldc %d stride %d, beta %g)",
		c.transA, c.transB, c.m, c.n, c.k, c.batch, b.describePtr(c.a), c.lda, c.strideA,
		b.describePtr(c.b), c.ldb, c.strideB, b.describePtr(c.c), c.ldc, c.strideC, c.beta)
}

// describePtr says where a device address points: "float 12 of 4096".
func (b *Backend) describePtr(p uintptr) string {
	if p == 0 {
		return "null"
	}
	for base, n := range b.sizes {
		if p >= base && p < base+uintptr(n) {
			return fmt.Sprintf("float %d of %d", (p-base)/4, n/4)
		}
	}
	return fmt.Sprintf("%#x (in no allocation)", p)
}

func va(x engine.View) arg { return ptrArg(ptr(x)) }
func ia(n int) arg         { return intArg(n) }

func (b *Backend) ReLUForward(out, in engine.View, p, c, ldIn, ldOut int) {
	b.run("relu_fwd", p*c, va(out), va(in), ia(p), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) ReLUBackward(dIn, dOut, out engine.View, p, c, ldIn, ldOut int) {
	b.run("relu_bwd", p*c, va(dIn), va(dOut), va(out), ia(p), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) AvgPool2Forward(out, in engine.View, n, h, w, c, ldIn, ldOut int) {
	b.run("avgpool2_fwd", n*(h/2)*(w/2)*c, va(out), va(in), ia(n), ia(h), ia(w), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) AvgPool2Backward(dIn, dOut engine.View, n, h, w, c, ldIn, ldOut int) {
	b.run("avgpool2_bwd", n*h*w*c, va(dIn), va(dOut), ia(n), ia(h), ia(w), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) GlobalAvgPoolForward(out, in engine.View, n, hw, c, ldIn int) {
	b.run("gap_fwd", n*c, va(out), va(in), ia(n), ia(hw), ia(c), ia(ldIn))
}
func (b *Backend) GlobalAvgPoolBackward(dIn, dOut engine.View, n, hw, c, ldIn int) {
	b.run("gap_bwd", n*hw*c, va(dIn), va(dOut), ia(n), ia(hw), ia(c), ia(ldIn))
}

// LinearForward: out (N, O) = in (N, I) · wᵀ + bias.
func (b *Backend) LinearForward(out, in, w, bias engine.View, n, i, o int) {
	b.matmul(matmul{transB: true, m: n, n: o, k: i, a: ptr(in), lda: i, b: ptr(w), ldb: i, c: ptr(out), ldc: o})
	b.run("bias_fwd", n*o, va(out), va(bias), ia(n), ia(o))
}

func (b *Backend) LinearBackward(dIn, dW, dBias, dOut, in, w engine.View, n, i, o int) {
	b.matmul(matmul{transA: true, m: o, n: i, k: n, a: ptr(dOut), lda: o, b: ptr(in), ldb: i, c: ptr(dW), ldc: i, beta: 1})
	b.matmul(matmul{m: n, n: i, k: o, a: ptr(dOut), lda: o, b: ptr(w), ldb: i, c: ptr(dIn), ldc: i, beta: 1})
	b.run("bias_bwd", o, va(dBias), va(dOut), ia(n), ia(o))
}

// SoftmaxCrossEntropyForward runs in one block of 256 threads, whose fixed
// tree gives the mean loss.
func (b *Backend) SoftmaxCrossEntropyForward(loss, probs, logits engine.View, labels []int32, n, k int) {
	lp := b.upInts(labels[:n])
	b.launch("xent_fwd", [3]int{1, 1, 1}, [3]int{threads, 1, 1}, va(loss), va(probs), va(logits), ptrArg(lp), ia(n), ia(k))
}
func (b *Backend) SoftmaxCrossEntropyBackward(dLogits, probs engine.View, labels []int32, n, k int) {
	lp := b.upInts(labels[:n])
	b.run("xent_bwd", n*k, va(dLogits), va(probs), ptrArg(lp), ia(n), ia(k))
}

// DropoutMask draws from a counter-based hash of seed and position, not
// the CPU's PCG stream: the masks have the same law, not the same bits.
func (b *Backend) DropoutMask(mask engine.View, n int, p float32, seed uint64) {
	b.run("dropout_mask", n, va(mask), ia(n), f32Arg(p), u64Arg(seed))
}
func (b *Backend) DropoutForward(out, in, mask engine.View, p, c, ldIn, ldOut int) {
	b.run("dropout_fwd", p*c, va(out), va(in), va(mask), ia(p), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) DropoutBackward(dIn, dOut, mask engine.View, p, c, ldIn, ldOut int) {
	b.run("dropout_bwd", p*c, va(dIn), va(dOut), va(mask), ia(p), ia(c), ia(ldIn), ia(ldOut))
}
func (b *Backend) MaskForward(wm, w, mask engine.View, n int) {
	b.run("mask_fwd", n, va(wm), va(w), va(mask), ia(n))
}
func (b *Backend) MaskBackward(dW, dWm, mask engine.View, n int) {
	b.run("mask_bwd", n, va(dW), va(dWm), va(mask), ia(n))
}
func (b *Backend) IndexSelectForward(out, in engine.View, idx []int32, p, ldIn, ldOut int) {
	engine.CheckIndices("cuda: index select", idx, ldIn)
	ip := b.upInts(idx)
	b.run("index_select_fwd", p*len(idx), va(out), va(in), ptrArg(ip), ia(p), ia(len(idx)), ia(ldIn), ia(ldOut))
}
func (b *Backend) IndexSelectBackward(dIn, dOut engine.View, idx []int32, p, ldIn, ldOut int) {
	engine.CheckIndices("cuda: index select", idx, ldIn)
	ip := b.upInts(idx)
	b.run("index_select_bwd", p*len(idx), va(dIn), va(dOut), ptrArg(ip), ia(p), ia(len(idx)), ia(ldIn), ia(ldOut))
}
func (b *Backend) ShuffleForward(out, in engine.View, p, c, g, ldIn, ldOut int) {
	b.run("shuffle_fwd", p*c, va(out), va(in), ia(p), ia(c), ia(g), ia(ldIn), ia(ldOut))
}
func (b *Backend) ShuffleBackward(dIn, dOut engine.View, p, c, g, ldIn, ldOut int) {
	b.run("shuffle_bwd", p*c, va(dIn), va(dOut), ia(p), ia(c), ia(g), ia(ldIn), ia(ldOut))
}
func (b *Backend) SGDNesterov(w, g, vel engine.View, n int, lr, momentum, wd float32) {
	b.run("sgd_nesterov", n, va(w), va(g), va(vel), ia(n), f32Arg(lr), f32Arg(momentum), f32Arg(wd))
}
