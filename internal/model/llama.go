package model

import (
	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

// llamaLayer is LlamaDecoderLayer (also Mistral's and Qwen2's):
// x + attn(rms(x)), then + mlp(rms(x)).
func (p *pass) llamaLayer(i int, x ct) ct {
	s, c, l := p.s, p.m.Config, p.m.layers[i]
	h := p.rmsNorm(x, torch.Of(l.norm1W))
	q := p.heads(l.q.forward(s, h, p.train), int64(c.NumHeads))
	k := p.heads(l.k.forward(s, h, p.train), int64(c.NumKVHeads))
	v := p.heads(l.v.forward(s, h, p.train), int64(c.NumKVHeads))
	q = p.m.rope.apply(s, q, p.cos, p.sin)
	k = p.m.rope.apply(s, k, p.cos, p.sin)
	a := p.attend(i, q, k, v, 0)
	x = s.Add(x, l.o.forward(s, a, p.train))
	h = p.rmsNorm(x, torch.Of(l.norm2W))
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

// rmsNorm is LlamaRMSNorm: computed in float32 whatever the model's dtype,
// cast back, then scaled by w.
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
