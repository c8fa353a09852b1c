package cuda

import "fmt"

// blas holds the cuBLAS functions the backend calls; each returns a
// cublasStatus_t (0 is success).
type blas struct {
	create     func(h *uintptr) int32
	destroy    func(h uintptr) int32
	setStream  func(h, stream uintptr) int32
	getVersion func(h uintptr, v *int32) int32
	// (h, transa, transb, m, n, k, alpha *float32, a, lda, strideA int64,
	// b, ldb, strideB, beta *float32, c, ldc, strideC, batch), through call
	gemmStridedBatched uintptr
}

func loadBLAS() (*blas, error) {
	lib, path, err := libCUBLAS.open(nil)
	if err != nil {
		return nil, err
	}
	b := new(blas)
	err = bind(lib, path, map[string]any{
		"cublasCreate_v2": &b.create, "cublasDestroy_v2": &b.destroy,
		"cublasSetStream_v2": &b.setStream, "cublasGetVersion_v2": &b.getVersion,
		"cublasSgemmStridedBatched": &b.gemmStridedBatched,
	})
	return b, err
}

// blasStatus names cuBLAS's result codes.
var blasStatus = map[int32]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func blasCheck(r int32, call string) error {
	if r == 0 {
		return nil
	}
	name, ok := blasStatus[r]
	if !ok {
		name = "CUBLAS_STATUS_UNKNOWN"
	}
	return fmt.Errorf("cuda: %s: %s (%d)", call, name, r)
}

// A gemmCall is one cublasSgemmStridedBatched call, column-major as cuBLAS
// sees it: C = op(A)·op(B) + beta·C for batch matrices strides apart.
type gemmCall struct {
	transA, transB bool
	m, n, k        int
	a, b, c        uintptr // device addresses of the first matrices
	lda, ldb, ldc  int
	strideA        int // elements between consecutive matrices
	strideB        int
	strideC        int
	batch          int
	beta           float32
}

// A matmul is the same request over row-major matrices, as the CPU
// backend's Gemm takes it: C (m×n) = op(A)·op(B) + beta·C.
type matmul gemmCall

// call returns the cuBLAS call computing mm. A row-major matrix read
// column-major is its transpose, so cuBLAS computes Cᵀ = op(B)ᵀ·op(A)ᵀ:
// the operands trade places and m and n swap.
func (mm matmul) call() gemmCall {
	return gemmCall{transA: mm.transB, transB: mm.transA, m: mm.n, n: mm.m, k: mm.k,
		a: mm.b, b: mm.a, c: mm.c, lda: mm.ldb, ldb: mm.lda, ldc: mm.ldc,
		strideA: mm.strideB, strideB: mm.strideA, strideC: mm.strideC, batch: max(mm.batch, 1), beta: mm.beta}
}
