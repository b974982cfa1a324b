package model

/*
int kf_gemm_ok(void);
void kf_gemm(const float *x, const float *w, float *y, long M, long K, long N, long n0, long n1);
// From gotch's libtch (torch_api.cpp): -1 for the CPU, else the CUDA index.
int at_device(void *);
*/
import "C"

import (
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
)

// haveKernel: the CPU runs gemm_amd64.c's AVX-512 code.
var haveKernel = C.kf_gemm_ok() != 0

// kernelRows computes columns [n0,n1) of y[m,n] = x[m,k] @ w[k,n].
func kernelRows(x, w, y unsafe.Pointer, m, k, n, n0, n1 int64) {
	C.kf_gemm((*C.float)(x), (*C.float)(w), (*C.float)(y), C.long(m), C.long(k), C.long(n), C.long(n0), C.long(n1))
}

func onCPU(c lib.Ctensor) bool { return C.at_device(unsafe.Pointer(c)) == -1 }
