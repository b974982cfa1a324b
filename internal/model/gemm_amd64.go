package model

/*
int kf_gemm_isa(int want);
void kf_gemm(const float *x, const float *w, float *y, long M, long K, long N, long n0, long n1);
void kf_gemm_nt(const float *x, const float *w, float *y, long M, long K, long N, long n0, long n1);
void kf_attn_scores(const float *q, const float *k, float *s, long R, long rep, long D, long tk, long ld, const long *rowmap, const long *n, float scale);
void kf_attn_values(const float *p, const float *v, float *o, long R, long rep, long D, long tk, long ld, const long *rowmap, const long *n);
*/
import "C"

import (
	"unsafe"
)

// kernelISA is the instruction set gemm_amd64.c runs: isaAVX512 where
// the CPU has it, else isaAVX2 (with FMA), else none (0: libtorch does it
// all). haveKernel: there is one.
var (
	kernelISA  = useKernelISA(isaAVX512)
	haveKernel = kernelISA != 0
)

// useKernelISA makes the kernels run isa, or the best the CPU has below
// it, and returns which; tests use it to check each path the CPU can run.
func useKernelISA(isa int) int { return int(C.kf_gemm_isa(C.int(isa))) }

// kernelRows computes columns [n0,n1) of y[m,n] = x[m,k] @ w[k,n].
func kernelRows(x, w, y unsafe.Pointer, m, k, n, n0, n1 int64) {
	C.kf_gemm((*C.float)(x), (*C.float)(w), (*C.float)(y), C.long(m), C.long(k), C.long(n), C.long(n0), C.long(n1))
}

// kernelRowsNT computes columns [n0,n1) of y[m,n] = x[m,k] @ w[n,k]^T, m <= 8.
func kernelRowsNT(x, w, y unsafe.Pointer, m, k, n, n0, n1 int64) {
	C.kf_gemm_nt((*C.float)(x), (*C.float)(w), (*C.float)(y), C.long(m), C.long(k), C.long(n), C.long(n0), C.long(n1))
}

// attnScores and attnValues run gemm_amd64.c's decode attention halves;
// rowmap and n have one entry per row.
func attnScores(q, k, s unsafe.Pointer, r, rep, d, tk, ld int64, rowmap, n []int64, scale float64) {
	C.kf_attn_scores((*C.float)(q), (*C.float)(k), (*C.float)(s), C.long(r), C.long(rep), C.long(d), C.long(tk), C.long(ld),
		(*C.long)(unsafe.Pointer(&rowmap[0])), (*C.long)(unsafe.Pointer(&n[0])), C.float(scale))
}

func attnValues(p, v, o unsafe.Pointer, r, rep, d, tk, ld int64, rowmap, n []int64) {
	C.kf_attn_values((*C.float)(p), (*C.float)(v), (*C.float)(o), C.long(r), C.long(rep), C.long(d), C.long(tk), C.long(ld),
		(*C.long)(unsafe.Pointer(&rowmap[0])), (*C.long)(unsafe.Pointer(&n[0])))
}
