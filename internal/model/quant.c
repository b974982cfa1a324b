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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "quant.h"

#define QK 32


// The ggml type ids of the weight blocks (ggml.h's enum ggml_type), and
// the packed layouts of two of them.
enum {
  KF_Q4_0 = 2,
  KF_Q4_1 = 3,
  KF_Q8_0 = 8,
  KF_Q4_0X8 = KF_Q4_0 | KF_PACKED8,
  KF_Q4_1X8 = KF_Q4_1 | KF_PACKED8,
  KF_Q8_0X8 = KF_Q8_0 | KF_PACKED8
};

// The packed layouts (KF_Q4_0X8, KF_Q4_1X8, KF_Q8_0X8), made at load by
// kf_qpack: rows in groups of 8, each group taking the bytes its 8 rows
// took before (8 x rb), block column by block column; block b of group g
// (8 blocks' bytes) holds the 8 rows' float16 scales (Q4_1: then their 8
// minimums), then their quant bytes 4 at a time: bytes 4c..4c+3 of rows
// 0..7 for c = 0..3 (Q4_0's and Q4_1's 16 nibble bytes) or 0..7 (Q8_0's
// 32 bytes). So one 32-byte load holds 4 bytes of each of
// 8 rows, a 32-bit lane a row, and a product with 4 activation bytes
// broadcast to every lane gives the 8 rows' partial sums side by side (no
// horizontal sums, one scale conversion for 8 rows). Only a matrix of a
// multiple of 8 rows is packed.

static long kf_block_bytes(int type);

// kf_head_bytes is the bytes of float16s before a block's quants.
static long kf_head_bytes(int type) { return (type & ~KF_PACKED8) == KF_Q4_1 ? 4 : 2; }

// kf_px_block copies block b of row n of a packed matrix (nb blocks a row)
// into a plain ggml block at out.
static void kf_px_block(int type, const uint8_t *w, long nb, long n, long b, uint8_t *out) {
  long bb = kf_block_bytes(type);
  const uint8_t *blk = w + (n / 8) * 8 * nb * bb + b * 8 * bb;
  long r = n % 8, hb = kf_head_bytes(type);
  for (long h = 0; h < hb; h += 2) memcpy(out + h, blk + 8 * h + 2 * r, 2);
  for (long c = 0; c < (bb - hb) / 4; c++) memcpy(out + hb + 4 * c, blk + 8 * hb + 32 * c + 4 * r, 4);
}

// kf_plain_block returns block b of row n of W (type, nb blocks a row) in
// its plain ggml form: where it is, or gathered into tmp.
static const uint8_t *kf_plain_block(int type, const uint8_t *w, long nb, long n, long b, uint8_t *tmp) {
  if (type & KF_PACKED8) {
    kf_px_block(type, w, nb, n, b, tmp);
    return tmp;
  }
  return w + (n * nb + b) * kf_block_bytes(type);
}

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

// kf_q8_quantize_c quantizes n blocks of 32 floats, as ggml's
// quantize_row_q8_1_ref: d = max|x|/127, q = round(x/d) (halves away from
// zero).
static void kf_q8_quantize_c(const float *x, kf_q8 *out, long n) {
  for (long i = 0; i < n; i++) {
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
  case KF_Q4_0:
  case KF_Q4_0X8: return 18;
  case KF_Q4_1:
  case KF_Q4_1X8: return 20;
  case KF_Q8_0:
  case KF_Q8_0X8: return 34;
  }
  return 0;
}

// kf_dot_c is output element n (row n of W) in plain C.
static float kf_dot_c(int type, const uint8_t *w, long n, const kf_q8 *x, long nb) {
  float sum = 0;
  uint8_t tmp[34];
  for (long b = 0; b < nb; b++) {
    const kf_q8 *xb = x + b;
    const uint8_t *blk = kf_plain_block(type, w, nb, n, b, tmp);
    int isum = 0;
    switch (type & ~KF_PACKED8) {
    case KF_Q8_0: {
      const int8_t *q = (const int8_t *)(blk + 2);
      for (int j = 0; j < QK; j++) isum += q[j] * xb->q[j];
      sum += kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)) * xb->d * (float)isum;
      break;
    }
    case KF_Q4_0: {
      for (int j = 0; j < QK / 2; j++) {
        isum += ((blk[2 + j] & 0x0f) - 8) * xb->q[j];
        isum += ((blk[2 + j] >> 4) - 8) * xb->q[j + QK / 2];
      }
      sum += kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)) * xb->d * (float)isum;
      break;
    }
    case KF_Q4_1: {
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
  long nb = K / QK;
  for (long n = n0; n < n1; n++)
    for (long i = 0; i < M; i++) y[i * N + n] = kf_dot_c(type, w, n, x + i * nb, nb);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define KF_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KF_INLINE static inline __attribute__((always_inline))

// kf_unpack4 spreads 16 bytes of nibbles into 32 bytes 0..15: the low
// nibbles are elements 0..15, the high ones 16..31 (ggml's order).
KF_INLINE KF_AVX2 __m256i kf_unpack4(const uint8_t *p) {
  __m128i t = _mm_loadu_si128((const __m128i *)p);
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

// kf_wblock loads block b of a weight row: its 32 values as bytes (signed
// for Q8_0 and Q4_0, the raw nibbles 0..15 for Q4_1), its scale and (Q4_1)
// minimum.
KF_INLINE KF_AVX2 __m256i kf_wblock(int type, const uint8_t *blk, float *dw, float *mw) {
  *dw = _cvtsh_ss(*(const uint16_t *)blk);
  switch (type) {
  case KF_Q8_0: return _mm256_loadu_si256((const __m256i *)(blk + 2));
  case KF_Q4_0: return _mm256_sub_epi8(kf_unpack4(blk + 2), _mm256_set1_epi8(8));
  default: *mw = _cvtsh_ss(*(const uint16_t *)(blk + 2)); return kf_unpack4(blk + 4);
  }
}

// kf_hsum4 sums each of a, b, c, d across its 8 lanes: the 4 sums, in that
// order. Every output goes through it, also in narrower tiles (zeros in
// the unused places add exactly nothing), so an output's bits do not depend
// on the tile it was computed in.
KF_INLINE KF_AVX2 __m128 kf_hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

#define KF_RW 4 // weight rows in a tile
#define KF_RX 2 // activation rows in a tile, at most (4x2 accumulators fit the 16 registers)

// kf_tile computes y[i*N + j] for RX activation rows (x, nb blocks each)
// and RW weight rows (w, rb bytes each): each weight block is unpacked once
// for the RX rows, each activation block loaded once for the RW rows, and
// the RW*RX accumulators stay in registers. Per output the operations and
// their order are the same whatever RW and RX are.
KF_INLINE KF_AVX2 void kf_tile(int type, const uint8_t *w, long rb, const kf_q8 *x, long nb, float *y, long N, int RW,
                               int RX) {
  const long bb = kf_block_bytes(type);
  __m256 acc[KF_RW][KF_RX];
  float mins[KF_RW][KF_RX];
  _Pragma("GCC unroll 4") for (int j = 0; j < KF_RW; j++)
    _Pragma("GCC unroll 4") for (int i = 0; i < KF_RX; i++) {
      acc[j][i] = _mm256_setzero_ps();
      mins[j][i] = 0;
    }
  for (long b = 0; b < nb; b++) {
    _Pragma("GCC unroll 4") for (int j = 0; j < RW; j++) {
      // The next tile's rows follow these: fetch them a line at a time
      // (the hardware prefetcher loses RW interleaved streams).
      _mm_prefetch((const char *)(w + RW * rb + (b * RW + j) * 64), _MM_HINT_T0);
      float d, mw = 0;
      __m256i wq = kf_wblock(type, w + j * rb + b * bb, &d, &mw);
      __m256i wa = type == KF_Q4_1 ? wq : _mm256_sign_epi8(wq, wq);
      __m256 dw = _mm256_set1_ps(d);
      _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
        const kf_q8 *xb = x + i * nb + b;
        __m256i xq = _mm256_loadu_si256((const __m256i *)xb->q);
        // maddubs multiplies unsigned by signed bytes: for signed weights,
        // |w| times x with w's sign (ggml's trick).
        __m256i p = _mm256_maddubs_epi16(wa, type == KF_Q4_1 ? xq : _mm256_sign_epi8(xq, wq));
        __m256i dot = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        acc[j][i] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(&xb->d)), _mm256_cvtepi32_ps(dot), acc[j][i]);
        if (type == KF_Q4_1) mins[j][i] += mw * xb->s;
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
    __m256 z = _mm256_setzero_ps();
    __m128 s = kf_hsum4(acc[0][i], RW > 1 ? acc[1][i] : z, RW > 2 ? acc[2][i] : z, RW > 3 ? acc[3][i] : z);
    s = _mm_add_ps(s, _mm_setr_ps(mins[0][i], mins[1][i], mins[2][i], mins[3][i]));
    if (RW == 4) {
      _mm_storeu_ps(y + i * N, s);
    } else {
      float t[4];
      _mm_storeu_ps(t, s);
      _Pragma("GCC unroll 4") for (int j = 0; j < RW; j++) y[i * N + j] = t[j];
    }
  }
}

// kf_cols runs the tiles of RX activation rows over weight rows [n0,n1).
KF_INLINE KF_AVX2 void kf_cols(int type, const uint8_t *w, long rb, const kf_q8 *x, long nb, float *y, long N, long n0,
                               long n1, int RX) {
  long n = n0;
  for (; n + KF_RW <= n1; n += KF_RW) kf_tile(type, w + n * rb, rb, x, nb, y + n, N, KF_RW, RX);
  for (; n < n1; n++) kf_tile(type, w + n * rb, rb, x, nb, y + n, N, 1, RX);
}

#define KF_CHUNK 32 // weight rows kept in L1 while all activation rows pass

// kf_matmul_t is kf_qmatmul_avx2 for one type: inlined with type, RW and
// RX constant, the compiler keeps the accumulators in registers and drops
// the other types' branches. The weight rows go in chunks that stay in
// L1 while every tile of activation rows passes over them.
KF_INLINE KF_AVX2 void kf_matmul_t(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0,
                                   long n1) {
  long nb = K / QK, rb = nb * kf_block_bytes(type);
  for (long c0 = n0; c0 < n1; c0 += KF_CHUNK) {
    long c1 = c0 + KF_CHUNK < n1 ? c0 + KF_CHUNK : n1;
    long i = 0;
    for (; i + KF_RX <= M; i += KF_RX) kf_cols(type, w, rb, x + i * nb, nb, y + i * N, N, c0, c1, KF_RX);
    for (; i < M; i++) kf_cols(type, w, rb, x + i * nb, nb, y + i * N, N, c0, c1, 1);
  }
}

#define KF_XS_MAX 1024 // blocks a row (K <= 32768) the packed kernel keeps activation sums of

// kf_xsums writes 8 times the sum of each block's 32 values, for n blocks.
KF_INLINE KF_AVX2 void kf_xsums(const kf_q8 *x, long n, int32_t *out) {
  const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
  for (long b = 0; b < n; b++) {
    __m256i q = _mm256_loadu_si256((const __m256i *)x[b].q);
    __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, q), one16);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    out[b] = 8 * _mm_cvtsi128_si32(s4);
  }
}

// kf_p4_tile computes the 8 outputs of one group of a packed Q4_0 or Q4_1
// matrix (grp: its nb block columns) for RX activation rows (x, nb blocks
// each; xs their kf_xsums for Q4_0), into y[i*ldy + 0..7]. The nibbles go
// in unsigned (0..15) against the signed activations; for Q4_0, 8 times
// the block's activation sum is taken off after: sum((w-8)x) = sum(wx) -
// 8 sum(x), exact in integers. Each lane adds its row's blocks in order,
// with the same operations whatever RX is: a row's result does not depend
// on the other rows in the call.
KF_INLINE KF_AVX2 void kf_p4_tile(int type, const uint8_t *grp, const kf_q8 *x, const int32_t *xs, long nb, float *y,
                                  long ldy, int RX) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), one16 = _mm256_set1_epi16(1);
  const long hb = type == KF_Q4_1X8 ? 32 : 16, bb = hb + 128;
  __m256 acc[4];
  _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_ps();
  for (long b = 0; b < nb; b++) {
    const uint8_t *blk = grp + b * bb;
    __m256i p[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) p[i] = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
      __m256i v = _mm256_loadu_si256((const __m256i *)(blk + hb + 32 * c));
      __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
        const int8_t *q = x[i * nb + b].q;
        int32_t a, h;
        memcpy(&a, q + 4 * c, 4);
        memcpy(&h, q + 16 + 4 * c, 4);
        // 8 products of at most 2*15*127 each: the int16 sums cannot overflow.
        p[i] = _mm256_add_epi16(p[i], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(a)));
        p[i] = _mm256_add_epi16(p[i], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(h)));
        // Keep the sum in its register here: left free, GCC reassociates
        // the integer adds, computes all 8*RX products first and spills them.
        __asm__("" : "+x"(p[i]));
      }
    }
    __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
    if (type == KF_Q4_1X8) {
      // Q4_1: d*q + m, so the sum is d_w*d_x*isum + m*(d_x*sum(q)).
      __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
      _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
        const kf_q8 *xb = x + i * nb + b;
        __m256 t = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), _mm256_cvtepi32_ps(_mm256_madd_epi16(p[i], one16)),
                                   _mm256_mul_ps(mw, _mm256_set1_ps(xb->s)));
        acc[i] = _mm256_add_ps(acc[i], t);
      }
    } else {
      _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
        __m256i d = _mm256_sub_epi32(_mm256_madd_epi16(p[i], one16), _mm256_set1_epi32(xs[i * nb + b]));
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[i * nb + b].d)), _mm256_cvtepi32_ps(d), acc[i]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) _mm256_storeu_ps(y + i * ldy, acc[i]);
}

// kf_p8_tile is kf_p4_tile for packed Q8_0: the weights signed, so the
// products go as |w| times x with w's sign (maddubs multiplies unsigned by
// signed bytes), each widened to int32 at once (two could overflow int16).
KF_INLINE KF_AVX2 void kf_p8_tile(const uint8_t *grp, const kf_q8 *x, long nb, float *y, long ldy, int RX) {
  const __m256i one16 = _mm256_set1_epi16(1);
  __m256 acc[4];
  _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_ps();
  for (long b = 0; b < nb; b++) {
    const uint8_t *blk = grp + b * 272;
    __m256i p[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) p[i] = _mm256_setzero_si256();
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
      __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
      __m256i av = _mm256_sign_epi8(v, v);
      _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) {
        int32_t a;
        memcpy(&a, x[i * nb + b].q + 4 * c, 4);
        __m256i xv = _mm256_sign_epi8(_mm256_set1_epi32(a), v);
        p[i] = _mm256_add_epi32(p[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, xv), one16));
        __asm__("" : "+x"(p[i]));
      }
    }
    __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
    _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++)
      acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[i * nb + b].d)), _mm256_cvtepi32_ps(p[i]), acc[i]);
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < RX; i++) _mm256_storeu_ps(y + i * ldy, acc[i]);
}

// kf_px_tile is the tile of a packed type.
KF_INLINE KF_AVX2 void kf_px_tile(int type, const uint8_t *grp, const kf_q8 *x, const int32_t *xs, long nb, float *y,
                                  long ldy, int RX) {
  if (type == KF_Q8_0X8)
    kf_p8_tile(grp, x, nb, y, ldy, RX);
  else
    kf_p4_tile(type, grp, x, xs, nb, y, ldy, RX);
}

// kf_px_group computes the columns of [n0,n1) that group g holds, for RX
// activation rows; a group cut by n0 or n1 is computed whole into a
// scratch tile and the wanted columns copied.
KF_INLINE KF_AVX2 void kf_px_group(int type, const uint8_t *w, long rb, long g, const kf_q8 *x, const int32_t *xs, long nb,
                                   float *y, long N, long n0, long n1, int RX) {
  const uint8_t *grp = w + g * 8 * rb;
  long c0 = g * 8;
  if (c0 >= n0 && c0 + 8 <= n1) {
    kf_px_tile(type, grp, x, xs, nb, y + c0, N, RX);
    return;
  }
  float t[4 * 8];
  kf_px_tile(type, grp, x, xs, nb, t, 8, RX);
  long a = c0 > n0 ? c0 : n0, e = c0 + 8 < n1 ? c0 + 8 : n1;
  for (int i = 0; i < RX; i++)
    for (long c = a; c < e; c++) y[i * N + c] = t[i * 8 + c - c0];
}

// kf_px_rows4 computes group g for rx (at most 4) activation rows x
// (their sums xs, outputs y).
KF_INLINE KF_AVX2 void kf_px_rows4(int type, const uint8_t *w, long rb, long g, const kf_q8 *x, const int32_t *xs, long nb,
                                   float *y, long rx, long N, long n0, long n1) {
  switch (rx) {
  case 4: kf_px_group(type, w, rb, g, x, xs, nb, y, N, n0, n1, 4); break;
  case 3: kf_px_group(type, w, rb, g, x, xs, nb, y, N, n0, n1, 3); break;
  case 2: kf_px_group(type, w, rb, g, x, xs, nb, y, N, n0, n1, 2); break;
  default: kf_px_group(type, w, rb, g, x, xs, nb, y, N, n0, n1, 1); break;
  }
}

// kf_matmul_px is kf_qmatmul for a packed matrix: groups of 8 weight rows
// one after another, each (in L1 by then) times the activation rows 4 at a
// time. With too many activation blocks for the stack's sums (prefill),
// the activation rows go 4 at a time over all the groups instead.
KF_INLINE KF_AVX2 void kf_matmul_px(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0,
                                    long n1) {
  long nb = K / QK, rb = nb * kf_block_bytes(type);
  if (type == KF_Q4_0X8 && nb > KF_XS_MAX) {
    kf_qmatmul_c(type, w, x, y, M, K, N, n0, n1);
    return;
  }
  int32_t xs[4 * KF_XS_MAX];
  if (M * nb <= 4 * KF_XS_MAX) {
    if (type == KF_Q4_0X8)
      kf_xsums(x, M * nb, xs);
    for (long g = n0 / 8; g * 8 < n1; g++)
      for (long i = 0; i < M; i += 4)
        kf_px_rows4(type, w, rb, g, x + i * nb, xs + i * nb, nb, y + i * N, M - i < 4 ? M - i : 4, N, n0, n1);
    return;
  }
  for (long i = 0; i < M; i += 4) {
    long rx = M - i < 4 ? M - i : 4;
    if (type == KF_Q4_0X8)
      kf_xsums(x + i * nb, rx * nb, xs);
    for (long g = n0 / 8; g * 8 < n1; g++) kf_px_rows4(type, w, rb, g, x + i * nb, xs, nb, y + i * N, rx, N, n0, n1);
  }
}

static KF_AVX2 void kf_qmatmul_avx2(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0,
                                    long n1) {
  switch (type) {
  case KF_Q4_0X8: kf_matmul_px(KF_Q4_0X8, w, x, y, M, K, N, n0, n1); break;
  case KF_Q4_1X8: kf_matmul_px(KF_Q4_1X8, w, x, y, M, K, N, n0, n1); break;
  case KF_Q8_0X8: kf_matmul_px(KF_Q8_0X8, w, x, y, M, K, N, n0, n1); break;
  case KF_Q8_0: kf_matmul_t(KF_Q8_0, w, x, y, M, K, N, n0, n1); break;
  case KF_Q4_0: kf_matmul_t(KF_Q4_0, w, x, y, M, K, N, n0, n1); break;
  case KF_Q4_1: kf_matmul_t(KF_Q4_1, w, x, y, M, K, N, n0, n1); break;
  }
}

// kf_q8_quantize_avx2 is kf_q8_quantize_c with 8 lanes, the same bits:
// the maximum does not depend on order, and roundf is emulated exactly
// (truncate, then a step away from zero when the dropped part is >= 1/2).
static KF_AVX2 void kf_q8_quantize_avx2(const float *x, kf_q8 *out, long n) {
  const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  // 8 blocks at a time, so that their scales take one division each (in
  // one vector) instead of a chain of two scalar ones a block.
  for (long i0 = 0; i0 < n; i0 += 8) {
    int cnt = n - i0 < 8 ? (int)(n - i0) : 8;
    float amax[8] = {0}, ids[8];
    int sums[8] = {0};
    for (int j = 0; j < cnt; j++) {
      const float *v = x + (i0 + j) * QK;
      __m256 m = _mm256_max_ps(
          _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v)), _mm256_andnot_ps(sign, _mm256_loadu_ps(v + 8))),
          _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v + 16)), _mm256_andnot_ps(sign, _mm256_loadu_ps(v + 24))));
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      amax[j] = _mm_cvtss_f32(m4);
    }
    // d = amax/127, id = d != 0 ? 1/d : 0, as the C code: the same bits.
    __m256 d = _mm256_div_ps(_mm256_loadu_ps(amax), _mm256_set1_ps(127.0f));
    __m256 id = _mm256_and_ps(_mm256_div_ps(one, d), _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_OQ));
    _mm256_storeu_ps(ids, id);
    for (int j = 0; j < cnt; j++) {
      const float *v = x + (i0 + j) * QK;
      __m256 idv = _mm256_set1_ps(ids[j]);
      __m256i q[4];
      for (int k = 0; k < 4; k++) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(v + 8 * k), idv);
        __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(p, t)), half, _CMP_GE_OQ);
        t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_and_ps(p, sign), one)));
        q[k] = _mm256_cvttps_epi32(t);
      }
      __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
      sums[j] = _mm_cvtsi128_si32(s4);
      __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      p16 = _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256((__m256i *)out[i0 + j].q, p16);
    }
    // F16C rounds to nearest even, as kf_round_f16 does: the same bits.
    float dr[8], sr[8];
    __m256 s = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)sums)));
    _mm256_storeu_ps(dr, _mm256_cvtph_ps(_mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT)));
    _mm256_storeu_ps(sr, _mm256_cvtph_ps(_mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT)));
    for (int j = 0; j < cnt; j++) {
      out[i0 + j].d = dr[j];
      out[i0 + j].s = sr[j];
    }
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
static int kf_force_c, kf_avx2;

// kf_quant_init runs when the program loads, before any thread can call in.
__attribute__((constructor)) static void kf_quant_init(void) { kf_avx2 = kf_have_avx2(); }

int kf_quant_simd(void) { return kf_avx2 && !kf_force_c; }

void kf_quant_force_c(int on) { kf_force_c = on; }

// kf_q8_quantize quantizes x[M,K] (K a multiple of 32) into M*K/32 blocks.
void kf_q8_quantize(const float *x, kf_q8 *out, long M, long K) {
#if defined(__x86_64__)
  if (kf_quant_simd()) {
    kf_q8_quantize_avx2(x, out, M * (K / QK));
    return;
  }
#endif
  kf_q8_quantize_c(x, out, M * (K / QK));
}

// kf_qmatmul computes columns [n0,n1) of y[M,N] = x @ W^T, x quantized by
// kf_q8_quantize, W [N,K] in ggml blocks of the given type.
void kf_qmatmul(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long n0, long n1) {
#if defined(__x86_64__)
  if (kf_quant_simd()) {
    kf_qmatmul_avx2(type, w, x, y, M, K, N, n0, n1);
    return;
  }
#endif
  kf_qmatmul_c(type, w, x, y, M, K, N, n0, n1);
}

// kf_qrows dequantizes rows ids[0..n) of W [*,K] into out[n,K] (an
// embedding lookup).
void kf_qrows(int type, const uint8_t *w, const long *ids, long n, long K, float *out) {
  long nb = K / QK;
  uint8_t tmp[34];
  for (long r = 0; r < n; r++) {
    float *o = out + r * K;
    for (long b = 0; b < nb; b++) {
      const uint8_t *blk = kf_plain_block(type, w, nb, ids[r], b, tmp);
      float d = kf_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
      switch (type & ~KF_PACKED8) {
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

// kf_qpack copies W [N,K] of a ggml type from src to dst, packed when the
// type has a packed layout (Q4_0, Q4_1 and Q8_0, N a multiple of 8) and as
// it is otherwise; it returns the type dst holds.
int kf_qpack(int type, const uint8_t *src, uint8_t *dst, long N, long K) {
  long bb = kf_block_bytes(type), nb = K / QK, rb = nb * bb;
  if ((type != KF_Q4_0 && type != KF_Q4_1 && type != KF_Q8_0) || N % 8 != 0) {
    memcpy(dst, src, (size_t)(N * rb));
    return type;
  }
  long hb = kf_head_bytes(type);
  for (long g = 0; g < N / 8; g++) {
    for (long b = 0; b < nb; b++) {
      uint8_t *o = dst + g * 8 * rb + b * 8 * bb;
      for (long r = 0; r < 8; r++) {
        const uint8_t *blk = src + (g * 8 + r) * rb + b * bb;
        for (long h = 0; h < hb; h += 2) memcpy(o + 8 * h + 2 * r, blk + h, 2);
        for (long c = 0; c < (bb - hb) / 4; c++) memcpy(o + 8 * hb + 32 * c + 4 * r, blk + hb + 4 * c, 4);
      }
    }
  }
  return type | KF_PACKED8;
}

// kf_qalloc allocates n bytes for weights, 2 MiB aligned and marked for
// transparent huge pages before anything touches them (THP mode
// "madvise"): the kernels stream the weights, and 4 KiB pages cost TLB
// misses and slower prefetching. Best effort: without THP the memory is
// ordinary. Freed by free.
void *kf_qalloc(size_t n) {
  const size_t huge = (size_t)2 << 20;
  size_t size = (n + huge - 1) / huge * huge;
  void *p = NULL;
  if (size == 0 || posix_memalign(&p, huge, size) != 0)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

// kf_qmatmul_claim computes chunks of columns of y = x @ W^T, each claimed
// from *next by an atomic add, until none is left: callers on several
// threads share the columns, and one that starts late (its thread not
// scheduled yet on a busy machine) finds less or nothing left to do
// instead of holding the others up.
void kf_qmatmul_claim(int type, const uint8_t *w, const kf_q8 *x, float *y, long M, long K, long N, long chunk,
                      long *next) {
  for (;;) {
    long n0 = __atomic_fetch_add(next, chunk, __ATOMIC_RELAXED);
    if (n0 >= N) return;
    kf_qmatmul(type, w, x, y, M, K, N, n0, n0 + chunk < N ? n0 + chunk : N);
  }
}
