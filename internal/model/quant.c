// Matrix products with ggml-quantized weights (Q8_0, Q4_0, Q4_1), block by
// block, without dequantizing the matrix: y[M,N] = x[M,K] @ W[N,K]^T. See
// quant.go.
//
// As ggml does on the CPU, the activations are quantized first, each row in
// blocks of 32 to 8 bits with a float16 scale (ggml's Q8_0 and, with the
// block's scaled sum for Q4_1's minimum, Q8_1); then each output element
// is a sum over blocks of the weight block's scale times the activation
// block's scale times an integer dot product of 32 pairs. The integer dot
// products use AVX2 (as ggml's ggml_vec_dot_q*_q8_* do) when the CPU has it,
// and plain C otherwise; both give the same integer sums, and the float sums
// differ only in the order of additions.
#include <math.h>
#include <stdint.h>
#include <string.h>

#define QK 32

// The activation block: ggml's block_q8_1 with the scales kept as the
// float values of their float16 roundings.
typedef struct {
  float d;    // scale (a float16 value)
  float s;    // d * sum(q) (a float16 value), for Q4_1's minimum
  int8_t q[QK];
} kf_q8;

// The ggml type ids of the weight blocks (ggml.h's enum ggml_type).
enum { KF_Q4_0 = 2, KF_Q4_1 = 3, KF_Q8_0 = 8 };

static float kf_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else if (exp != 0) {
    bits = sign | (exp + 112) << 23 | mant << 13;
  } else if (mant == 0) {
    bits = sign;
  } else {
    float f = (float)mant * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

// kf_f32_to_f16 rounds to nearest even, as F16C's _cvtss_sh and ggml's
// GGML_FP32_TO_FP16 do (finite inputs; the scales here are finite).
static uint16_t kf_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x47800000u) { // overflow (or inf/nan)
    return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00));
  }
  if (ax < 0x38800000u) { // subnormal half or zero: round at 2^-24
    float a;
    memcpy(&a, &ax, 4);
    float r = a * 16777216.0f; // in units of 2^-24
    uint32_t m = (uint32_t)r;
    float frac = r - (float)m;
    if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
    return (uint16_t)(sign | m);
  }
  uint32_t m = ax + 0xc8000fffu + ((ax >> 13) & 1); // rebias exponent, round to nearest even
  return (uint16_t)(sign | (m >> 13));
}

static float kf_round_f16(float f) { return kf_f16_to_f32(kf_f32_to_f16(f)); }

// kf_q8_quantize quantizes x[M,K] (K a multiple of 32) into M*K/32 blocks,
// as ggml's quantize_row_q8_1_ref: d = max|x|/127, q = round(x/d).
void kf_q8_quantize(const float *x, kf_q8 *out, long M, long K) {
  long nb = K / QK;
  for (long i = 0; i < M * nb; i++) {
    const float *v = x + i * QK;
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(v[j]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; j++) {
      int q = (int)roundf(v[j] * id);
      out[i].q[j] = (int8_t)q;
      sum += q;
    }
    out[i].d = kf_round_f16(d);
    out[i].s = kf_round_f16(d * (float)sum);
  }
}

static long kf_block_bytes(int type) {
  switch (type) {
  case KF_Q4_0: return 18;
  case KF_Q4_1: return 20;
  case KF_Q8_0: return 34;
  }
  return 0;
}

// kf_dot_c is one output element in plain C.
static float kf_dot_c(int type, const uint8_t *w, const kf_q8 *x, long nb) {
  float sum = 0;
  for (long b = 0; b < nb; b++) {
    const kf_q8 *xb = x + b;
    int isum = 0;
    switch (type) {
    case KF_Q8_0: {
      const uint8_t *blk = w + b * 34;
      const int8_t *q = (const int8_t *)(blk + 2);
      for (int j = 0; j < QK; j++) isum += q[j] * xb->q[j];
      sum += kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)) * xb->d * (float)isum;
      break;
    }
    case KF_Q4_0: {
      const uint8_t *blk = w + b * 18;
      for (int j = 0; j < QK / 2; j++) {
        isum += ((blk[2 + j] & 0x0f) - 8) * xb->q[j];
        isum += ((blk[2 + j] >> 4) - 8) * xb->q[j + QK / 2];
      }
      sum += kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)) * xb->d * (float)isum;
      break;
    }
    case KF_Q4_1: {
      const uint8_t *blk = w + b * 20;
      for (int j = 0; j < QK / 2; j++) {
        isum += (blk[4 + j] & 0x0f) * xb->q[j];
        isum += (blk[4 + j] >> 4) * xb->q[j + QK / 2];
      }
      float d = kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
      float m = kf_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
      sum += d * xb->d * (float)isum + m * xb->s;
      break;
    }
    }
  }
  return sum;
}

static void kf_qmatmul_c(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0, long n1) {
  long nb = K / QK, rb = nb * kf_block_bytes(type);
  for (long n = n0; n < n1; n++)
    for (long i = 0; i < M; i++) y[i * N + n] = kf_dot_c(type, w + n * rb, x + i * nb, nb);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define KF_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KF_INLINE static inline __attribute__((always_inline))
#define KF_MR 4 // activation rows per pass over a weight row

KF_INLINE KF_AVX2 float kf_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// kf_unpack4 spreads 16 bytes of nibbles into 32 bytes 0..15: the low
// nibbles are elements 0..15, the high ones 16..31 (ggml's order).
KF_INLINE KF_AVX2 __m256i kf_unpack4(const uint8_t *p) {
  __m128i t = _mm_loadu_si128((const __m128i *)p);
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

// kf_dot_s8 is 8 int32 partial sums of 32 products of signed bytes, with
// ggml's sign trick (maddubs multiplies unsigned by signed bytes).
KF_INLINE KF_AVX2 __m256i kf_dot_s8(__m256i a, __m256i b) {
  __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// kf_dot_u8 is the same for unsigned a (0..15) by signed b.
KF_INLINE KF_AVX2 __m256i kf_dot_u8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

// kf_rows computes y[i, n] for R activation rows (R <= KF_MR) and one
// weight row: the weight block is unpacked once and used R times.
KF_INLINE KF_AVX2 void kf_rows(int type, const uint8_t *w, const kf_q8 *x, float *y, long nb, long N, int R) {
  __m256 acc[KF_MR];
  float mins[KF_MR];
  for (int r = 0; r < KF_MR; r++) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = 0;
  }
  for (long b = 0; b < nb; b++) {
    __m256i wq;
    float dw, mw = 0;
    switch (type) {
    case KF_Q8_0: {
      const uint8_t *blk = w + b * 34;
      dw = _cvtsh_ss(*(const uint16_t *)blk);
      wq = _mm256_loadu_si256((const __m256i *)(blk + 2));
      break;
    }
    case KF_Q4_0: {
      const uint8_t *blk = w + b * 18;
      dw = _cvtsh_ss(*(const uint16_t *)blk);
      wq = _mm256_sub_epi8(kf_unpack4(blk + 2), _mm256_set1_epi8(8));
      break;
    }
    default: { // KF_Q4_1
      const uint8_t *blk = w + b * 20;
      dw = _cvtsh_ss(*(const uint16_t *)blk);
      mw = _cvtsh_ss(*(const uint16_t *)(blk + 2));
      wq = kf_unpack4(blk + 4);
      break;
    }
    }
    for (int r = 0; r < R; r++) {
      const kf_q8 *xb = x + r * nb + b;
      __m256i xq = _mm256_loadu_si256((const __m256i *)xb->q);
      __m256i dot = type == KF_Q4_1 ? kf_dot_u8(wq, xq) : kf_dot_s8(wq, xq);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(dot), acc[r]);
      if (type == KF_Q4_1) mins[r] += mw * xb->s;
    }
  }
  for (int r = 0; r < R; r++) y[r * N] = kf_hsum(acc[r]) + mins[r];
}

// kf_matmul_t is kf_qmatmul_avx2 for one type: inlined with type and R
// constant, the compiler keeps the accumulators in registers and drops
// the other types' branches.
KF_INLINE KF_AVX2 void kf_matmul_t(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0,
                                   long n1) {
  long nb = K / QK, rb = nb * kf_block_bytes(type);
  for (long n = n0; n < n1; n++) {
    const uint8_t *wr = w + n * rb;
    if (n + 1 < n1) _mm_prefetch((const char *)(wr + rb), _MM_HINT_T0);
    long i = 0;
    for (; i + KF_MR <= M; i += KF_MR) kf_rows(type, wr, x + i * nb, y + i * N + n, nb, N, KF_MR);
    for (; i < M; i++) kf_rows(type, wr, x + i * nb, y + i * N + n, nb, N, 1);
  }
}

static KF_AVX2 void kf_qmatmul_avx2(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0,
                                    long n1) {
  switch (type) {
  case KF_Q8_0: kf_matmul_t(KF_Q8_0, w, x, y, M, K, N, n0, n1); break;
  case KF_Q4_0: kf_matmul_t(KF_Q4_0, w, x, y, M, K, N, n0, n1); break;
  case KF_Q4_1: kf_matmul_t(KF_Q4_1, w, x, y, M, K, N, n0, n1); break;
  }
}

static int kf_have_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#else
static int kf_have_avx2(void) { return 0; }
#endif

// kf_quant_simd reports whether kf_qmatmul uses the AVX2 path; force_c
// (set by tests) makes it use plain C.
static int kf_force_c;

int kf_quant_simd(void) { return kf_have_avx2() && !kf_force_c; }

void kf_quant_force_c(int on) { kf_force_c = on; }

// kf_qmatmul computes columns [n0,n1) of y[M,N] = x @ W^T, x quantized by
// kf_q8_quantize, W [N,K] in ggml blocks of the given type.
void kf_qmatmul(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0, long n1) {
#if defined(__x86_64__)
  static int simd = -1;
  if (simd < 0) simd = kf_have_avx2();
  if (simd && !kf_force_c) {
    kf_qmatmul_avx2(type, w, x, y, M, K, N, n0, n1);
    return;
  }
#endif
  kf_qmatmul_c(type, w, x, y, M, K, N, n0, n1);
}

// kf_qrows dequantizes rows ids[0..n) of W [*,K] into out[n,K] (an
// embedding lookup).
void kf_qrows(int type, const uint8_t *w, const long *ids, long n, long K, float *out) {
  long nb = K / QK, rb = nb * kf_block_bytes(type);
  for (long r = 0; r < n; r++) {
    const uint8_t *row = w + ids[r] * rb;
    float *o = out + r * K;
    for (long b = 0; b < nb; b++) {
      const uint8_t *blk = row + b * kf_block_bytes(type);
      float d = kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
      switch (type) {
      case KF_Q8_0:
        for (int j = 0; j < QK; j++) o[b * QK + j] = d * (float)((const int8_t *)(blk + 2))[j];
        break;
      case KF_Q4_0:
        for (int j = 0; j < QK / 2; j++) {
          o[b * QK + j] = d * (float)((blk[2 + j] & 0x0f) - 8);
          o[b * QK + j + QK / 2] = d * (float)((blk[2 + j] >> 4) - 8);
        }
        break;
      case KF_Q4_1: {
        float m = kf_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
        for (int j = 0; j < QK / 2; j++) {
          o[b * QK + j] = d * (float)(blk[4 + j] & 0x0f) + m;
          o[b * QK + j + QK / 2] = d * (float)(blk[4 + j] >> 4) + m;
        }
        break;
      }
      }
    }
  }
}
