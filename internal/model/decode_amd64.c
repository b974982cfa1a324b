// A whole Llama-family decode step in C (see decode_amd64.go for why): the
// embedding lookup, every layer's RMSNorms, projections, rope, attention
// over the KV cache, SiLU-gated MLP and residual adds, the final norm and
// lm_head, on buffers kept between steps, by a pool of threads that stay
// up between steps (as llama.cpp's ggml) and wait for each other with a
// spin (about 1 ms while the machine has a core for each of them, 8 us
// when it does not), then a futex.
//
// The products go through kf_gemm / kf_gemm_nt (gemm_amd64.c) and quant.c,
// by chunks of output columns: every element is computed as it is by one
// thread alone. The small ops are per row, in a fixed order: a row's
// result does not depend on the other rows of the step (batch invariance)
// nor on the number of threads.
#define _GNU_SOURCE // sched_getaffinity
#include <sched.h>
#include <immintrin.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "decode_amd64.h"

void kf_gemm(const float *x, const float *w, float *y, long M, long K, long N, long n0, long n1);
void kf_gemm_nt(const float *x, const float *w, float *y, long M, long K, long N, long n0, long n1);
// quant.c: rows of x to 8-bit blocks of 32 (KF_Q8_BYTES each), products
// with ggml-block weights, embedding rows.
void kf_q8_quantize(const float *x, void *out, long M, long K);
void kf_qmatmul(int type, const void *w, const void *xq, float *y, long M, long K, long N, long n0, long n1);
void kf_qrows(int type, const void *w, const long *ids, long n, long K, float *out);
#define KF_Q8_BYTES 40

#define KF_TGT __attribute__((target("avx2,fma")))

// How long a waiting thread spins before it sleeps on a futex, in TSC
// ticks (2.4 GHz here). On a machine with more runnable threads than
// cores, short (about 8 us: what two threads' shares of a product differ
// by): on the 2-core test machine shared with 10-15 runnable processes,
// 40 us (100000) ran BenchmarkDecodeBatch at a third to two thirds of the
// speed of 0 to 8 us, which were alike: a spinning thread holds a core
// the thread it waits for needs. Short too between steps and in a step's
// first layer, when the Go side, the previous token's HTTP write and its
// client want the cores. From the second layer on, with a core for every
// pool thread, long (about 1 ms: longer than any phase's chunk), as
// llama.cpp's threads spin: a futex sleep costs the waker a system call
// and the sleeper a wake-up, at up to 151 phase ends a step
// (kf_spin_adapt chooses).
#define KF_SPIN_SHORT 20000ULL
#define KF_SPIN_LONG 2500000ULL
// Quiet steps (a core for every pool thread) the spin needs to grow long,
// counted up to twice that; a busy step takes back four (kf_spin_adapt).
#define KF_QUIET_STEPS 8

static _Atomic unsigned long long kf_spin_ticks = KF_SPIN_SHORT;

// ---- profiling (build tag kfprof: decode_prof.go) ------------------------

#define KF_PCATS 11
#ifdef KF_PROF
#include <time.h>
// kf_prof[t][c]: thread t's ns in category c (decode_prof.go names them),
// summed over steps until kf_prof_read takes them.
static double kf_prof[64][KF_PCATS];
static double kf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
static __thread int kf_tid, kf_pcat; // this thread's index, its products' category
#define KF_T(v) double v = kf_now()
#define KF_ADD(t, c, v) (kf_prof[t][c] += kf_now() - (v))
#define KF_SET(t, c) (kf_tid = (t), kf_pcat = (c))
#define KF_COUNT(c) (kf_prof[kf_tid][c]++)
void kf_prof_read(double *out, int threads) {
  for (int t = 0; t < threads && t < 64; t++)
    for (int c = 0; c < KF_PCATS; c++) {
      out[t * KF_PCATS + c] = kf_prof[t][c];
      kf_prof[t][c] = 0;
    }
}
#else
#define KF_T(v)
#define KF_ADD(t, c, v)
#define KF_SET(t, c)
#define KF_COUNT(c)
void kf_prof_read(double *out, int threads) {}
#endif
enum { KF_P_PROD, KF_P_HEAD, KF_P_SMALL, KF_P_ATTN, KF_P_WAIT, KF_P_RUN, KF_P_DECODE, KF_P_SLEEPS, KF_P_WAKES, KF_P_WAKET, KF_P_LONG };

// ---- waiting: spin, then futex -------------------------------------------

static void kf_futex_wait(_Atomic unsigned *a, unsigned v) {
  syscall(SYS_futex, (unsigned *)a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void kf_futex_wake(_Atomic unsigned *a) {
  syscall(SYS_futex, (unsigned *)a, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

// kf_wait returns once *a is no longer old.
static void kf_wait(_Atomic unsigned *a, unsigned old, _Atomic int *sleepers, unsigned long long spin) {
  unsigned long long t0 = __rdtsc();
  while (atomic_load_explicit(a, memory_order_acquire) == old) {
    if (__rdtsc() - t0 > spin) {
      KF_COUNT(KF_P_SLEEPS);
      atomic_fetch_add(sleepers, 1);
      while (atomic_load(a) == old)
        kf_futex_wait(a, old);
      atomic_fetch_sub(sleepers, 1);
      return;
    }
    _mm_pause();
  }
}

// kf_signal changes *a and wakes its sleepers.
static void kf_signal(_Atomic unsigned *a, _Atomic int *sleepers) {
  atomic_fetch_add(a, 1);
  if (atomic_load(sleepers) > 0) {
    KF_COUNT(KF_P_WAKES);
    KF_T(tw);
    kf_futex_wake(a);
    KF_ADD(kf_tid, KF_P_WAKET, tw);
  }
}

// ---- the pool --------------------------------------------------------------

#define KF_MAX_THREADS 64

static struct {
  pthread_mutex_t mu;
  int workers; // started, ids 1..workers
  _Atomic unsigned gen;
  _Atomic int gsleep;
  _Atomic unsigned pgen; // a phase completed
  _Atomic int psleep;
  _Atomic long *next, *done; // per phase: chunks taken, chunks done
  long nphases;
  _Atomic int open;   // the step takes workers
  _Atomic int inside; // workers in the step
  _Atomic unsigned igen;
  _Atomic int isleep;
  // the job of generation gen
  const kf_model *m;
  const kf_step *st;
  int T;
  // buffers
  float *arena;
  size_t arena_len;
  float *x, *y, *q, *k, *v, *att, *g, *u, *h, *sc, *xq;
  int *bi;   // [B, lm_head chunks]: each chunk's first largest logit
  float *bv; // and its value
  long scn;  // floats of sc per thread
  long xqn;  // floats of xq per thread
} kf_pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void kf_run(const kf_model *m, const kf_step *st, int t, int T);
static void kf_spin_adapt(int T, int sample);

typedef struct {
  long id;
  unsigned gen;
} kf_worker_arg;

static void *kf_worker(void *arg) {
  kf_worker_arg a = *(kf_worker_arg *)arg;
  free(arg);
  unsigned seen = a.gen;
  KF_SET((int)a.id, KF_P_PROD);
  for (;;) {
    kf_wait(&kf_pool.gen, seen, &kf_pool.gsleep, KF_SPIN_SHORT);
    seen = atomic_load(&kf_pool.gen);
    // Join the step only while it is open: one that thread 0 has closed
    // may already be followed by buffers of the next.
    atomic_fetch_add(&kf_pool.inside, 1);
    if (atomic_load(&kf_pool.open) && a.id < kf_pool.T)
      kf_run(kf_pool.m, kf_pool.st, (int)a.id, kf_pool.T);
    atomic_fetch_sub(&kf_pool.inside, 1);
    kf_signal(&kf_pool.igen, &kf_pool.isleep);
  }
  return NULL;
}

// ---- small ops -------------------------------------------------------------

KF_TGT static float kf_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

// kf_dot is a.b over n floats: 8 lanes in order, then across, then the
// tail.
KF_TGT static float kf_dot(const float *a, const float *b, long n) {
  __m256 acc = _mm256_setzero_ps();
  long i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = kf_hsum(acc);
  for (; i < n; i++)
    s = fmaf(a[i], b[i], s);
  return s;
}

// kf_rmsnorm writes w * (x * rsqrt(mean(x^2) + eps)) for one row of n,
// as LlamaRMSNorm in float32.
KF_TGT static void kf_rmsnorm(const float *x, const float *w, float *out, long n, float eps) {
  float r = 1.0f / sqrtf(kf_dot(x, x, n) / (float)n + eps);
  for (long i = 0; i < n; i++)
    out[i] = w[i] * (x[i] * r);
}

// kf_rope applies transformers' apply_rotary_pos_emb to one head of D:
// x*cos + rotate_half(x)*sin, out may be x.
static void kf_rope(const float *x, const float *cs, const float *sn, float *out, long D) {
  long h = D / 2;
  for (long j = 0; j < h; j++) {
    float a = x[j], b = x[j + h];
    out[j] = a * cs[j] + (-b) * sn[j];
    out[j + h] = b * cs[j + h] + a * sn[j + h];
  }
}

// kf_linear computes columns [n0,n1) of y[B,N] = x[B,K] @ l (+ bias);
// xq is x in 8-bit blocks (kf_quantize) when l is quantized.
static void kf_linear(const kf_lin *l, const float *x, const void *xq, float *y, long B, long n0, long n1) {
  if (n0 >= n1)
    return;
  if (l->qw)
    kf_qmatmul(l->qtype, l->qw, xq, y, B, l->K, l->N, n0, n1);
  else if (l->kind == 1)
    kf_gemm_nt(x, l->w, y, B, l->K, l->N, n0, n1);
  else
    kf_gemm(x, l->w, y, B, l->K, l->N, n0, n1);
  if (l->b)
    for (long b = 0; b < B; b++)
      for (long n = n0; n < n1; n++)
        y[b * l->N + n] += l->b[n];
}

// kf_quantize writes x [B,K] in 8-bit blocks to xq when one of a, b
// (b may be NULL) is quantized.
static void kf_quantize(const kf_lin *a, const kf_lin *b, const float *x, void *xq, long B, long K) {
  if (a->qw || (b && b->qw))
    kf_q8_quantize(x, xq, B, K);
}

// kf_dot4 is kf_dot of q with each of k0..k3 over D (a multiple of 8),
// into s[0..3]: four independent sums (their FMAs overlap) whose lanes
// are added in kf_hsum's order, so each is kf_dot's value to the bit.
KF_TGT static void kf_dot4(const float *q, const float *k0, const float *k1, const float *k2, const float *k3, long D,
                           float scale, float *s) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i < D; i += 8) {
    __m256 qv = _mm256_loadu_ps(q + i);
    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
  }
  __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
  __m128 t1 = _mm_add_ps(_mm256_castps256_ps128(a1), _mm256_extractf128_ps(a1, 1));
  __m128 t2 = _mm_add_ps(_mm256_castps256_ps128(a2), _mm256_extractf128_ps(a2, 1));
  __m128 t3 = _mm_add_ps(_mm256_castps256_ps128(a3), _mm256_extractf128_ps(a3, 1));
  __m128 r = _mm_hadd_ps(_mm_hadd_ps(t0, t1), _mm_hadd_ps(t2, t3));
  _mm_storeu_ps(s, _mm_mul_ps(_mm_set1_ps(scale), r));
}

// kf_attend is one query head's attention for row b: qh (normed and
// roped in place), the current key kl and value vl (not yet in the
// cache), the cache rows kr, vr of positions 0..p-1; out [D]. Scores go
// four positions at a time (kf_dot4) and the weighted values one position
// at a time into 64 columns held in registers; every sum is in the order
// of a plain loop over the positions, so the bits do not depend on how
// the loops are cut.
KF_TGT static void kf_attend(const float *qh, const float *kl, const float *vl, const float *kr,
                             const float *vr, long p, long D, float scale, float *s, float *out) {
  long j = 0;
  if (D % 8 == 0)
    for (; j + 4 <= p; j += 4)
      kf_dot4(qh, kr + j * D, kr + (j + 1) * D, kr + (j + 2) * D, kr + (j + 3) * D, D, scale, s + j);
  for (; j <= p; j++)
    s[j] = scale * kf_dot(qh, j < p ? kr + j * D : kl, D);
  float mx = -INFINITY;
  for (j = 0; j <= p; j++)
    mx = s[j] > mx ? s[j] : mx;
  float sum = 0;
  for (j = 0; j <= p; j++) {
    s[j] = expf(s[j] - mx);
    sum += s[j];
  }
  float inv = 1.0f / sum;
  long d = 0;
  for (; d + 64 <= D; d += 64) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (j = 0; j <= p; j++) {
      const float *vj = (j < p ? vr + j * D : vl) + d;
      __m256 w = _mm256_set1_ps(s[j] * inv);
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 24), a3);
      a4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 32), a4);
      a5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 40), a5);
      a6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 48), a6);
      a7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 56), a7);
    }
    _mm256_storeu_ps(out + d, a0);
    _mm256_storeu_ps(out + d + 8, a1);
    _mm256_storeu_ps(out + d + 16, a2);
    _mm256_storeu_ps(out + d + 24, a3);
    _mm256_storeu_ps(out + d + 32, a4);
    _mm256_storeu_ps(out + d + 40, a5);
    _mm256_storeu_ps(out + d + 48, a6);
    _mm256_storeu_ps(out + d + 56, a7);
  }
  for (; d + 8 <= D; d += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (j = 0; j <= p; j++) {
      const float *vj = j < p ? vr + j * D : vl;
      acc = _mm256_fmadd_ps(_mm256_set1_ps(s[j] * inv), _mm256_loadu_ps(vj + d), acc);
    }
    _mm256_storeu_ps(out + d, acc);
  }
  for (; d < D; d++) {
    float acc = 0;
    for (j = 0; j <= p; j++)
      acc = fmaf(s[j] * inv, (j < p ? vr + j * D : vl)[d], acc);
    out[d] = acc;
  }
}

// ---- greedy choice ------------------------------------------------------------

// kf_argmax_range finds the first largest of v[n0..n1), a NaN counting as
// -inf: *bi its index (n0 when none is above -inf), *bv its value.
static void kf_argmax_range(const float *v, long n0, long n1, int *bi, float *bv) {
  long best = n0;
  float m = -INFINITY;
  for (long i = n0; i < n1; i++)
    if (v[i] > m) { // false for NaN
      m = v[i];
      best = i;
    }
  *bi = (int)best;
  *bv = m;
}

// kf_argmax_merge is the first largest over n consecutive ranges' results,
// in order: the index sample.go's argmax gives on the whole row (NaN as
// -inf, the first of equal values, 0 when nothing is above -inf).
static long kf_argmax_merge(const int *bi, const float *bv, long n) {
  long best = bi[0];
  float m = bv[0];
  for (long c = 1; c < n; c++)
    if (bv[c] > m) {
      m = bv[c];
      best = bi[c];
    }
  return best;
}

// kf_argmax is kf_argmax_range and kf_argmax_merge over v[0..n) cut in
// ranges of w, as a step's lm_head chunks cut a row (for tests).
long kf_argmax(const float *v, long n, long w) {
  long nc = (n + w - 1) / w;
  int *bi = malloc(nc * sizeof(int));
  float *bv = malloc(nc * sizeof(float));
  if (!bi || !bv) {
    free(bi);
    free(bv);
    return -1;
  }
  for (long c = 0; c < nc; c++)
    kf_argmax_range(v, c * w, c * w + w < n ? c * w + w : n, &bi[c], &bv[c]);
  long r = kf_argmax_merge(bi, bv, nc);
  free(bi);
  free(bv);
  return r;
}

// ---- the step ----------------------------------------------------------------

// A step is a sequence of phases (the embedding; per layer q/k/v,
// attention, o_proj, gate/up, down; lm_head), each cut into chunks of
// work that the threads take from a counter, one at a time; a thread
// moves on when every chunk of the phase is done, whoever did it. A
// thread that loses its core holds the others up by one chunk at most, not
// by its whole share. A chunk is a fixed range of output columns (or one
// (row, head) of attention), computed the same whichever thread takes it.

// kf_grab takes the next chunk of phase p of n, or returns -1.
static long kf_grab(long p, long n) {
  long c = atomic_fetch_add(&kf_pool.next[p], 1);
  return c < n ? c : -1;
}

// kf_finish marks a chunk of phase p of n done.
static void kf_finish(long p, long n) {
  if (atomic_fetch_add(&kf_pool.done[p], 1) + 1 == n)
    kf_signal(&kf_pool.pgen, &kf_pool.psleep);
}

// kf_await returns once phase p's n chunks are done.
static void kf_await(long p, long n) {
  KF_T(t0);
  for (;;) {
    unsigned g = atomic_load(&kf_pool.pgen);
    if (atomic_load(&kf_pool.done[p]) >= n) {
      KF_ADD(kf_tid, KF_P_WAIT, t0);
      return;
    }
    kf_wait(&kf_pool.pgen, g, &kf_pool.psleep, atomic_load_explicit(&kf_spin_ticks, memory_order_relaxed));
  }
}

// kf_chunk is the width of a chunk of n columns on T threads: two chunks
// a thread, multiples of 48 (every AVX2 tile width divides it), at most
// 2048 columns (lm_head: 24 chunks). Narrower ranges would walk the
// weights in shorter runs, which kf_gemm streams less well.
static long kf_chunk(long n, int T) {
  long w = (n / (2 * T) + 47) / 48 * 48;
  return w < 48 ? 48 : w > 2048 ? 2048 : w;
}

static long kf_nchunks(long n, long w) { return (n + w - 1) / w; }

// kf_head_chunk is the width of lm_head's chunks: kf_chunk's, but at most
// 528 columns when the head's weights are stored a column after another
// ([V,H]: the tied embedding, or ggml blocks), where a narrow chunk streams
// as well as a wide one. The last chunk to finish decides when the step
// ends; at one row a 2048-column chunk takes about 360 us, a 528-column
// one about 90.
static long kf_head_chunk(const kf_model *m, int T) {
  long w = kf_chunk(m->V, T);
  return (m->head.kind == 1 || m->head.qw) && w > 528 ? 528 : w;
}

// kf_lin_chunk computes chunk c (width w) of l's columns.
static void kf_lin_chunk(const kf_lin *l, const float *x, const void *xq, float *y, long B, long c, long w) {
  long n0 = c * w, n1 = n0 + w < l->N ? n0 + w : l->N;
  KF_T(t0);
  kf_linear(l, x, xq, y, B, n0, n1);
  KF_ADD(kf_tid, kf_pcat, t0);
}

// kf_prof_ns: with kf_prof_on set, thread 0 adds each phase's wall time
// (from the end of the phase before to the end of its await) to its kind,
// KF_PROF_EMBED..KF_PROF_HEAD (BenchmarkFusedStep's profile).
long long kf_prof_ns[KF_PROF_KINDS];
int kf_prof_on;

static long long kf_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define KF_PHASE(kind)                                                          \
  do {                                                                         \
    if (prof) {                                                                \
      long long now = kf_now_ns();                                             \
      kf_prof_ns[kind] += now - prof;                                          \
      prof = now;                                                              \
    }                                                                          \
  } while (0)

// kf_run is thread t of T's part of the step; thread 0 returns when the
// step is done.
static void kf_run(const kf_model *m, const kf_step *st, int t, int T) {
  long B = st->B, H = m->H, D = m->D, nh = m->nh, nkv = m->nkv, I = m->I;
  long rep = nh / nkv, QD = nh * D, KD = nkv * D;
  float *x = kf_pool.x, *y = kf_pool.y, *q = kf_pool.q, *k = kf_pool.k, *v = kf_pool.v;
  float *att = kf_pool.att, *g = kf_pool.g, *u = kf_pool.u;
  float *h = kf_pool.h + (long)t * B * H;             // this thread's normed input
  float *sc = kf_pool.sc + (long)t * kf_pool.scn;     // scores, then the current key
  float *xq = kf_pool.xq + (long)t * kf_pool.xqn;     // its input in 8-bit blocks
  long wq = kf_chunk(QD, T), wk = kf_chunk(KD, T), wh = kf_chunk(H, T), wi = kf_chunk(I, T), wv = kf_head_chunk(m, T);
  long nq = kf_nchunks(QD, wq), nk = kf_nchunks(KD, wk), nhc = kf_nchunks(H, wh), nic = kf_nchunks(I, wi);
  long ph = 0, n, c;
  long long prof = t == 0 && kf_prof_on ? kf_now_ns() : 0;
  KF_SET(t, KF_P_PROD);
  KF_T(trun);
  // Embedding, a row a chunk.
  n = B;
  while ((c = kf_grab(ph, n)) >= 0) {
    if (m->qembed)
      kf_qrows(m->qembed_type, m->qembed, st->ids + c, 1, H, x + c * H);
    else
      memcpy(x + c * H, m->embed + st->ids[c] * H, H * sizeof(float));
    kf_finish(ph, n);
  }
  kf_await(ph++, n);
  KF_PHASE(KF_PROF_EMBED);
  for (long l = 0; l < m->L; l++) {
    const kf_layer *ly = &m->layers[l];
    int ready = 0;
    if (t == 0 && (l == m->L / 2 || l == 1))
      kf_spin_adapt(T, l == m->L / 2);
    // q, k, v, from this thread's own copy of the norm.
    n = nq + 2 * nk;
    while ((c = kf_grab(ph, n)) >= 0) {
      if (!ready) {
        for (long b = 0; b < B; b++)
          kf_rmsnorm(x + b * H, ly->norm1, h + b * H, H, m->eps);
        kf_quantize(&ly->q, &ly->k, h, xq, B, H);
        if (!ly->q.qw && !ly->k.qw)
          kf_quantize(&ly->v, NULL, h, xq, B, H);
        ready = 1;
      }
      if (c < nq)
        kf_lin_chunk(&ly->q, h, xq, q, B, c, wq);
      else if (c < nq + nk)
        kf_lin_chunk(&ly->k, h, xq, k, B, c - nq, wk);
      else
        kf_lin_chunk(&ly->v, h, xq, v, B, c - nq - nk, wk);
      kf_finish(ph, n);
    }
    kf_await(ph++, n);
    KF_PHASE(KF_PROF_QKV);
    // Attention, one (row, query head) a chunk. The head that opens a KV
    // group writes the group's new key and value into the cache; the
    // others read them from k and v (roped into a buffer of their own).
    n = B * nh;
    float *kl = sc + kf_pool.scn - 2 * D, *qt = kl + D;
    while ((c = kf_grab(ph, n)) >= 0) {
      KF_T(ta);
      long b = c / nh, hd = c % nh, gr = hd / rep, p = st->pos[b];
      const float *cs = st->cos + b * D, *sn = st->sin + b * D;
      long row = (st->slot[b] * nkv + gr) * st->cap;
      float *kr = st->kc[l] + row * D, *vr = st->vc[l] + row * D;
      const float *kin = k + b * KD + gr * D, *vl = v + b * KD + gr * D;
      if (ly->knorm) {
        kf_rmsnorm(kin, ly->knorm, kl, D, m->eps);
        kf_rope(kl, cs, sn, kl, D);
      } else {
        kf_rope(kin, cs, sn, kl, D);
      }
      if (hd % rep == 0) {
        memcpy(kr + p * D, kl, D * sizeof(float));
        memcpy(vr + p * D, vl, D * sizeof(float));
      }
      float *qh = q + b * QD + hd * D;
      if (ly->qnorm) {
        kf_rmsnorm(qh, ly->qnorm, qt, D, m->eps);
        kf_rope(qt, cs, sn, qt, D);
      } else {
        kf_rope(qh, cs, sn, qt, D);
      }
      kf_attend(qt, kl, vl, kr, vr, p, D, st->scale, sc, att + b * QD + hd * D);
      KF_ADD(t, KF_P_ATTN, ta);
      kf_finish(ph, n);
    }
    kf_await(ph++, n);
    KF_PHASE(KF_PROF_ATTN);
    // o_proj and the residual, a column range of x a chunk.
    n = nhc;
    ready = 0;
    while ((c = kf_grab(ph, n)) >= 0) {
      if (!ready) {
        kf_quantize(&ly->o, NULL, att, xq, B, QD);
        ready = 1;
      }
      kf_lin_chunk(&ly->o, att, xq, y, B, c, wh);
      long n0 = c * wh, n1 = n0 + wh < H ? n0 + wh : H;
      for (long b = 0; b < B; b++)
        for (long i = n0; i < n1; i++)
          x[b * H + i] += y[b * H + i];
      kf_finish(ph, n);
    }
    kf_await(ph++, n);
    KF_PHASE(KF_PROF_O);
    // The MLP: gate and up of the same columns, silu(gate) * up there.
    n = nic;
    ready = 0;
    while ((c = kf_grab(ph, n)) >= 0) {
      if (!ready) {
        for (long b = 0; b < B; b++)
          kf_rmsnorm(x + b * H, ly->norm2, h + b * H, H, m->eps);
        kf_quantize(&ly->gate, &ly->up, h, xq, B, H);
        ready = 1;
      }
      kf_lin_chunk(&ly->gate, h, xq, g, B, c, wi);
      kf_lin_chunk(&ly->up, h, xq, u, B, c, wi);
      long n0 = c * wi, n1 = n0 + wi < I ? n0 + wi : I;
      for (long b = 0; b < B; b++)
        for (long i = n0; i < n1; i++) {
          float a = g[b * I + i];
          g[b * I + i] = a / (1.0f + expf(-a)) * u[b * I + i];
        }
      kf_finish(ph, n);
    }
    kf_await(ph++, n);
    KF_PHASE(KF_PROF_GATEUP);
    n = nhc;
    ready = 0;
    while ((c = kf_grab(ph, n)) >= 0) {
      if (!ready) {
        kf_quantize(&ly->down, NULL, g, xq, B, I);
        ready = 1;
      }
      kf_lin_chunk(&ly->down, g, xq, y, B, c, wh);
      long n0 = c * wh, n1 = n0 + wh < H ? n0 + wh : H;
      for (long b = 0; b < B; b++)
        for (long i = n0; i < n1; i++)
          x[b * H + i] += y[b * H + i];
      kf_finish(ph, n);
    }
    kf_await(ph++, n);
    KF_PHASE(KF_PROF_DOWN);
  }
  n = kf_nchunks(m->V, wv);
  int ready = 0;
  KF_SET(t, KF_P_HEAD);
  while ((c = kf_grab(ph, n)) >= 0) {
    if (!ready) {
      for (long b = 0; b < B; b++)
        kf_rmsnorm(x + b * H, m->norm, h + b * H, H, m->eps);
      kf_quantize(&m->head, NULL, h, xq, B, H);
      ready = 1;
    }
    kf_lin_chunk(&m->head, h, xq, st->logits, B, c, wv);
    if (st->best) {
      long n0 = c * wv, n1 = n0 + wv < m->V ? n0 + wv : m->V;
      for (long b = 0; b < B; b++)
        kf_argmax_range(st->logits + b * m->V, n0, n1, &kf_pool.bi[b * n + c], &kf_pool.bv[b * n + c]);
    }
    kf_finish(ph, n);
  }
  kf_await(ph, n);
  KF_PHASE(KF_PROF_HEAD);
  if (st->best && t == 0)
    for (long b = 0; b < B; b++)
      st->best[b] = kf_argmax_merge(&kf_pool.bi[b * n], &kf_pool.bv[b * n], n);
  KF_ADD(t, KF_P_RUN, trun);
}

// kf_phases is the number of phases of a step of m.
static long kf_phases(const kf_model *m) { return 2 + 5 * m->L; }

// kf_buffers sizes the pool's buffers for m and st; 0 on success.
static int kf_buffers(const kf_model *m, const kf_step *st, int T) {
  long B = st->B, maxp = 0;
  for (long b = 0; b < B; b++)
    maxp = st->pos[b] > maxp ? st->pos[b] : maxp;
  long scn = (maxp + 1 + 2 * m->D + 15) / 16 * 16;
  long QD = m->nh * m->D, KD = m->nkv * m->D;
  long maxk = m->H > QD ? m->H : QD;
  maxk = maxk > m->I ? maxk : m->I;
  long xqn = (B * (maxk / 32 + 1) * KF_Q8_BYTES / 4 + 15) / 16 * 16;
  long nv = kf_nchunks(m->V, kf_head_chunk(m, T));
  long sizes[] = {B * m->H, B * m->H, B * QD, B * KD, B * KD, B * QD, B * m->I, B * m->I, T * B * m->H, T * scn, T * xqn, B * nv, B * nv};
  size_t total = 0;
  for (int i = 0; i < 13; i++)
    total += (sizes[i] + 15) / 16 * 16;
  if (total > kf_pool.arena_len) {
    free(kf_pool.arena);
    size_t n = total + total / 2;
    kf_pool.arena = aligned_alloc(64, n * sizeof(float));
    kf_pool.arena_len = kf_pool.arena ? n : 0;
    if (!kf_pool.arena)
      return -1;
  }
  float **bufs[] = {&kf_pool.x, &kf_pool.y, &kf_pool.q, &kf_pool.k, &kf_pool.v,
                    &kf_pool.att, &kf_pool.g, &kf_pool.u, &kf_pool.h, &kf_pool.sc, &kf_pool.xq, &kf_pool.bv};
  float *p = kf_pool.arena;
  for (int i = 0; i < 13; i++) {
    if (i < 12)
      *bufs[i] = p;
    else
      kf_pool.bi = (int *)p; // an int is a float's size
    p += (sizes[i] + 15) / 16 * 16;
  }
  kf_pool.scn = scn;
  kf_pool.xqn = xqn;
  return 0;
}

// kf_runnable is the number of runnable threads on the machine now
// (/proc/loadavg's fourth field, before the slash), or -1.
long kf_runnable(void) {
  static int fd = -2;
  if (fd == -2)
    fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[128];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return -1;
  buf[n] = 0;
  char *p = buf;
  for (int f = 0; f < 3; f++) {
    p = strchr(p, ' ');
    if (!p)
      return -1;
    p++;
  }
  char *end;
  long r = strtol(p, &end, 10);
  return end != p && *end == '/' ? r : -1;
}

// kf_spin_adapt sets how long phase waits spin: long once KF_QUIET_STEPS
// steps in a row found no more runnable threads than cores counting all T
// pool threads as running, short as soon as one did not. Thread 0 calls
// it twice a step: after the first layer to apply the decision (the
// step's start, short, leaves the cores to the previous token's HTTP
// write and its client), and halfway through the layers to count
// (sample) and apply again.
static void kf_spin_adapt(int T, int sample) {
  static long ncpu, quiet;
  if (!ncpu) { // the cores this process may run on (a container's cpuset)
    cpu_set_t cs;
    ncpu = sched_getaffinity(0, sizeof cs, &cs) == 0 ? CPU_COUNT(&cs) : sysconf(_SC_NPROCESSORS_ONLN);
  }
#ifdef KF_PROF
  // A kfprof build can fix the spin for comparisons: KFLLM_SPIN=short|long.
  const char *force = getenv("KFLLM_SPIN");
  if (force && (!strcmp(force, "short") || !strcmp(force, "long"))) {
    int lg = !strcmp(force, "long");
    atomic_store(&kf_spin_ticks, lg ? KF_SPIN_LONG : KF_SPIN_SHORT);
    if (lg && sample)
      KF_COUNT(KF_P_LONG);
    return;
  }
#endif
  if (sample) {
    long r = kf_runnable();
    // The pool's threads are in r but for those asleep on a phase's end.
    long others = r - (T - atomic_load(&kf_pool.psleep));
    // A busy sample takes back four quiet ones rather than all: the count
    // flickers with kernel threads on an idle machine (one busy sample in
    // ten kept the long spin off for a third of the steps when any busy
    // sample reset it), while a machine that stays busy still drops to
    // short within a few steps.
    if (r < 0 || others + T > ncpu)
      quiet = quiet > 4 ? quiet - 4 : 0;
    else if (quiet < 2 * KF_QUIET_STEPS)
      quiet++;
  }
  atomic_store_explicit(&kf_spin_ticks, quiet >= KF_QUIET_STEPS ? KF_SPIN_LONG : KF_SPIN_SHORT, memory_order_relaxed);
  if (sample && quiet >= KF_QUIET_STEPS)
    KF_COUNT(KF_P_LONG);
}

// kf_decode runs step st of model m on threads threads (the caller's and
// threads-1 workers): 0 on success, -1 when memory or threads ran out.
int kf_decode(const kf_model *m, const kf_step *st, int threads) {
  int T = threads < 1 ? 1 : threads > KF_MAX_THREADS ? KF_MAX_THREADS : threads;
  pthread_mutex_lock(&kf_pool.mu);
  int rc = kf_buffers(m, st, T);
  while (rc == 0 && kf_pool.workers < T - 1) {
    kf_worker_arg *a = malloc(sizeof *a);
    pthread_t th;
    if (!a) {
      rc = -1;
      break;
    }
    a->id = kf_pool.workers + 1;
    a->gen = atomic_load(&kf_pool.gen);
    if (pthread_create(&th, NULL, kf_worker, a) != 0) {
      free(a);
      rc = -1;
      break;
    }
    pthread_detach(th);
    kf_pool.workers++;
  }
  long P = kf_phases(m);
  if (rc == 0 && P > kf_pool.nphases) {
    free((void *)kf_pool.next);
    free((void *)kf_pool.done);
    kf_pool.next = calloc(P, sizeof(long));
    kf_pool.done = calloc(P, sizeof(long));
    kf_pool.nphases = kf_pool.next && kf_pool.done ? P : 0;
    if (!kf_pool.nphases)
      rc = -1;
  }
  if (rc == 0) {
    for (long p = 0; p < P; p++) {
      atomic_store(&kf_pool.next[p], 0);
      atomic_store(&kf_pool.done[p], 0);
    }
    kf_pool.m = m;
    kf_pool.st = st;
    kf_pool.T = T;
    atomic_store(&kf_spin_ticks, KF_SPIN_SHORT);
    KF_T(td);
    atomic_store(&kf_pool.open, 1);
    if (T > 1)
      kf_signal(&kf_pool.gen, &kf_pool.gsleep);
    kf_run(m, st, 0, T);
    // Close the step and wait for the workers in it to leave.
    atomic_store(&kf_pool.open, 0);
    for (;;) {
      unsigned g = atomic_load(&kf_pool.igen);
      if (atomic_load(&kf_pool.inside) == 0)
        break;
      kf_wait(&kf_pool.igen, g, &kf_pool.isleep, KF_SPIN_SHORT);
    }
    KF_ADD(0, KF_P_DECODE, td);
  }
  pthread_mutex_unlock(&kf_pool.mu);
  return rc;
}
