package model

// This file is owned by the training package (internal/train): the hooks
// it needs from the model, added beside the model's own API.

import (
	"fmt"
	"runtime"

	"github.com/sugarme/gotch/ts"
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
	defer s.free()
	B, T := int64(b), int64(t)
	mi := newMaskInfo(B, T, mask)
	p, err := m.newPass(&s, B, T, mi.pos)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	p.mask = mi.tensor(&s, m.choice.Device)
	idx := s.int64s(m.choice.Device, at, int64(len(at)))
	x := p.embed(s.int64s(m.choice.Device, ids, B, T))
	if m.wpe != nil || len(m.layers) == 0 {
		x = s.indexSelect(s.reshape(p.layers(x), B*T, -1), 0, idx)
	} else {
		// Every layer but the last on all positions; the last one needs
		// keys and values everywhere but queries, attention output and
		// MLP only at the asked positions.
		for i := 0; i < len(m.layers)-1; i++ {
			mark := s.mark()
			y := p.llamaLayer(i, x)
			s.release(mark, y)
			s.drop(x)
			x = y
		}
		x = p.llamaLayerAt(len(m.layers)-1, x, at, idx, mi)
	}
	logits := p.head(x)
	if s.err != nil {
		return nil, fmt.Errorf("forward: %w", s.err)
	}
	return wrap(s.detach(logits)), nil
}

// llamaLayerAt is llamaLayer whose output is wanted only at the flattened
// positions at (idx: the same as an int64 tensor): keys and values from
// every position, the rest from those positions alone. It returns [N, H].
func (p *pass) llamaLayerAt(i int, x ct, at []int64, idx ct, mi *maskInfo) ct {
	s, c, l := p.s, p.m.Config, p.m.layers[i]
	dev := p.m.choice.Device
	n := int64(len(at))
	hq, hkv, d := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	h := p.rmsNorm(x, handle(l.norm1W))
	k := p.heads(l.k.forward(s, h, p.train), hkv)
	v := p.heads(l.v.forward(s, h, p.train), hkv)
	k = p.m.rope.apply(s, k, p.cos, p.sin)

	xs := s.indexSelect(s.reshape(x, p.b*p.t, -1), 0, idx)
	hs := s.indexSelect(s.reshape(h, p.b*p.t, -1), 0, idx)
	q := s.view(l.q.forward(s, hs, p.train), n, hq, 1, d)
	cos := s.view(s.indexSelect(s.reshape(p.cos, p.b*p.t, d), 0, idx), n, 1, 1, d)
	sin := s.view(s.indexSelect(s.reshape(p.sin, p.b*p.t, d), 0, idx), n, 1, 1, d)
	q = p.m.rope.apply(s, q, cos, sin)

	rows := make([]int64, n)
	mask := make([]bool, n*p.t)
	for j, a := range at {
		b, q := a/p.t, a%p.t
		rows[j] = b
		src := int64(0)
		if !mi.allOnes {
			src = b
		}
		copy(mask[int64(j)*p.t:], mi.mask[(src*p.t+q)*p.t:(src*p.t+q+1)*p.t])
	}
	rowIdx := s.int64s(dev, rows, n)
	kk := repeatKV(s, s.indexSelect(k, 0, rowIdx), hq/hkv)
	vv := repeatKV(s, s.indexSelect(v, 0, rowIdx), hq/hkv)
	drop := 0.0
	if f, ok := c.Raw["attention_dropout"].(float64); ok && p.train {
		drop = f
	}
	o := s.sdpa(q, kk, vv, s.bools(dev, mask, n, 1, 1, p.t), drop, false, 0)
	xs = s.add(xs, l.o.forward(s, s.reshape(o, n, hq*d), p.train))
	h2 := p.rmsNorm(xs, handle(l.norm2W))
	g := p.activate(l.gate.forward(s, h2, p.train))
	return s.add(xs, l.down.forward(s, s.mul(g, l.up.forward(s, h2, p.train)), p.train))
}
