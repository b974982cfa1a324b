// Decode-step matrix products for a few rows M (one per sequence of a
// decode batch), float32, row-major and contiguous: y[M,N] = x[M,K] @
// w[N,K]^T (kf_gemm_nt: the model's weights as stored, [out,in]) and x @
// w[K,N] (kf_gemm: small matrices), and decode attention over the batch
// cache. See gemm.go for why. The
// body (gemm_amd64.h) is compiled twice, for AVX-512 and for AVX2 with
// FMA; kf_gemm_isa picks one for the process from what the CPU has.
//
// Each output element is a sum over k = 0..K-1 in a fixed order, whatever
// M and the tile (kf_gemm: one fused multiply-add per k; kf_gemm_nt: lane
// by lane, then across the lanes): a row's result does not depend on
// which other rows share the call (batch invariance). The two
// instruction sets give the same bits for x @ w; sums across lanes (x @
// w^T, attention scores) group by the register width, so AVX-512 and AVX2
// can differ there in the last bits, each batch invariant.
#include <immintrin.h>

#define KF_INLINE static inline __attribute__((always_inline))
#define KF_UNROLL _Pragma("GCC unroll 16")

// How far ahead, in floats along a row of w, each tile prefetches: the
// weights are read once per step from memory, and the tile walks down the
// rows of a narrow column strip, which the hardware prefetcher alone
// follows poorly.
#define KF_PREFETCH 64

// Rows of w a pass of kf_gemm takes across the columns: 16 ran the
// SmolLM2-135M layer products in 34-39 ms of CPU for one row and 50-56
// for eight (AVX2, 1 thread), 4 in 39-42 / 66-77, 64 in 51-52 / 60-62,
// all K at once (a strip down the whole matrix) in 55-56 / 77-78.
#define KF_KBLOCK 16

// AVX-512: 16 floats a register, 32 registers.
#define KF_TARGET __attribute__((target("avx512f")))
#define KF_SFX(f) f##_avx512
#define V __m512
#define VL 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#define VSUM4(a, b, c, d) kf_sum4_avx512(a, b, c, d)
#define KF_TILES                                                               \
  KF_TILE(1, 8) KF_TILE(2, 6) KF_TILE(3, 4) KF_TILE(4, 4)                      \
  KF_TILE(5, 3) KF_TILE(6, 3) KF_TILE(7, 3) KF_TILE(8, 3)
#define KF_ROWS_ALL                                                            \
  KF_ROWS(1, 8) KF_ROWS(2, 6) KF_ROWS(3, 4) KF_ROWS(4, 4)                      \
  KF_ROWS(5, 3) KF_ROWS(6, 3) KF_ROWS(7, 3) KF_ROWS(8, 3)

// kf_sum4_avx512 returns the lane sums of a, b, c, d as one vector
// [sa,sb,sc,sd].
KF_INLINE KF_TARGET __m128 kf_sum4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
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

#include "gemm_amd64.h"

#undef KF_TARGET
#undef KF_SFX
#undef V
#undef VL
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VMUL
#undef VADD
#undef VHSUM
#undef VSUM4
#undef KF_TILES
#undef KF_ROWS_ALL
#undef KF_TILE
#undef KF_ROWS
#undef KF_NT

// AVX2 with FMA: 8 floats a register, 16 registers, so narrower tiles.
#define KF_TARGET __attribute__((target("avx2,fma")))
#define KF_SFX(f) f##_avx2
#define V __m256
#define VL 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VHSUM(v) _mm_cvtss_f32(kf_sum4_avx2(v, v, v, v))
#define VSUM4(a, b, c, d) kf_sum4_avx2(a, b, c, d)
#define KF_TILES                                                               \
  KF_TILE(1, 6) KF_TILE(2, 4) KF_TILE(3, 3) KF_TILE(4, 3)                      \
  KF_TILE(5, 2) KF_TILE(6, 2) KF_TILE(7, 2)
#define KF_ROWS_ALL                                                            \
  KF_ROWS(1, 6) KF_ROWS(2, 4) KF_ROWS(3, 3) KF_ROWS(4, 3)                      \
  KF_ROWS(5, 2) KF_ROWS(6, 2) KF_ROWS(7, 2) KF_ROWS(8, 1)

// kf_sum4_avx2 returns the lane sums of a, b, c, d as one vector
// [sa,sb,sc,sd]: the two 128-bit halves, then adjacent pairs, then the
// pairs' sums.
KF_INLINE KF_TARGET __m128 kf_sum4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  __m128 c4 = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
  __m128 d4 = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
  return _mm_hadd_ps(_mm_hadd_ps(a4, b4), _mm_hadd_ps(c4, d4));
}

#include "gemm_amd64.h"

// kf_isa is the instruction set the kernels run: 2 AVX-512, 1 AVX2 with
// FMA, 0 none (the caller uses libtorch).
static int kf_isa;

// kf_gemm_isa sets kf_isa to want, or to the best this CPU has if that is
// less, and returns it.
int kf_gemm_isa(int want) {
  __builtin_cpu_init();
  int have = __builtin_cpu_supports("avx512f")                             ? 2
             : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                            : 0;
  kf_isa = want < have ? want : have;
  return kf_isa;
}

void kf_gemm(const float *x, const float *w, float *y, long M, long K, long N,
             long n0, long n1) {
  if (kf_isa == 2)
    kf_gemm_avx512(x, w, y, M, K, N, n0, n1);
  else
    kf_gemm_avx2(x, w, y, M, K, N, n0, n1);
}

void kf_gemm_nt(const float *x, const float *w, float *y, long M, long K,
                long N, long n0, long n1) {
  if (kf_isa == 2)
    kf_gemm_nt_avx512(x, w, y, M, K, N, n0, n1);
  else
    kf_gemm_nt_avx2(x, w, y, M, K, N, n0, n1);
}

void kf_attn_scores(const float *q, const float *k, float *s, long R, long rep,
                    long D, long tk, long ld, const long *rowmap, const long *n,
                    float scale) {
  if (kf_isa == 2)
    kf_attn_scores_avx512(q, k, s, R, rep, D, tk, ld, rowmap, n, scale);
  else
    kf_attn_scores_avx2(q, k, s, R, rep, D, tk, ld, rowmap, n, scale);
}

void kf_attn_values(const float *p, const float *v, float *o, long R, long rep,
                    long D, long tk, long ld, const long *rowmap, const long *n) {
  if (kf_isa == 2)
    kf_attn_values_avx512(p, v, o, R, rep, D, tk, ld, rowmap, n);
  else
    kf_attn_values_avx2(p, v, o, R, rep, D, tk, ld, rowmap, n);
}
