// The decode kernels' body, written once over one vector width and
// included by gemm_amd64.c twice: AVX-512 (16 floats a register, 32
// registers) and AVX2 with FMA (8 floats, 16 registers). The includer
// defines KF_TARGET, KF_SFX, the vector type V and its operations, VL (its
// floats), the tile shapes KF_TILES and KF_ROWS_ALL, and VSUM4/VHSUM (fixed-order lane
// sums). See gemm_amd64.c for the guarantees.

// KF_TILE(MR, T): rows [0,MR) of y, columns [n, n+VL*T), the sums over
// k in [k0,k1) added to those over [0,k0) that y holds, the MR*T
// accumulators in registers.
#define KF_TILE(MR, T)                                                         \
  KF_INLINE KF_TARGET void KF_SFX(kf_tile_##MR##_##T)(                         \
      const float *x, const float *w, float *y, long K, long N, long n,        \
      long k0, long k1) {                                                      \
    V acc[MR][T];                                                              \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int t = 0; t < T; t++)                                    \
        acc[m][t] = k0 == 0 ? VZERO() : VLOAD(y + m * N + n + VL * t);         \
    const float *wk = w + k0 * N + n;                                          \
    for (long k = k0; k < k1; k++, wk += N) {                                  \
      V wv[T];                                                                 \
      KF_UNROLL for (int t = 0; t < T; t++) {                                  \
        _mm_prefetch((const char *)(wk + KF_PREFETCH + VL * t), _MM_HINT_T0);  \
        wv[t] = VLOAD(wk + VL * t);                                            \
      }                                                                        \
      KF_UNROLL for (int m = 0; m < MR; m++) {                                 \
        V xb = VSET1(x[m * K + k]);                                            \
        KF_UNROLL for (int t = 0; t < T; t++)                                  \
          acc[m][t] = VFMA(xb, wv[t], acc[m][t]);                              \
      }                                                                        \
    }                                                                          \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int t = 0; t < T; t++)                                    \
        VSTORE(y + m * N + n + VL * t, acc[m][t]);                             \
  }

// KF_ROWS(MR, T): rows [0,MR) of y over columns [n0,n1) and k in [k0,k1):
// wide tiles, then one-register tiles, then the last columns one at a
// time.
#define KF_ROWS(MR, T)                                                         \
  static KF_TARGET void KF_SFX(kf_rows_##MR)(const float *x, const float *w,   \
                                             float *y, long K, long N,         \
                                             long n0, long n1, long k0,        \
                                             long k1) {                        \
    long n = n0;                                                               \
    for (; n + VL * T <= n1; n += VL * T)                                      \
      KF_SFX(kf_tile_##MR##_##T)(x, w, y, K, N, n, k0, k1);                    \
    for (; n + VL <= n1; n += VL)                                              \
      KF_SFX(kf_tile_##MR##_1)(x, w, y, K, N, n, k0, k1);                      \
    for (; n < n1; n++)                                                        \
      for (int m = 0; m < MR; m++) {                                           \
        float s = k0 == 0 ? 0 : y[m * N + n];                                  \
        for (long k = k0; k < k1; k++)                                         \
          s = __builtin_fmaf(x[m * K + k], w[k * N + n], s);                   \
        y[m * N + n] = s;                                                      \
      }                                                                        \
  }

// One-register tiles for every row count, the wider ones (KF_TILES: the
// most accumulators that hide the FMA latency within the registers), and
// kf_rows_1..8 over them (KF_ROWS_ALL).
KF_TILE(1, 1) KF_TILE(2, 1) KF_TILE(3, 1) KF_TILE(4, 1)
KF_TILE(5, 1) KF_TILE(6, 1) KF_TILE(7, 1) KF_TILE(8, 1)
KF_TILES
KF_ROWS_ALL

// kf_gemm computes columns [n0,n1) of y = x @ w. It goes down the rows
// of w KF_KBLOCK at a time, each block across all the columns, so that
// the weights stream as a few sequential runs the hardware prefetcher
// follows (a strip down all K rows strides a page or more per row), the
// partial sums waiting in y: each element still sums over k in order.
// With more than eight rows it goes by column chunks, so that a chunk of
// w read from memory serves every block of eight rows from the cache.
static KF_TARGET void KF_SFX(kf_gemm)(const float *x, const float *w, float *y,
                                      long M, long K, long N, long n0, long n1) {
  long chunk = M > 8 ? 192 : n1 - n0;
  for (long c0 = n0; c0 < n1; c0 += chunk) {
    long c1 = c0 + chunk < n1 ? c0 + chunk : n1;
    for (long k0 = 0; k0 < K; k0 += KF_KBLOCK) {
      long k1 = k0 + KF_KBLOCK < K ? k0 + KF_KBLOCK : K;
      for (long m = 0; m < M; m += 8) {
        const float *xm = x + m * K;
        float *ym = y + m * N;
        switch (M - m >= 8 ? 8 : M - m) {
        case 1: KF_SFX(kf_rows_1)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 2: KF_SFX(kf_rows_2)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 3: KF_SFX(kf_rows_3)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 4: KF_SFX(kf_rows_4)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 5: KF_SFX(kf_rows_5)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 6: KF_SFX(kf_rows_6)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        case 7: KF_SFX(kf_rows_7)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        default: KF_SFX(kf_rows_8)(xm, w, ym, K, N, c0, c1, k0, k1); break;
        }
      }
    }
  }
}

// kf_dot is the lane-wise products of q and k over D (a multiple of VL).
KF_INLINE KF_TARGET V KF_SFX(kf_dot)(const float *q, const float *k, long D) {
  V acc = VMUL(VLOAD(q), VLOAD(k));
  for (long d = VL; d < D; d += VL)
    acc = VFMA(VLOAD(q + d), VLOAD(k + d), acc);
  return acc;
}

// kf_attn_scores writes s[r,i,j] = scale * q[r,i].k[rowmap[r],j] for
// j < n[r], and -inf for n[r] <= j < tk (0 for a whole skipped row). Four
// positions at a time share one reduction across lanes.
static KF_TARGET void KF_SFX(kf_attn_scores)(const float *q, const float *k, float *s,
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
        __m128 v = VSUM4(KF_SFX(kf_dot)(qi, kj, D), KF_SFX(kf_dot)(qi, kj + D, D),
                         KF_SFX(kf_dot)(qi, kj + 2 * D, D), KF_SFX(kf_dot)(qi, kj + 3 * D, D));
        _mm_storeu_ps(si + j, _mm_mul_ps(sc, v));
      }
      for (; j < n[r]; j++)
        si[j] = scale * VHSUM(KF_SFX(kf_dot)(qi, kr + j * D, D));
      for (; j < tk; j++)
        si[j] = n[r] > 0 ? -__builtin_inff() : 0;
    }
  }
}

// kf_attn_values writes o[r,i] = sum over j < n[r] of p[r,i,j] *
// v[rowmap[r],j] (zeros for a skipped row): even and odd positions in two
// accumulators each, in order of j, added at the end.
static KF_TARGET void KF_SFX(kf_attn_values)(const float *p, const float *v, float *o,
                                             long R, long rep, long D, long tk, long ld,
                                             const long *rowmap, const long *n) {
  for (long r = 0; r < R; r++) {
    const float *vr = v + rowmap[r] * ld;
    for (long i = 0; i < rep; i++) {
      const float *pi = p + (r * rep + i) * tk;
      float *oi = o + (r * rep + i) * D;
      for (long d = 0; d < D; d += 4 * VL) {
        long w = D - d < 4 * VL ? (D - d) / VL : 4;
        V a0[4], a1[4];
        KF_UNROLL for (int t = 0; t < 4; t++) a0[t] = a1[t] = VZERO();
        long j = 0;
        for (; j + 2 <= n[r]; j += 2) {
          V p0 = VSET1(pi[j]), p1 = VSET1(pi[j + 1]);
          const float *vj = vr + j * D + d;
          KF_UNROLL for (int t = 0; t < 4; t++)
            if (t < w) {
              a0[t] = VFMA(p0, VLOAD(vj + VL * t), a0[t]);
              a1[t] = VFMA(p1, VLOAD(vj + D + VL * t), a1[t]);
            }
        }
        if (j < n[r]) {
          V p0 = VSET1(pi[j]);
          KF_UNROLL for (int t = 0; t < 4; t++)
            if (t < w) a0[t] = VFMA(p0, VLOAD(vr + j * D + d + VL * t), a0[t]);
        }
        KF_UNROLL for (int t = 0; t < 4; t++)
          if (t < w) VSTORE(oi + d + VL * t, VADD(a0[t], a1[t]));
      }
    }
  }
}

// KF_NT(MR, R): y[m, n+r] = x[m] . w[n+r] for rows m < MR of x and the R
// rows n..n+R-1 of w [N,K] (contiguous: one stream through memory), the
// MR*R accumulators in registers, each a chain of its own, every x vector
// loaded once for the R rows. Each output is summed lane by lane over k in
// order, then across the lanes (VSUM4, the same for each lane of it), then
// the last K % VL terms in order: the same bits for any tile.
#define KF_NT(MR, R)                                                           \
  KF_INLINE KF_TARGET void KF_SFX(kf_nt_##MR##_##R)(                           \
      const float *x, const float *w, float *y, long K, long N, long n) {      \
    V acc[MR][R];                                                              \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int r = 0; r < R; r++) acc[m][r] = VZERO();               \
    const float *wn = w + n * K;                                               \
    long kv = K / VL * VL;                                                     \
    for (long k = 0; k < kv; k += VL) {                                        \
      V wv[R];                                                                 \
      KF_UNROLL for (int r = 0; r < R; r++) wv[r] = VLOAD(wn + r * K + k);     \
      KF_UNROLL for (int m = 0; m < MR; m++) {                                 \
        V xv = VLOAD(x + m * K + k);                                           \
        KF_UNROLL for (int r = 0; r < R; r++)                                  \
          acc[m][r] = VFMA(xv, wv[r], acc[m][r]);                              \
      }                                                                        \
    }                                                                          \
    KF_UNROLL for (int m = 0; m < MR; m++)                                     \
      KF_UNROLL for (int r = 0; r < R; r += 4) {                               \
        float s[4];                                                            \
        _mm_storeu_ps(s, VSUM4(acc[m][r], acc[m][r + 1 < R ? r + 1 : r],       \
                               acc[m][r + 2 < R ? r + 2 : r],                  \
                               acc[m][r + 3 < R ? r + 3 : r]));                \
        for (int j = 0; j < 4 && r + j < R; j++) {                             \
          for (long k = kv; k < K; k++)                                        \
            s[j] = __builtin_fmaf(x[m * K + k], wn[(r + j) * K + k], s[j]);    \
          y[m * N + n + r + j] = s[j];                                         \
        }                                                                      \
      }                                                                        \
  }

// The tiles: 8 rows of w for one row of x (8 chains), 4 for two, 3 for
// up to four (12 accumulators of the 16 AVX2 registers); single rows of
// w for the last few.
KF_NT(1, 1) KF_NT(1, 3) KF_NT(1, 8) KF_NT(2, 1) KF_NT(2, 3) KF_NT(2, 4)
KF_NT(3, 3) KF_NT(4, 1) KF_NT(4, 3)

// kf_gemm_nt computes columns [n0,n1) of y[M,N] = x[M,K] @ w[N,K]^T, w
// row-major: [out,in] as torch.nn.Linear stores a weight, and as a tied
// lm_head reads the embedding [vocab, hidden]. A range of columns is a
// contiguous range of w's rows, which the tiles read in one pass, a few
// rows side by side; with more rows of x than a tile takes, the next
// blocks of x reuse those rows of w from the L1 cache.
static KF_TARGET void KF_SFX(kf_gemm_nt)(const float *x, const float *w, float *y,
                                         long M, long K, long N, long n0, long n1) {
  long n = n0;
  if (M == 1) {
    for (; n + 8 <= n1; n += 8)
      KF_SFX(kf_nt_1_8)(x, w, y, K, N, n);
  } else if (M == 2) {
    for (; n + 4 <= n1; n += 4)
      KF_SFX(kf_nt_2_4)(x, w, y, K, N, n);
  } else {
    for (; n + 3 <= n1; n += 3) {
      long m = 0;
      for (; m + 4 <= M; m += 4)
        KF_SFX(kf_nt_4_3)(x + m * K, w, y + m * N, K, N, n);
      const float *xm = x + m * K;
      float *ym = y + m * N;
      switch (M - m) {
      case 1: KF_SFX(kf_nt_1_3)(xm, w, ym, K, N, n); break;
      case 2: KF_SFX(kf_nt_2_3)(xm, w, ym, K, N, n); break;
      case 3: KF_SFX(kf_nt_3_3)(xm, w, ym, K, N, n); break;
      }
    }
  }
  for (; n < n1; n++) {
    long m = 0;
    for (; m + 4 <= M; m += 4)
      KF_SFX(kf_nt_4_1)(x + m * K, w, y + m * N, K, N, n);
    for (; m < M; m++)
      KF_SFX(kf_nt_1_1)(x + m * K, w, y + m * N, K, N, n);
  }
}
