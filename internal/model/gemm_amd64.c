// Decode-step matrix products y[M,N] = x[M,K] @ w[K,N] for a few rows M
// (one per sequence of a decode batch), float32, row-major and contiguous,
// with AVX-512. See gemm.go for why.
//
// Each output element is a sum over k = 0..K-1 in order, one fused
// multiply-add per step, whatever M and the tile: a row's result does not
// depend on which other rows share the call (batch invariance).
#include <immintrin.h>

#define KF_AVX512 __attribute__((target("avx512f")))
#define KF_INLINE static inline __attribute__((always_inline))
#define KF_UNROLL _Pragma("GCC unroll 16")

// How far ahead, in floats along a row of w, each tile prefetches: the
// weights are read once per step from memory, and the tile walks down the
// rows of a narrow column strip, which the hardware prefetcher alone
// follows poorly.
#define KF_PREFETCH 64

// KF_TILE(MR, T): rows [0,MR) of y, columns [n, n+16T), the MR*T
// accumulators in registers.
#define KF_TILE(MR, T)                                                         \
  KF_INLINE KF_AVX512 void kf_tile_##MR##_##T(const float *x, const float *w,  \
                                              float *y, long K, long N,        \
                                              long n) {                        \
    __m512 acc[MR][T];                                                         \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int t = 0; t < T; t++) acc[m][t] = _mm512_setzero_ps();   \
    const float *wk = w + n;                                                   \
    for (long k = 0; k < K; k++, wk += N) {                                    \
      __m512 wv[T];                                                            \
      KF_UNROLL for (int t = 0; t < T; t++) {                                  \
        _mm_prefetch((const char *)(wk + KF_PREFETCH + 16 * t), _MM_HINT_T0);  \
        wv[t] = _mm512_loadu_ps(wk + 16 * t);                                  \
      }                                                                        \
      KF_UNROLL for (int m = 0; m < MR; m++) {                                 \
        __m512 xb = _mm512_set1_ps(x[m * K + k]);                              \
        KF_UNROLL for (int t = 0; t < T; t++)                                  \
          acc[m][t] = _mm512_fmadd_ps(xb, wv[t], acc[m][t]);                   \
      }                                                                        \
    }                                                                          \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int t = 0; t < T; t++)                                    \
        _mm512_storeu_ps(y + m * N + n + 16 * t, acc[m][t]);                   \
  }

// KF_ROWS(MR, T): rows [0,MR) of y over columns [n0,n1): wide tiles, then
// one-register tiles, then the last columns one at a time.
#define KF_ROWS(MR, T)                                                         \
  static KF_AVX512 void kf_rows_##MR(const float *x, const float *w, float *y, \
                                     long K, long N, long n0, long n1) {       \
    long n = n0;                                                               \
    for (; n + 16 * T <= n1; n += 16 * T)                                      \
      kf_tile_##MR##_##T(x, w, y, K, N, n);                                    \
    for (; n + 16 <= n1; n += 16)                                              \
      kf_tile_##MR##_1(x, w, y, K, N, n);                                      \
    for (; n < n1; n++)                                                        \
      for (int m = 0; m < MR; m++) {                                           \
        float s = 0;                                                           \
        for (long k = 0; k < K; k++)                                           \
          s = __builtin_fmaf(x[m * K + k], w[k * N + n], s);                   \
        y[m * N + n] = s;                                                      \
      }                                                                        \
  }

// Tiles: enough accumulators to hide the FMA latency, within 32 registers.
KF_TILE(1, 1) KF_TILE(2, 1) KF_TILE(3, 1) KF_TILE(4, 1)
KF_TILE(5, 1) KF_TILE(6, 1) KF_TILE(7, 1) KF_TILE(8, 1)
KF_TILE(1, 8) KF_TILE(2, 6) KF_TILE(3, 4) KF_TILE(4, 4)
KF_TILE(5, 3) KF_TILE(6, 3) KF_TILE(7, 3) KF_TILE(8, 3)
KF_ROWS(1, 8) KF_ROWS(2, 6) KF_ROWS(3, 4) KF_ROWS(4, 4)
KF_ROWS(5, 3) KF_ROWS(6, 3) KF_ROWS(7, 3) KF_ROWS(8, 3)

// kf_gemm_ok reports whether this CPU runs the kernels.
int kf_gemm_ok(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

// kf_gemm computes columns [n0,n1) of y = x @ w. With more than eight rows
// it goes by column chunks, so that a chunk of w read from memory serves
// every block of eight rows from the cache.
KF_AVX512 void kf_gemm(const float *x, const float *w, float *y, long M,
                       long K, long N, long n0, long n1) {
  long chunk = M > 8 ? 192 : n1 - n0;
  for (long c0 = n0; c0 < n1; c0 += chunk) {
    long c1 = c0 + chunk < n1 ? c0 + chunk : n1;
    for (long m = 0; m < M; m += 8) {
      const float *xm = x + m * K;
      float *ym = y + m * N;
      switch (M - m >= 8 ? 8 : M - m) {
      case 1: kf_rows_1(xm, w, ym, K, N, c0, c1); break;
      case 2: kf_rows_2(xm, w, ym, K, N, c0, c1); break;
      case 3: kf_rows_3(xm, w, ym, K, N, c0, c1); break;
      case 4: kf_rows_4(xm, w, ym, K, N, c0, c1); break;
      case 5: kf_rows_5(xm, w, ym, K, N, c0, c1); break;
      case 6: kf_rows_6(xm, w, ym, K, N, c0, c1); break;
      case 7: kf_rows_7(xm, w, ym, K, N, c0, c1); break;
      default: kf_rows_8(xm, w, ym, K, N, c0, c1); break;
      }
    }
  }
}
