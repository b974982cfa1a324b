package model

import "github.com/sugarme/gotch"

// llamaLayer is LlamaDecoderLayer (also Mistral's and Qwen2's):
// x + attn(rms(x)), then + mlp(rms(x)).
func (p *pass) llamaLayer(i int, x ct) ct {
	s, c, l := p.s, p.m.Config, p.m.layers[i]
	h := p.rmsNorm(x, handle(l.norm1W))
	q := p.heads(l.q.forward(s, h, p.train), int64(c.NumHeads))
	k := p.heads(l.k.forward(s, h, p.train), int64(c.NumKVHeads))
	v := p.heads(l.v.forward(s, h, p.train), int64(c.NumKVHeads))
	q = p.m.rope.apply(s, q, p.cos, p.sin)
	k = p.m.rope.apply(s, k, p.cos, p.sin)
	a := p.attend(i, q, k, v, 0)
	x = s.add(x, l.o.forward(s, a, p.train))
	h = p.rmsNorm(x, handle(l.norm2W))
	g := p.activate(l.gate.forward(s, h, p.train))
	return s.add(x, l.down.forward(s, s.mul(g, l.up.forward(s, h, p.train)), p.train))
}

// activate applies the config's hidden_act.
func (p *pass) activate(x ct) ct {
	if p.m.act == "silu" {
		return p.s.silu(x)
	}
	return p.s.gelu(x, p.m.act)
}

// rmsNorm is LlamaRMSNorm: computed in float32 whatever the model's dtype,
// cast back, then scaled by w.
func (p *pass) rmsNorm(x, w ct) ct {
	s, dev, dt := p.s, p.m.choice.Device, p.m.choice.DType
	h := x
	if dt != gotch.Float {
		h = s.to(x, dev, gotch.Float)
	}
	variance := s.meanLast(s.powScalar(h, 2))
	h = s.mul(h, s.rsqrt(s.addScalar(variance, p.m.Config.RMSNormEps)))
	if dt != gotch.Float {
		h = s.to(h, dev, dt)
	}
	return s.mul(w, h)
}
