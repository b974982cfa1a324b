package model

import (
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// ArchGPT2 is GPT-2's architecture name in config.json.
const ArchGPT2 = "GPT2LMHeadModel"

// gpt2 is GPT-2: learned positions, LayerNorm, fused qkv and transformers'
// Conv1D projections ([in,out] weights).
var gpt2 = &architecture{
	name: ArchGPT2, modelType: "gpt2",
	parse:    (*Config).parseGPT2,
	defaults: gpt2Defaults,
	check:    gpt2Check,
	encode:   gpt2Encode,
	specs:    gpt2Specs,
	// Checkpoints saved as the original openai-community/gpt2 name their
	// tensors without the "transformer." prefix.
	fileName: func(n string) string {
		if !strings.HasPrefix(n, "transformer.") && n != "lm_head.weight" {
			return "transformer." + n
		}
		return n
	},
	embedding: "transformer.wte.weight",
	build:     buildGPT2,
}

func (c *Config) parseGPT2(r *reader) {
	c.VocabSize = r.int("vocab_size", -1)
	c.HiddenSize = r.int("n_embd", -1)
	c.NumLayers = r.int("n_layer", -1)
	c.NumHeads = r.int("n_head", -1)
	c.NumKVHeads = c.NumHeads
	c.MaxPositions = r.int("n_positions", -1)
	c.IntermediateSize = r.int("n_inner", 0) // null -> 4*n_embd
	if c.IntermediateSize == 0 && c.HiddenSize > 0 {
		c.IntermediateSize = 4 * c.HiddenSize
	}
	c.LayerNormEps = r.float("layer_norm_epsilon", 1e-5)
	c.HiddenAct = r.str("activation_function", "gelu_new")
	c.TieWordEmbeddings = r.bool("tie_word_embeddings", true)
	c.ScaleAttnByInverseLayerIdx = r.bool("scale_attn_by_inverse_layer_idx", false)
	if !r.bool("scale_attn_weights", true) || r.bool("reorder_and_upcast_attn", false) {
		if r.err == nil {
			r.err = fmt.Errorf("scale_attn_weights=false or reorder_and_upcast_attn=true: %w", ErrUnsupported)
		}
	}
}

func gpt2Defaults(c *Config) {
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-5
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "gelu_new"
	}
}

func gpt2Check(c *Config) error {
	if c.HeadDim*c.NumHeads != c.HiddenSize {
		return fmt.Errorf("%s config: n_embd %d is not a multiple of n_head %d", c.Architecture, c.HiddenSize, c.NumHeads)
	}
	return nil
}

func gpt2Encode(c *Config, out map[string]any) {
	out["n_embd"] = c.HiddenSize
	out["n_layer"] = c.NumLayers
	out["n_head"] = c.NumHeads
	out["n_positions"] = c.MaxPositions
	if c.IntermediateSize != 4*c.HiddenSize {
		out["n_inner"] = c.IntermediateSize
	} else if _, ok := out["n_inner"]; !ok {
		out["n_inner"] = nil
	}
	out["layer_norm_epsilon"] = c.LayerNormEps
	out["activation_function"] = c.HiddenAct
	out["scale_attn_by_inverse_layer_idx"] = c.ScaleAttnByInverseLayerIdx
}

func gpt2Specs(c *Config) []spec {
	var out []spec
	add := func(name string, init initKind, noDecay bool, shape ...int64) {
		out = append(out, spec{name: name, shape: shape, init: init, noDecay: noDecay})
	}
	h, inter, v := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	add("transformer.wte.weight", initNormal, false, v, h)
	add("transformer.wpe.weight", initNormal, false, int64(c.MaxPositions), h)
	for _, p := range layerNames(c, "transformer.h.%d.") {
		add(p+"ln_1.weight", initOnes, true, h)
		add(p+"ln_1.bias", initZeros, true, h)
		add(p+"attn.c_attn.weight", initNormal, false, h, 3*h)
		add(p+"attn.c_attn.bias", initZeros, true, 3*h)
		add(p+"attn.c_proj.weight", initResidual, false, h, h)
		add(p+"attn.c_proj.bias", initZeros, true, h)
		add(p+"ln_2.weight", initOnes, true, h)
		add(p+"ln_2.bias", initZeros, true, h)
		add(p+"mlp.c_fc.weight", initNormal, false, h, inter)
		add(p+"mlp.c_fc.bias", initZeros, true, inter)
		add(p+"mlp.c_proj.weight", initResidual, false, inter, h)
		add(p+"mlp.c_proj.bias", initZeros, true, h)
	}
	add("transformer.ln_f.weight", initOnes, true, h)
	add("transformer.ln_f.bias", initZeros, true, h)
	if !c.TieWordEmbeddings {
		add("lm_head.weight", initNormal, false, v, h)
	}
	return out
}

// gpt2Decoder is GPT2Model's forward pass.
type gpt2Decoder struct {
	wte, wpe, normW, normB *ts.Tensor
	layers                 []gpt2Layer
}

type gpt2Layer struct {
	norm1W, norm1B, norm2W, norm2B *ts.Tensor
	cAttn, cProj, fc, mlpProj      *Linear
	attnScale                      float64 // 0: 1/sqrt(head_dim)
}

var _ decoder = (*gpt2Decoder)(nil)

func buildGPT2(m *Model) (decoder, error) {
	c := m.Config
	d := &gpt2Decoder{wte: m.param("transformer.wte.weight"), wpe: m.param("transformer.wpe.weight"),
		normW: m.param("transformer.ln_f.weight"), normB: m.param("transformer.ln_f.bias")}
	for i, p := range layerNames(c, "transformer.h.%d.") {
		l := gpt2Layer{norm1W: m.param(p + "ln_1.weight"), norm1B: m.param(p + "ln_1.bias"),
			norm2W: m.param(p + "ln_2.weight"), norm2B: m.param(p + "ln_2.bias"),
			cAttn: m.linear(p+"attn.c_attn", true), cProj: m.linear(p+"attn.c_proj", true),
			fc: m.linear(p+"mlp.c_fc", true), mlpProj: m.linear(p+"mlp.c_proj", true)}
		if c.ScaleAttnByInverseLayerIdx {
			l.attnScale = 1 / math.Sqrt(float64(c.HeadDim)) / float64(i+1)
		}
		d.layers = append(d.layers, l)
	}
	return d, nil
}

func (d *gpt2Decoder) positions(*pass, []int64) {}

// embed is wte(ids) + wpe(positions), then embedding dropout.
func (d *gpt2Decoder) embed(p *pass, ids ct) ct {
	s := p.s
	x := s.Embedding(torch.Of(d.wte), ids)
	x = s.Add(x, s.View(s.Embedding(torch.Of(d.wpe), p.pos), p.b, p.t, -1))
	return p.dropout(x, "embd_pdrop")
}

func (d *gpt2Decoder) norm(p *pass, x ct) ct {
	c := p.m.Config
	return p.s.LayerNorm(x, torch.Of(d.normW), torch.Of(d.normB), int64(c.HiddenSize), c.LayerNormEps)
}

func (d *gpt2Decoder) close() {}

// layer is GPT2Block: x + attn(ln_1(x)), then + mlp(ln_2(x)); with at,
// the output at those positions.
func (d *gpt2Decoder) layer(p *pass, i int, x, at ct) ct {
	s, c, l := p.s, p.m.Config, &d.layers[i]
	n := int64(c.HiddenSize)
	h := s.LayerNorm(x, torch.Of(l.norm1W), torch.Of(l.norm1B), n, c.LayerNormEps)
	qkv := l.cAttn.forward(s, h, p.train)
	q := p.heads(s.Narrow(qkv, 2, 0, n), int64(c.NumHeads))
	k := p.heads(s.Narrow(qkv, 2, n, n), int64(c.NumHeads))
	v := p.heads(s.Narrow(qkv, 2, 2*n, n), int64(c.NumHeads))
	a := p.attend(i, q, k, v, l.attnScale, p.trainDropout("attn_pdrop", "attention_dropout"))
	x = s.Add(x, p.dropout(l.cProj.forward(s, a, p.train), "resid_pdrop"))
	h = s.LayerNorm(x, torch.Of(l.norm2W), torch.Of(l.norm2B), n, c.LayerNormEps)
	h = p.activate(l.fc.forward(s, h, p.train))
	x = s.Add(x, p.dropout(l.mlpProj.forward(s, h, p.train), "resid_pdrop"))
	if at != nil {
		x = s.IndexSelect(s.Reshape(x, p.b*p.t, -1), 0, at)
	}
	return x
}
