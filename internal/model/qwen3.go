package model

import (
	"strings"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// ArchQwen3 is Qwen3's architecture name in config.json.
const ArchQwen3 = "Qwen3ForCausalLM"

// qwen3 is Llama's layout (attention_bias configurable, an explicit
// head_dim) with an RMSNorm over each head's queries and keys, before rope:
// self_attn.q_norm and self_attn.k_norm, [head_dim] each.
var qwen3 = func() *architecture {
	a := llamaFamily(ArchQwen3, "qwen3", func(c *Config, r *reader) {
		c.SlidingWindow = qwenSlidingWindow(r)
	}, func(c *Config, out map[string]any) {
		out["attention_bias"] = c.AttentionBias
	})
	a.specs = qwen3Specs
	a.build = buildQwen3
	return a
}()

// qwen3Specs is Llama's parameters with q_norm and k_norm after o_proj, as
// Qwen3Attention registers them.
func qwen3Specs(c *Config) []spec {
	var out []spec
	for _, s := range llamaSpecs(c) {
		out = append(out, s)
		if p, ok := strings.CutSuffix(s.name, "self_attn.o_proj.weight"); ok {
			if c.AttentionBias {
				continue // the norms follow o_proj's bias
			}
			out = append(out, qwen3Norms(c, p)...)
		}
		if p, ok := strings.CutSuffix(s.name, "self_attn.o_proj.bias"); ok {
			out = append(out, qwen3Norms(c, p)...)
		}
	}
	return out
}

func qwen3Norms(c *Config, prefix string) []spec {
	d := int64(c.HeadDim)
	return []spec{{name: prefix + "self_attn.q_norm.weight", shape: []int64{d}, init: initOnes, noDecay: true},
		{name: prefix + "self_attn.k_norm.weight", shape: []int64{d}, init: initOnes, noDecay: true}}
}

// qwen3Decoder is Qwen3Model's forward pass: Llama's, with the head norms
// between the projections and rope.
type qwen3Decoder struct {
	*llamaDecoder
	qNorm, kNorm []*ts.Tensor
}

var _ decoder = (*qwen3Decoder)(nil)

func buildQwen3(m *Model) (decoder, error) {
	l, err := buildLlama(m)
	if err != nil {
		return nil, err
	}
	d := &qwen3Decoder{llamaDecoder: l}
	for _, p := range layerNames(m.Config, "model.layers.%d.self_attn.") {
		d.qNorm = append(d.qNorm, m.param(p+"q_norm.weight"))
		d.kNorm = append(d.kNorm, m.param(p+"k_norm.weight"))
	}
	return d, nil
}

// layer is Qwen3DecoderLayer.
func (d *qwen3Decoder) layer(p *pass, i int, x, at ct) ct {
	q, k, v := d.project(p, i, x)
	q = p.rmsNorm(q, torch.Of(d.qNorm[i]))
	k = p.rmsNorm(k, torch.Of(d.kNorm[i]))
	return d.finish(p, i, x, q, k, v, at)
}
