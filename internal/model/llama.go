package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// Architecture names of the Llama family, as config.json spells them.
const (
	ArchLlama   = "LlamaForCausalLM"
	ArchMistral = "MistralForCausalLM" // Llama's layout; see Config.SlidingWindow
	ArchQwen2   = "Qwen2ForCausalLM"
)

// llama is Llama (also SmolLM, TinyLlama): pre-norm decoder layers with
// RMSNorm, rotary positions, GQA attention and a gated MLP.
var llama = llamaFamily(ArchLlama, "llama", nil, encodeBiasFlags)

// mistral is Llama's layout with a sliding window.
var mistral = llamaFamily(ArchMistral, "mistral", func(c *Config, r *reader) {
	c.SlidingWindow = r.int("sliding_window", 0)
}, encodeBiasFlags)

// qwen2 is Llama's layout with biases on q, k and v (not configurable).
var qwen2 = llamaFamily(ArchQwen2, "qwen2", func(c *Config, r *reader) {
	c.QKVBias = true
	c.SlidingWindow = qwenSlidingWindow(r)
}, nil)

// llamaFamily is an architecture with Llama's config, parameters and
// layers; parse and encode (either may be nil) read and write its own
// fields of config.json after Llama's.
func llamaFamily(name, modelType string, parse func(c *Config, r *reader), encode func(c *Config, out map[string]any)) *architecture {
	return &architecture{
		name: name, modelType: modelType,
		parse: func(c *Config, r *reader) {
			c.parseLlama(r)
			if parse != nil {
				parse(c, r)
			}
		},
		defaults: llamaDefaults,
		check:    llamaCheck,
		encode: func(c *Config, out map[string]any) {
			llamaEncode(c, out)
			if encode != nil {
				encode(c, out)
			}
		},
		specs:     llamaSpecs,
		embedding: "model.embed_tokens.weight",
		build: func(m *Model) (decoder, error) {
			return buildLlama(m)
		},
	}
}

// qwenSlidingWindow is Qwen's sliding_window, when use_sliding_window is
// on.
func qwenSlidingWindow(r *reader) int {
	if r.bool("use_sliding_window", false) {
		return r.int("sliding_window", 0)
	}
	return 0
}

func (c *Config) parseLlama(r *reader) {
	c.VocabSize = r.int("vocab_size", -1)
	c.HiddenSize = r.int("hidden_size", -1)
	c.IntermediateSize = r.int("intermediate_size", -1)
	c.NumLayers = r.int("num_hidden_layers", -1)
	c.NumHeads = r.int("num_attention_heads", -1)
	c.NumKVHeads = r.int("num_key_value_heads", c.NumHeads)
	c.HeadDim = r.int("head_dim", 0)
	c.MaxPositions = r.int("max_position_embeddings", -1)
	c.RMSNormEps = r.float("rms_norm_eps", 1e-6)
	c.HiddenAct = r.str("hidden_act", "silu")
	c.TieWordEmbeddings = r.bool("tie_word_embeddings", false)
	c.AttentionBias = r.bool("attention_bias", false)
	c.MLPBias = r.bool("mlp_bias", false)
	// transformers v5 moves rope_theta and rope_scaling into rope_parameters.
	scaling, _ := r.raw["rope_scaling"].(map[string]any)
	if params, ok := r.raw["rope_parameters"].(map[string]any); ok {
		scaling = params
		c.RopeTheta = (&reader{raw: params}).float("rope_theta", r.float("rope_theta", 10000))
	} else {
		c.RopeTheta = r.float("rope_theta", 10000)
	}
	c.Rope = RopeScaling{Type: "default"}
	if scaling != nil {
		s := reader{raw: scaling}
		c.Rope.Type = s.str("rope_type", s.str("type", "default"))
		switch c.Rope.Type {
		case "default":
		case "linear":
			c.Rope.Factor = s.float("factor", -1)
		case "llama3":
			c.Rope.Factor = s.float("factor", -1)
			c.Rope.LowFreqFactor = s.float("low_freq_factor", -1)
			c.Rope.HighFreqFactor = s.float("high_freq_factor", -1)
			c.Rope.OriginalMaxPositions = s.int("original_max_position_embeddings", -1)
		default:
			if r.err == nil {
				r.err = fmt.Errorf("rope type %q (want default, linear or llama3): %w", c.Rope.Type, ErrUnsupported)
			}
		}
		if s.err != nil && r.err == nil {
			r.err = fmt.Errorf("rope scaling: %w", s.err)
		}
	}
}

func llamaDefaults(c *Config) {
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
}

func llamaCheck(c *Config) error {
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("%s config: head_dim %d is odd; rotary embeddings need it even", c.Architecture, c.HeadDim)
	}
	return nil
}

func llamaEncode(c *Config, out map[string]any) {
	out["hidden_size"] = c.HiddenSize
	out["intermediate_size"] = c.IntermediateSize
	out["num_hidden_layers"] = c.NumLayers
	out["num_attention_heads"] = c.NumHeads
	out["num_key_value_heads"] = c.NumKVHeads
	out["head_dim"] = c.HeadDim
	out["max_position_embeddings"] = c.MaxPositions
	out["rms_norm_eps"] = c.RMSNormEps
	out["hidden_act"] = c.HiddenAct
	var scaling map[string]any
	switch c.Rope.Type {
	case "linear":
		scaling = map[string]any{"rope_type": "linear", "factor": c.Rope.Factor}
	case "llama3":
		scaling = map[string]any{"rope_type": "llama3", "factor": c.Rope.Factor, "low_freq_factor": c.Rope.LowFreqFactor,
			"high_freq_factor": c.Rope.HighFreqFactor, "original_max_position_embeddings": c.Rope.OriginalMaxPositions}
	}
	if _, v5 := out["rope_parameters"]; v5 {
		p := map[string]any{"rope_type": "default", "rope_theta": c.RopeTheta}
		for k, v := range scaling {
			p[k] = v
		}
		out["rope_parameters"] = p
	} else {
		out["rope_theta"] = c.RopeTheta
		out["rope_scaling"] = scaling
	}
}

func encodeBiasFlags(c *Config, out map[string]any) {
	out["attention_bias"] = c.AttentionBias
	out["mlp_bias"] = c.MLPBias
}

func llamaSpecs(c *Config) []spec {
	var out []spec
	add := func(name string, init initKind, noDecay bool, shape ...int64) {
		out = append(out, spec{name: name, shape: shape, init: init, noDecay: noDecay})
	}
	h, inter, v := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	qd, kvd := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	add("model.embed_tokens.weight", initNormal, false, v, h)
	for _, p := range layerNames(c, "model.layers.%d.") {
		for _, pr := range []struct {
			name    string
			out, in int64
			bias    bool
		}{
			{"self_attn.q_proj", qd, h, c.AttentionBias || c.QKVBias},
			{"self_attn.k_proj", kvd, h, c.AttentionBias || c.QKVBias},
			{"self_attn.v_proj", kvd, h, c.AttentionBias || c.QKVBias},
			{"self_attn.o_proj", h, qd, c.AttentionBias},
			{"mlp.gate_proj", inter, h, c.MLPBias},
			{"mlp.up_proj", inter, h, c.MLPBias},
			{"mlp.down_proj", h, inter, c.MLPBias},
		} {
			add(p+pr.name+".weight", initNormal, false, pr.out, pr.in)
			if pr.bias {
				add(p+pr.name+".bias", initZeros, true, pr.out)
			}
		}
		add(p+"input_layernorm.weight", initOnes, true, h)
		add(p+"post_attention_layernorm.weight", initOnes, true, h)
	}
	add("model.norm.weight", initOnes, true, h)
	if !c.TieWordEmbeddings {
		add("lm_head.weight", initNormal, false, v, h)
	}
	return out
}

// llamaDecoder is LlamaModel's forward pass (also Mistral's and Qwen2's).
type llamaDecoder struct {
	embedW, normW *ts.Tensor
	qembed        *quantWeight // the embedding in ggml blocks (LoadGGUF); embedW is then nil
	layers        []llamaLayer
	rope          *rope
}

type llamaLayer struct {
	norm1W, norm2W             *ts.Tensor
	q, k, v, o, gate, up, down *Linear
}

var _ decoder = (*llamaDecoder)(nil)

// buildLlama binds the parameters llamaSpecs lists and makes the rope
// rotation.
func buildLlama(m *Model) (*llamaDecoder, error) {
	c := m.Config
	d := &llamaDecoder{embedW: m.param("model.embed_tokens.weight"), normW: m.param("model.norm.weight"), qembed: m.quant["model.embed_tokens.weight"]}
	for _, p := range layerNames(c, "model.layers.%d.") {
		d.layers = append(d.layers, llamaLayer{norm1W: m.param(p + "input_layernorm.weight"), norm2W: m.param(p + "post_attention_layernorm.weight"),
			q: m.linear(p+"self_attn.q_proj", false), k: m.linear(p+"self_attn.k_proj", false),
			v: m.linear(p+"self_attn.v_proj", false), o: m.linear(p+"self_attn.o_proj", false),
			gate: m.linear(p+"mlp.gate_proj", false), up: m.linear(p+"mlp.up_proj", false), down: m.linear(p+"mlp.down_proj", false)})
	}
	var s scope
	d.rope = newRope(&s, c, m.choice.Device, m.choice.DType)
	s.Free()
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("rope tables: %w", err)
	}
	return d, nil
}

func (d *llamaDecoder) positions(p *pass, pos []int64) {
	p.cos, p.sin = d.rope.tables(p.s, pos, p.b, p.t, p.m.choice.Device, p.m.choice.DType)
}

func (d *llamaDecoder) embed(p *pass, ids ct) ct {
	if d.qembed != nil {
		return p.s.quantRows(ids, d.qembed)
	}
	return p.s.Embedding(torch.Of(d.embedW), ids)
}

func (d *llamaDecoder) norm(p *pass, x ct) ct { return p.rmsNorm(x, torch.Of(d.normW)) }

func (d *llamaDecoder) close() { d.rope.free() }

// layer is LlamaDecoderLayer: x + attn(rms(x)), then + mlp(rms(x)).
func (d *llamaDecoder) layer(p *pass, i int, x, at ct) ct {
	q, k, v := d.project(p, i, x)
	return d.finish(p, i, x, q, k, v, at)
}

// project is layer i's input norm and q, k, v projections, as heads
// [B,n,T,D], before rope.
func (d *llamaDecoder) project(p *pass, i int, x ct) (q, k, v ct) {
	s, c, l := p.s, p.m.Config, &d.layers[i]
	h := p.rmsNorm(x, torch.Of(l.norm1W))
	q = p.heads(l.q.forward(s, h, p.train), int64(c.NumHeads))
	k = p.heads(l.k.forward(s, h, p.train), int64(c.NumKVHeads))
	v = p.heads(l.v.forward(s, h, p.train), int64(c.NumKVHeads))
	return q, k, v
}

// finish is the rest of layer i from its heads: rope, attention, o_proj
// and the residual, then the MLP block. Attention runs on every position
// (its keys and values are needed everywhere); with at, o_proj, the
// residual and the MLP run on those flattened positions alone, and it
// returns [len(at),H].
func (d *llamaDecoder) finish(p *pass, i int, x, q, k, v, at ct) ct {
	s, l := p.s, &d.layers[i]
	q = d.rope.apply(s, q, p.cos, p.sin)
	k = d.rope.apply(s, k, p.cos, p.sin)
	a := p.attend(i, q, k, v, 0, p.trainDropout("attention_dropout"))
	if at != nil {
		a = s.IndexSelect(s.Reshape(a, p.b*p.t, -1), 0, at)
		x = s.IndexSelect(s.Reshape(x, p.b*p.t, -1), 0, at)
	}
	x = s.Add(x, l.o.forward(s, a, p.train))
	h := p.rmsNorm(x, torch.Of(l.norm2W))
	g := p.activate(l.gate.forward(s, h, p.train))
	return s.Add(x, l.down.forward(s, s.Mul(g, l.up.forward(s, h, p.train)), p.train))
}

// activate applies the config's hidden_act.
func (p *pass) activate(x ct) ct {
	if p.m.act == "silu" {
		return p.s.Silu(x)
	}
	return p.s.Gelu(x, p.m.act)
}

// rmsNorm is LlamaRMSNorm over the last dimension: computed in float32
// whatever the model's dtype, cast back, then scaled by w.
func (p *pass) rmsNorm(x, w ct) ct {
	s, dev, dt := p.s, p.m.choice.Device, p.m.choice.DType
	h := x
	if dt != gotch.Float {
		h = s.To(x, dev, gotch.Float)
	}
	variance := s.MeanLast(s.PowScalar(h, 2))
	h = s.Mul(h, s.Rsqrt(s.AddScalar(variance, p.m.Config.RMSNormEps)))
	if dt != gotch.Float {
		h = s.To(h, dev, dt)
	}
	return s.Mul(w, h)
}
