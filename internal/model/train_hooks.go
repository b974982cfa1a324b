package model

// This file is owned by the training package (internal/train): the hooks
// it needs from the model, added beside the model's own API.

import (
	"fmt"
	"runtime"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// ForwardAt runs the model on a batch given as Go slices, ids and mask
// [b*t] row-major (mask nil or 1 = token, 0 = padding), and returns the
// logits only at the flattened positions at (indices into b*t), [len(at), V]
// in the compute dtype; the caller owns them. The final norm and lm_head
// run on those positions alone, which is what training needs when only a
// few positions carry loss. The result is differentiable when the model's
// parameters (or its LoRA adapters) require grad and grad mode is on.
func (m *Model) ForwardAt(ids, mask []int64, b, t int, at []int64) (out *ts.Tensor, err error) {
	if m.closed {
		return nil, fmt.Errorf("forward: %w", errClosed)
	}
	if b <= 0 || t <= 0 || len(ids) != b*t || (mask != nil && len(mask) != b*t) {
		return nil, fmt.Errorf("forward: %d ids and %d mask values for a [%d,%d] batch", len(ids), len(mask), b, t)
	}
	if len(at) == 0 {
		return nil, fmt.Errorf("forward: no positions asked for")
	}
	for _, i := range at {
		if i < 0 || i >= int64(b*t) {
			return nil, fmt.Errorf("forward: position %d is outside the [%d,%d] batch", i, b, t)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s scope
	defer s.Free()
	B, T := int64(b), int64(t)
	mi := newMaskInfo(B, T, mask)
	p, err := m.newPass(&s, B, T, mi.pos)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	p.mask = mi.tensor(&s, m.choice.Device)
	idx := s.Int64s(m.choice.Device, at, int64(len(at)))
	x := p.embed(s.Int64s(m.choice.Device, ids, B, T))
	if m.wpe != nil || len(m.layers) == 0 {
		x = s.IndexSelect(s.Reshape(p.layers(x), B*T, -1), 0, idx)
	} else {
		// Every layer but the last on all positions; the last one runs
		// its o_proj and MLP only at the asked positions.
		for i := 0; i < len(m.layers)-1; i++ {
			mark := s.Mark()
			y := p.llamaLayer(i, x)
			s.Release(mark, y)
			s.Drop(x)
			x = y
		}
		x = p.llamaLayerAt(len(m.layers)-1, x, idx)
	}
	logits := p.head(x)
	if s.Err() != nil {
		return nil, fmt.Errorf("forward: %w", s.Err())
	}
	return torch.Wrap(s.Detach(logits)), nil
}

// llamaLayerAt is llamaLayer whose output is wanted only at the flattened
// positions idx: attention runs on every position (its keys and values are
// needed everywhere, and its queries are cheap), then o_proj, the residual
// and the MLP run on the asked positions alone. It returns [N, H].
func (p *pass) llamaLayerAt(i int, x ct, idx ct) ct {
	s, c, l := p.s, p.m.Config, p.m.layers[i]
	h := p.rmsNorm(x, torch.Of(l.norm1W))
	q := p.heads(l.q.forward(s, h, p.train), int64(c.NumHeads))
	k := p.heads(l.k.forward(s, h, p.train), int64(c.NumKVHeads))
	v := p.heads(l.v.forward(s, h, p.train), int64(c.NumKVHeads))
	q = p.m.rope.apply(s, q, p.cos, p.sin)
	k = p.m.rope.apply(s, k, p.cos, p.sin)
	a := s.IndexSelect(s.Reshape(p.attend(i, q, k, v, 0), p.b*p.t, -1), 0, idx)
	xs := s.Add(s.IndexSelect(s.Reshape(x, p.b*p.t, -1), 0, idx), l.o.forward(s, a, p.train))
	h = p.rmsNorm(xs, torch.Of(l.norm2W))
	g := p.activate(l.gate.forward(s, h, p.train))
	return s.Add(xs, l.down.forward(s, s.Mul(g, l.up.forward(s, h, p.train)), p.train))
}
