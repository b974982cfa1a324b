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

// Decode attention over a batch cache (kvcache.go), one query position per
// sequence. Row r of the step (a sequence and one of its KV heads) has rep
// query heads q[r] [rep,D]; its keys and values are row rowmap[r] of the K
// and V buffers, which starts rowmap[r]*ld floats in and holds one
// position every D floats, n[r] of them valid (0: a row to skip).

// kf_sum4 returns the lane sums of a, b, c, d as one vector [sa,sb,sc,sd].
KF_INLINE KF_AVX512 __m128 kf_sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Pairs within 128-bit lanes, then the four 128-bit lanes.
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  __m512 abcd = _mm512_add_ps(
      _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
      _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))));
  __m128 s = _mm_add_ps(_mm512_castps512_ps128(abcd), _mm512_extractf32x4_ps(abcd, 1));
  s = _mm_add_ps(s, _mm512_extractf32x4_ps(abcd, 2));
  return _mm_add_ps(s, _mm512_extractf32x4_ps(abcd, 3));
}

// kf_dot16 is the lane-wise products of q and k over D (a multiple of 16).
KF_INLINE KF_AVX512 __m512 kf_dot16(const float *q, const float *k, long D) {
  __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(k));
  for (long d = 16; d < D; d += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), acc);
  return acc;
}

// kf_attn_scores writes s[r,i,j] = scale * q[r,i].k[rowmap[r],j] for
// j < n[r], and -inf for n[r] <= j < tk (0 for a whole skipped row). Four
// positions at a time share one reduction across lanes.
KF_AVX512 void kf_attn_scores(const float *q, const float *k, float *s,
                              long R, long rep, long D, long tk, long ld,
                              const long *rowmap, const long *n,
                              float scale) {
  __m128 sc = _mm_set1_ps(scale);
  for (long r = 0; r < R; r++) {
    const float *kr = k + rowmap[r] * ld;
    for (long i = 0; i < rep; i++) {
      const float *qi = q + (r * rep + i) * D;
      float *si = s + (r * rep + i) * tk;
      long j = 0;
      for (; j + 4 <= n[r]; j += 4) {
        const float *kj = kr + j * D;
        __m128 v = kf_sum4(kf_dot16(qi, kj, D), kf_dot16(qi, kj + D, D),
                           kf_dot16(qi, kj + 2 * D, D), kf_dot16(qi, kj + 3 * D, D));
        _mm_storeu_ps(si + j, _mm_mul_ps(sc, v));
      }
      for (; j < n[r]; j++)
        si[j] = scale * _mm512_reduce_add_ps(kf_dot16(qi, kr + j * D, D));
      for (; j < tk; j++)
        si[j] = n[r] > 0 ? -__builtin_inff() : 0;
    }
  }
}

// kf_attn_values writes o[r,i] = sum over j < n[r] of p[r,i,j] *
// v[rowmap[r],j] (zeros for a skipped row): even and odd positions in two
// accumulators each, in order of j, added at the end.
KF_AVX512 void kf_attn_values(const float *p, const float *v, float *o,
                              long R, long rep, long D, long tk, long ld,
                              const long *rowmap, const long *n) {
  for (long r = 0; r < R; r++) {
    const float *vr = v + rowmap[r] * ld;
    for (long i = 0; i < rep; i++) {
      const float *pi = p + (r * rep + i) * tk;
      float *oi = o + (r * rep + i) * D;
      for (long d = 0; d < D; d += 64) {
        long w = D - d < 64 ? (D - d) / 16 : 4;
        __m512 a0[4], a1[4];
        KF_UNROLL for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm512_setzero_ps();
        long j = 0;
        for (; j + 2 <= n[r]; j += 2) {
          __m512 p0 = _mm512_set1_ps(pi[j]), p1 = _mm512_set1_ps(pi[j + 1]);
          const float *vj = vr + j * D + d;
          KF_UNROLL for (int t = 0; t < 4; t++)
            if (t < w) {
              a0[t] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vj + 16 * t), a0[t]);
              a1[t] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(vj + D + 16 * t), a1[t]);
            }
        }
        if (j < n[r]) {
          __m512 p0 = _mm512_set1_ps(pi[j]);
          KF_UNROLL for (int t = 0; t < 4; t++)
            if (t < w) a0[t] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr + j * D + d + 16 * t), a0[t]);
        }
        KF_UNROLL for (int t = 0; t < 4; t++)
          if (t < w) _mm512_storeu_ps(oi + d + 16 * t, _mm512_add_ps(a0[t], a1[t]));
      }
    }
  }
}

// kf_gemm_nt computes columns [n0,n1) of y[M,N] = x[M,K] @ w[N,K]^T, w
// row-major as a tied lm_head reads the embedding [vocab, hidden]. Each w
// row streams once, and its dot products with eight x rows at a time
// stay in registers, summed lane by lane over k and then across the
// lanes: the same order for any M.
KF_AVX512 void kf_gemm_nt(const float *x, const float *w, float *y, long M,
                          long K, long N, long n0, long n1) {
  long kv = K / 16 * 16;
  for (long n = n0; n < n1; n++) {
    const float *wn = w + n * K;
    for (long m0 = 0; m0 < M; m0 += 8) {
      long mr = M - m0 < 8 ? M - m0 : 8;
      const float *xm = x + m0 * K;
      __m512 acc[8];
      KF_UNROLL for (int m = 0; m < 8; m++) acc[m] = _mm512_setzero_ps();
      for (long k = 0; k < kv; k += 16) {
        _mm_prefetch((const char *)(wn + k + 4 * K), _MM_HINT_T0);
        __m512 wv = _mm512_loadu_ps(wn + k);
        KF_UNROLL for (int m = 0; m < 8; m++)
          if (m < mr) acc[m] = _mm512_fmadd_ps(_mm512_loadu_ps(xm + m * K + k), wv, acc[m]);
      }
      for (long m = 0; m < mr; m++) {
        float s = _mm512_reduce_add_ps(acc[m]);
        for (long k = kv; k < K; k++)
          s = __builtin_fmaf(xm[m * K + k], wn[k], s);
        y[(m0 + m) * N + n] = s;
      }
    }
  }
}
