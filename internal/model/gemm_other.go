//go:build !amd64

package model

import "unsafe"

// haveKernel: gemm_amd64.c is x86 only; elsewhere libtorch does it all.
const (
	haveKernel = false
	kernelISA  = 0
)

func useKernelISA(int) int { return 0 }

func kernelRows(x, w, y unsafe.Pointer, m, k, n, n0, n1 int64) {}

func kernelRowsNT(x, w, y unsafe.Pointer, m, k, n, n0, n1 int64) {}

func attnScores(q, k, s unsafe.Pointer, r, rep, d, tk, ld int64, rowmap, n []int64, scale float64) {}

func attnValues(p, v, o unsafe.Pointer, r, rep, d, tk, ld int64, rowmap, n []int64) {}
