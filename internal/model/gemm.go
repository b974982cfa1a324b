package model

import (
	"sync"

	"github.com/kfllm/kfllm/internal/torch"
)

// A decode step multiplies a handful of rows (one per sequence in the
// batch) by every weight matrix of the model. libtorch hands that to MKL,
// which on this project's reference CPU (AMD EPYC with AVX-512, 1 thread)
// runs a batch of 8 rows at about 40 GFLOP/s, a sixth of what the core
// does on data in cache: it repacks each weight matrix on every call, and
// the repacking, not the arithmetic, is what takes the time (perf:
// mkl_blas_def_sgemm_scopy_down16_bdz 33% of a batch-8 serving step, the
// sgemm kernel itself 22%). A few rows times a weight needs no packing:
// gemm_amd64.c's kf_gemm_nt reads the weight as torch.nn.Linear stores
// it, [out,in] row-major, a range of output columns being a range of
// contiguous rows of w, which it streams once per step with every row's
// dot products in registers (AVX-512 where the CPU has it, else AVX2 and
// FMA). One token is memory bound: the whole model is read once, and a
// single sequential stream per thread is what the memory system serves
// fastest. Inference weights used to be stored transposed, [in,out], for
// a kernel that walked them 16 rows at a time across a column strip: a
// SmolLM2-135M step's products took 36 ms that way against 23 ms as row
// streams (2 threads, quiet machine; BenchmarkFusedStep and
// docs/benchmarks.md, "Float32 decode: weight rows and huge pages").
// kf_gemm (x @ w for w [K,N]) remains for rope's small rotation matrix.
// BenchmarkRowsMatmul compares with libtorch.
//
// Each output element is a fixed-order sum over the inputs for any number
// of rows: a row's product is the same bits alone or in a batch of 8
// (TestRowsMatmul).

// kernelMaxRows is the most rows rowsMatmul takes for a large matrix:
// decode batches. Longer inputs (prefill) go to libtorch. A small matrix
// (at most kernelSmallMatrix elements: rope's rotation) stays in the
// cache, and takes any number of rows. kernelMaxRowsNT is the most rows
// rowsMatmulNT takes: the weights' own [out,in] layout also serves short
// prompts' prefill, which MKL spends mostly repacking the weights for
// (a 22-token prompt on SmolLM2-135M, 2 threads: 180 -> 155 ms to the
// first token; BenchmarkRowsMatmul rows=22 and 64 1.3-1.5x faster than
// libtorch), while a 450-token prompt was faster in MKL (1.24 vs 1.5 s).
const (
	kernelMaxRows     = 16
	kernelSmallMatrix = 1 << 16
	kernelMaxRowsNT   = 64
)

// The kernels' instruction sets (useKernelISA).
const (
	isaAVX2   = 1
	isaAVX512 = 2
)

// matmulRows is x @ w, with the kernel where it applies (rowsMatmul).
func (s *scope) matmulRows(x, w ct) ct {
	if y := s.rowsMatmul(x, w); y != nil {
		return y
	}
	return s.Matmul(x, w)
}

// rowsMatmul is x @ wt for x [..., K] of at most kernelMaxRows rows and wt
// [K,N], both contiguous float32 on the CPU and outside autograd (LoRA
// training runs the frozen weights with inputs that need gradients), with
// the kernel; it returns nil (and does nothing) when the kernel does not
// apply, and the caller uses libtorch.
func (s *scope) rowsMatmul(x, wt ct) ct { return s.kernelMatmul(x, wt, false) }

// rowsMatmulNT is x @ w^T for w [N,K] (a tied lm_head's embedding), as
// rowsMatmul, for at most kernelMaxRows rows.
func (s *scope) rowsMatmulNT(x, w ct) ct { return s.kernelMatmul(x, w, true) }

func (s *scope) kernelMatmul(x, wt ct, nt bool) ct {
	if !haveKernel || !s.OK() || !kernelFits(x, wt, nt) {
		return nil
	}
	xs, ws := torch.Shape(x), torch.Shape(wt)
	k, n := ws[0], ws[1]
	run := kernelRows
	if nt {
		k, n, run = ws[1], ws[0], kernelRowsNT
	}
	m := torch.Numel(xs) / k
	out := append(xs[:len(xs)-1:len(xs)-1], n)
	y := s.Empty(out...)
	if y == nil {
		return nil
	}
	xp, wp, yp := torch.DataPtr(x), torch.DataPtr(wt), torch.DataPtr(y)
	// Split the columns over libtorch's threads when there is enough work.
	parts := int64(1)
	if t := int64(torch.Threads()); t > 1 && m*k*n >= 1<<18 {
		parts = min(t, n/64)
	}
	if parts <= 1 {
		run(xp, wp, yp, m, k, n, 0, n)
		return y
	}
	step := (n/parts + 47) / 48 * 48
	var wg sync.WaitGroup
	for n0 := step; n0 < n; n0 += step {
		wg.Add(1)
		go func(n0, n1 int64) {
			defer wg.Done()
			run(xp, wp, yp, m, k, n, n0, n1)
		}(n0, min(n0+step, n))
	}
	run(xp, wp, yp, m, k, n, 0, min(step, n))
	wg.Wait()
	return y
}

// kernelFits checks the kernel's preconditions on x and wt ([N,K] when
// nt).
func kernelFits(x, wt ct, nt bool) bool {
	if !torch.IsFloat32(x) || !torch.IsFloat32(wt) || !torch.OnCPU(x) || !torch.OnCPU(wt) {
		return false
	}
	if !torch.IsContiguous(x) || !torch.IsContiguous(wt) || torch.NeedsGrad(x) || torch.NeedsGrad(wt) {
		return false
	}
	xs, ws := torch.Shape(x), torch.Shape(wt)
	if len(ws) != 2 || len(xs) < 1 || ws[0] == 0 || ws[1] == 0 {
		return false
	}
	k := ws[0]
	if nt {
		k = ws[1]
	}
	if xs[len(xs)-1] != k {
		return false
	}
	m := torch.Numel(xs) / k
	return m >= 1 && (m <= kernelMaxRows || nt && m <= kernelMaxRowsNT || !nt && ws[0]*ws[1] <= kernelSmallMatrix)
}
