package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// llamaParams are the hyperparameters of a llama GGUF (the llama.* keys).
type llamaParams struct {
	Layers, Hidden, FFN, Heads, KVHeads, HeadDim, ContextLength, Vocab int
	RopeTheta, RMSNormEps                                              float64
	RopeScaling                                                        map[string]any // nil: none
	Tied                                                               bool           // no output.weight
	BOS, EOS, Pad                                                      int            // -1: unset
}

// readLlamaParams reads the hyperparameters and checks them against the
// token embedding.
func readLlamaParams(g *File) (*llamaParams, error) {
	md := g.Metadata
	arch, err := md.String("general.architecture")
	if err != nil {
		return nil, err
	}
	if arch != "llama" {
		return nil, fmt.Errorf("architecture %q (want llama): %w", arch, ErrUnsupported)
	}
	hp := &llamaParams{RopeTheta: 10000, RMSNormEps: 1e-5}
	var errs []error
	req := func(dst *int, key string) {
		v, err := md.Int(key)
		if err == nil && v <= 0 {
			err = fmt.Errorf("%s = %d: %w", key, v, ErrMalformed)
		}
		errs = append(errs, err)
		*dst = v
	}
	opt := func(dst *int, key string, def int) {
		*dst = def
		if md.Has(key) {
			req(dst, key)
		}
	}
	optFloat := func(dst *float64, key string) {
		if md.Has(key) {
			v, err := md.Float(key)
			errs = append(errs, err)
			*dst = v
		}
	}
	req(&hp.Layers, "llama.block_count")
	req(&hp.Hidden, "llama.embedding_length")
	req(&hp.FFN, "llama.feed_forward_length")
	req(&hp.Heads, "llama.attention.head_count")
	req(&hp.ContextLength, "llama.context_length")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opt(&hp.KVHeads, "llama.attention.head_count_kv", hp.Heads)
	opt(&hp.HeadDim, "llama.attention.key_length", hp.Hidden/hp.Heads)
	optFloat(&hp.RopeTheta, "llama.rope.freq_base")
	optFloat(&hp.RMSNormEps, "llama.attention.layer_norm_rms_epsilon")
	var ropeDim, valueLen int
	opt(&ropeDim, "llama.rope.dimension_count", hp.HeadDim)
	opt(&valueLen, "llama.attention.value_length", hp.HeadDim)
	opt(&hp.BOS, "tokenizer.ggml.bos_token_id", -1)
	opt(&hp.EOS, "tokenizer.ggml.eos_token_id", -1)
	opt(&hp.Pad, "tokenizer.ggml.padding_token_id", -1)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	switch {
	case hp.Heads%hp.KVHeads != 0:
		return nil, fmt.Errorf("%d heads not a multiple of %d kv heads: %w", hp.Heads, hp.KVHeads, ErrMalformed)
	case ropeDim != hp.HeadDim || valueLen != hp.HeadDim:
		return nil, fmt.Errorf("rope dimension %d / value length %d differ from head dim %d: %w", ropeDim, valueLen, hp.HeadDim, ErrUnsupported)
	case hp.HeadDim%2 != 0:
		return nil, fmt.Errorf("odd head dim %d: %w", hp.HeadDim, ErrMalformed)
	}
	if typ, err := md.String("llama.rope.scaling.type"); err == nil && typ != "none" {
		if typ != "linear" {
			return nil, fmt.Errorf("rope scaling %q (want none or linear): %w", typ, ErrUnsupported)
		}
		f, err := md.Float("llama.rope.scaling.factor")
		if err != nil {
			return nil, err
		}
		hp.RopeScaling = map[string]any{"type": "linear", "factor": f}
	}
	emb, ok := g.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 || emb.Dims[0] != uint64(hp.Hidden) {
		return nil, fmt.Errorf("token_embd.weight missing or not [vocab, %d]: %w", hp.Hidden, ErrMalformed)
	}
	hp.Vocab = int(emb.Dims[1])
	if v, err := md.Int("llama.vocab_size"); err == nil && v != hp.Vocab {
		return nil, fmt.Errorf("llama.vocab_size %d but token_embd.weight has %d rows: %w", v, hp.Vocab, ErrMalformed)
	}
	_, hasOutput := g.Tensor("output.weight")
	hp.Tied = !hasOutput
	return hp, nil
}

// hfConfig is config.json for transformers' LlamaConfig.
func (hp *llamaParams) hfConfig() map[string]any {
	c := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"vocab_size":              hp.Vocab,
		"hidden_size":             hp.Hidden,
		"intermediate_size":       hp.FFN,
		"num_hidden_layers":       hp.Layers,
		"num_attention_heads":     hp.Heads,
		"num_key_value_heads":     hp.KVHeads,
		"head_dim":                hp.HeadDim,
		"max_position_embeddings": hp.ContextLength,
		"rope_theta":              hp.RopeTheta,
		"rope_scaling":            hp.RopeScaling,
		"rms_norm_eps":            hp.RMSNormEps,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"mlp_bias":                false,
		"attention_dropout":       0.0,
		"initializer_range":       0.02,
		"pretraining_tp":          1,
		"use_cache":               true,
		"tie_word_embeddings":     hp.Tied,
		"torch_dtype":             "float32",
	}
	for key, id := range map[string]int{"bos_token_id": hp.BOS, "eos_token_id": hp.EOS, "pad_token_id": hp.Pad} {
		if id >= 0 {
			c[key] = id
		}
	}
	return c
}

func (hp *llamaParams) generationConfig() map[string]any {
	c := map[string]any{"_from_model_config": true}
	for key, id := range map[string]int{"bos_token_id": hp.BOS, "eos_token_id": hp.EOS, "pad_token_id": hp.Pad} {
		if id >= 0 {
			c[key] = id
		}
	}
	return c
}

// tensorPlan says where a GGUF tensor goes.
type tensorPlan struct {
	src    TensorInfo
	hfName string
	heads  int // > 0: un-permute the rows of this q or k projection over this many heads
}

// llamaBlockTensors maps a GGUF tensor name inside a block to its Hugging Face
// name, its Hugging Face shape and, for q and k, the head count its rows
// are permuted over.
var llamaBlockTensors = map[string]struct {
	hf      string
	shape   func(hp *llamaParams) []int64
	permute func(hp *llamaParams) int
}{
	"attn_norm":   {"input_layernorm", func(hp *llamaParams) []int64 { return []int64{int64(hp.Hidden)} }, nil},
	"ffn_norm":    {"post_attention_layernorm", func(hp *llamaParams) []int64 { return []int64{int64(hp.Hidden)} }, nil},
	"attn_q":      {"self_attn.q_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.Heads * hp.HeadDim), int64(hp.Hidden)} }, func(hp *llamaParams) int { return hp.Heads }},
	"attn_k":      {"self_attn.k_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.KVHeads * hp.HeadDim), int64(hp.Hidden)} }, func(hp *llamaParams) int { return hp.KVHeads }},
	"attn_v":      {"self_attn.v_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.KVHeads * hp.HeadDim), int64(hp.Hidden)} }, nil},
	"attn_output": {"self_attn.o_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.Hidden), int64(hp.Heads * hp.HeadDim)} }, nil},
	"ffn_gate":    {"mlp.gate_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.FFN), int64(hp.Hidden)} }, nil},
	"ffn_up":      {"mlp.up_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.FFN), int64(hp.Hidden)} }, nil},
	"ffn_down":    {"mlp.down_proj", func(hp *llamaParams) []int64 { return []int64{int64(hp.Hidden), int64(hp.FFN)} }, nil},
}

// planTensors maps every tensor of g to its Hugging Face name, checking
// shapes, types and that nothing is missing or left over.
func planTensors(g *File, hp *llamaParams) ([]tensorPlan, error) {
	want := map[string]tensorPlan{} // by GGUF name
	add := func(name, hf string, shape []int64, heads int) {
		want[name] = tensorPlan{hfName: hf, heads: heads, src: TensorInfo{Dims: dimsOf(shape)}}
	}
	add("token_embd.weight", "model.embed_tokens.weight", []int64{int64(hp.Vocab), int64(hp.Hidden)}, 0)
	add("output_norm.weight", "model.norm.weight", []int64{int64(hp.Hidden)}, 0)
	if !hp.Tied {
		add("output.weight", "lm_head.weight", []int64{int64(hp.Vocab), int64(hp.Hidden)}, 0)
	}
	for i := range hp.Layers {
		for short, m := range llamaBlockTensors {
			heads := 0
			if m.permute != nil {
				heads = m.permute(hp)
			}
			add(fmt.Sprintf("blk.%d.%s.weight", i, short), fmt.Sprintf("model.layers.%d.%s.weight", i, m.hf), m.shape(hp), heads)
		}
	}
	var plan []tensorPlan
	var errs []error
	for _, t := range g.Tensors {
		p, ok := want[t.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("tensor %s: not part of a Llama model this converter knows: %w", t.Name, ErrUnsupported))
			continue
		}
		if !slices.Equal(p.src.Dims, t.Dims) {
			errs = append(errs, fmt.Errorf("tensor %s: dims %v, want %v from the metadata: %w", t.Name, t.Dims, p.src.Dims, ErrMalformed))
		}
		if !canDequantize(t.Type) {
			errs = append(errs, fmt.Errorf("tensor %s: type %s: %w", t.Name, t.Type, ErrUnsupported))
		}
		delete(want, t.Name)
		p.src = t
		plan = append(plan, p)
	}
	missing := slices.Sorted(maps.Keys(want))
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("tensors missing: %s: %w", strings.Join(missing, ", "), ErrMalformed))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plan, nil
}

func dimsOf(shape []int64) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(d)-1-i] = uint64(s)
	}
	return d
}

func canDequantize(t Type) bool {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_1:
		return true
	}
	return false
}

// rowReader yields a tensor's rows as little-endian float32 bytes, one
// dequantized row at a time, in Hugging Face order: for a permuted q or k
// projection, output row h*hd + j*hd/2 + i is GGUF row h*hd + 2*i + j
// (llama.cpp interleaves the two rotary halves of each head).
type rowReader struct {
	raw      []byte
	typ      Type
	cols     int
	rowBytes int
	rows     int
	headDim  int // 0: no permutation
	next     int
	f        []float32
	buf      []byte
	pending  []byte
}

func newRowReader(g *File, p tensorPlan) *rowReader {
	t := p.src
	info := typeInfo[t.Type]
	cols := int(t.Dims[0])
	r := &rowReader{
		raw: g.Data(t), typ: t.Type, cols: cols,
		rowBytes: cols / info.block * info.size,
		rows:     int(t.NumElements()) / cols,
		f:        make([]float32, cols),
		buf:      make([]byte, 4*cols),
	}
	if p.heads > 0 {
		r.headDim = r.rows / p.heads
	}
	return r
}

func (r *rowReader) srcRow(out int) int {
	if r.headDim == 0 {
		return out
	}
	half := r.headDim / 2
	h, k := out/r.headDim, out%r.headDim
	j, i := k/half, k%half
	return h*r.headDim + 2*i + j
}

func (r *rowReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.pending) == 0 {
			if r.next == r.rows {
				if n == 0 {
					return 0, io.EOF
				}
				break
			}
			s := r.srcRow(r.next)
			if err := Dequantize(r.f, r.typ, r.raw[s*r.rowBytes:(s+1)*r.rowBytes]); err != nil {
				return n, err
			}
			for i, x := range r.f {
				binary.LittleEndian.PutUint32(r.buf[4*i:], math.Float32bits(x))
			}
			r.pending = r.buf
			r.next++
		}
		c := copy(p[n:], r.pending)
		r.pending = r.pending[c:]
		n += c
	}
	return n, nil
}

var _ io.Reader = (*rowReader)(nil)
