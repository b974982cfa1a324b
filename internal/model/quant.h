// The entry points of quant.c, for cgo (quant.go) and for C callers that
// multiply by ggml-quantized weights from their own threads. All are
// thread-safe and allocate nothing; the caller owns every buffer.
#ifndef KF_QUANT_H
#define KF_QUANT_H

#include <stddef.h>
#include <stdint.h>

// kf_q8 is one block of 32 quantized activations: ggml's block_q8_1 with
// the scales kept as the float values of their float16 roundings.
typedef struct {
  float d;  // scale (a float16 value)
  float s;  // d * sum(q) (a float16 value), for Q4_1's minimum
  int8_t q[32];
} kf_q8;

// kf_q8_quantize quantizes x[M,K] (K a multiple of 32) into M*K/32 blocks,
// row after row.
void kf_q8_quantize(const float *x, kf_q8 *out, long M, long K);

// KF_PACKED8 marks a type id whose blocks kf_qpack has packed 8 rows at a
// time (Q4_0: 2 | KF_PACKED8, and so Q4_1 and Q8_0); every function here
// takes packed ids too.
#define KF_PACKED8 0x100

// kf_qmatmul computes columns [n0,n1) of y[M,N] = x @ W^T: x quantized by
// kf_q8_quantize, W [N,K] in ggml blocks of type (ggml's ids: 2 Q4_0,
// 3 Q4_1, 8 Q8_0; or what kf_qpack returned). An output's bits do not
// depend on M, n0 or n1, so the columns can be split over threads anyhow
// (multiples of 8 keep the tiles whole) and a row gives the same result
// alone or in a batch.
void kf_qmatmul(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0, long n1);

// kf_qmatmul_claim computes chunks of chunk columns of y = x @ W^T (all
// N in the end), each claimed from *next (0 at first) by an atomic add,
// until none is left: threads calling it together share the work.
void kf_qmatmul_claim(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long chunk,
                      long *next);

// kf_qpack copies W [N,K] of a ggml type from src to dst (not
// overlapping, the same size), in the layout its kernels read fastest:
// Q4_0, Q4_1 and Q8_0 with N a multiple of 8 packed 8 rows at a time,
// others as they are.
// It returns the type id dst then holds.
int kf_qpack(int type, const uint8_t *src, uint8_t *dst, long N, long K);

// kf_qalloc allocates n bytes (free them with free) 2 MiB aligned, for
// transparent huge pages where the system gives them.
void *kf_qalloc(size_t n);

// kf_qrows dequantizes rows ids[0..n) of W [*,K] into out[n,K] (an
// embedding lookup).
void kf_qrows(int type, const uint8_t *w, const long *ids, long n, long K, float *out);

// kf_quant_simd reports whether the AVX2 code runs; kf_quant_force_c (for
// tests) makes everything use the plain C code.
int kf_quant_simd(void);
void kf_quant_force_c(int on);

#endif
