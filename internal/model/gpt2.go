package model

import "github.com/kfllm/kfllm/internal/torch"

// gpt2Layer is GPT2Block: x + attn(ln_1(x)), then + mlp(ln_2(x)), with
// transformers' Conv1D projections.
func (p *pass) gpt2Layer(i int, x ct) ct {
	s, c, l := p.s, p.m.Config, p.m.layers[i]
	n := int64(c.HiddenSize)
	h := s.LayerNorm(x, torch.Of(l.norm1W), torch.Of(l.norm1B), n, c.LayerNormEps)
	qkv := l.cAttn.forward(s, h, p.train)
	q := p.heads(s.Narrow(qkv, 2, 0, n), int64(c.NumHeads))
	k := p.heads(s.Narrow(qkv, 2, n, n), int64(c.NumHeads))
	v := p.heads(s.Narrow(qkv, 2, 2*n, n), int64(c.NumHeads))
	a := p.attend(i, q, k, v, l.attnScale)
	x = s.Add(x, p.dropout(l.cProj.forward(s, a, p.train), "resid_pdrop"))
	h = s.LayerNorm(x, torch.Of(l.norm2W), torch.Of(l.norm2B), n, c.LayerNormEps)
	h = p.activate(l.fc.forward(s, h, p.train))
	return s.Add(x, p.dropout(l.mlpProj.forward(s, h, p.train), "resid_pdrop"))
}
