// What decode_amd64.c's whole-step decoder reads: the model (pointers into
// the libtorch tensors that hold its weights) and one step (the batch's
// tokens, positions and KV cache buffers). Included by decode_amd64.c and
// by decode_amd64.go's cgo preamble.
#ifndef KF_DECODE_H
#define KF_DECODE_H

// kf_lin is one projection y = x @ W (+ b). kind 0: w is [K,N] row-major;
// kind 1: w is [N,K], as torch.nn.Linear stores a weight (and a tied lm_head
// reading the embedding), y = x @ w^T. With qw set, W is [N,K] in ggml
// blocks of type qtype (quant.c's kf_qmatmul) and w is NULL.
typedef struct {
  const float *w;
  const float *b; // [N] or NULL
  long K, N;
  int kind;
  const void *qw;
  int qtype;
} kf_lin;

// kf_layer is one Llama decoder layer. qnorm and knorm (Qwen3's RMSNorm
// over each head's queries and keys, [D]) are NULL for Llama.
typedef struct {
  const float *norm1, *norm2, *qnorm, *knorm;
  kf_lin q, k, v, o, gate, up, down;
} kf_layer;

// kf_model: H hidden, nh query heads, nkv KV heads of D each, I the MLP's
// intermediate size, V the vocabulary, L layers.
typedef struct {
  long H, nh, nkv, D, I, V, L;
  float eps;
  const float *embed; // [V,H], or NULL when qembed is set
  const void *qembed; // [V,H] in ggml blocks of type qembed_type
  int qembed_type;
  const float *norm;  // the final norm, [H]
  kf_lin head;
  const kf_layer *layers; // [L]
} kf_model;

// kf_step is one decode step over B rows: row b feeds token ids[b] at
// position pos[b] (its cache holds positions 0..pos[b]-1), and its keys
// and values live in rows (slot[b]*nkv + g) of each layer's cache buffers
// kc[l], vc[l] ([slots, nkv, cap, D]). cos and sin are rope's [B,D] for
// the positions. The step writes the new keys and values into the caches
// and the logits [B,V]; with best set, also each row's first largest
// logit's index into best[b] (NaN counting as -inf, as sample.go's greedy
// choice).
typedef struct {
  long B, cap;
  const long *ids, *pos, *slot;
  float *const *kc;
  float *const *vc;
  const float *cos, *sin;
  float scale;
  float *logits;
  long *best;
} kf_step;

int kf_decode(const kf_model *m, const kf_step *st, int threads);
long kf_argmax(const float *v, long n, long w);
long kf_runnable(void);

// The phase kinds kf_prof_ns times when kf_prof_on is set.
enum { KF_PROF_EMBED, KF_PROF_QKV, KF_PROF_ATTN, KF_PROF_O, KF_PROF_GATEUP, KF_PROF_DOWN, KF_PROF_HEAD, KF_PROF_KINDS };
extern long long kf_prof_ns[KF_PROF_KINDS];
extern int kf_prof_on;

#endif
