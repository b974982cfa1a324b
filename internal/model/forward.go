package model

import (
	"fmt"
	"math"
	"runtime"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

// pass is one forward run: a batch [B,T], its positions, mask and, when
// generating, the sequences whose KV caches it reads and writes.
type pass struct {
	m        *Model
	s        *scope
	b, t     int64
	train    bool
	pos      ct // [B*T] int64 position ids
	cos, sin ct // rotary position tables [B,1,T,D], when the decoder uses them
	mask     ct // bool [B or 1,1,T,Tk], true = attend

	seqs   []*Sequence // prefill writes their caches; decode also reads them
	lens   []int64     // prefill: prompt lengths; decode: cache lengths before the step
	decode bool
	tk     int64 // decode: key length, max(lens)+1
	// decodeBias is the additive mask [B*Hkv,1,Tk] (0 or -inf) when decode
	// lengths differ; zero a [1,1,1] zero for baddbmm's unused input.
	decodeBias, zero ct
	// batch is set when the decoded sequences share a BatchCache.
	batch *batchStep
}

func (m *Model) newPass(s *scope, b, t int64, pos []int64) (*pass, error) {
	for _, p := range pos {
		if p >= int64(m.Config.ContextLength()) {
			return nil, fmt.Errorf("position %d is past the model's context of %d", p, m.Config.ContextLength())
		}
	}
	p := &pass{m: m, s: s, b: b, t: t, train: m.training}
	p.pos = s.Int64s(m.choice.Device, pos, b*t)
	m.dec.positions(p, pos)
	return p, nil
}

// embed looks up ids [B,T].
func (p *pass) embed(ids ct) ct { return p.m.dec.embed(p, ids) }

// layers runs every decoder layer, freeing each one's intermediates. With
// at (int64 indices into the flattened B*T positions) it returns only
// those positions' hidden states, [len(at),H], and the last layer does
// only the work they need.
func (p *pass) layers(x, at ct) ct {
	n := p.m.Config.NumLayers
	for i := range n {
		var want ct
		if i == n-1 {
			want = at
		}
		mark := p.s.Mark()
		y := p.m.dec.layer(p, i, x, want)
		p.s.Release(mark, y)
		p.s.Drop(x)
		x = y
	}
	return x
}

// head is the final norm and lm_head on hidden states [..., H].
func (p *pass) head(x ct) ct {
	return p.m.lmHead.forward(p.s, p.m.dec.norm(p, x), p.train)
}

// trainDropout is the dropout probability under the first of keys that
// config.json sets, when training; 0 otherwise.
func (p *pass) trainDropout(keys ...string) float64 {
	if !p.train {
		return 0
	}
	for _, k := range keys {
		if f, ok := p.m.Config.Raw[k].(float64); ok {
			return f
		}
	}
	return 0
}

func (p *pass) dropout(x ct, key string) ct {
	if !p.train {
		return x
	}
	if f, ok := p.m.Config.Raw[key].(float64); ok && f > 0 {
		return p.s.Dropout(x, f, true)
	}
	return x
}

// attend runs attention for q [B,H,T,D], k and v [B,Hkv,T,D] (with rope
// applied) and returns [B,T,H*D]; scale <= 0 means 1/sqrt(head_dim), and
// drop is the attention dropout of a training pass. Prefill writes k and v
// into the sequences' caches; decode writes the new position and attends
// over the caches.
func (p *pass) attend(layer int, q, k, v ct, scale, drop float64) ct {
	s, c := p.s, p.m.Config
	h, hkv, d := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	rep := h / hkv
	if p.decode && p.batch != nil {
		return p.attendBatch(layer, q, k, v, scale)
	}
	if p.decode {
		for i, sq := range p.seqs {
			s.CopyInto(s.Narrow(sq.k[layer], 1, p.lens[i], 1), s.Select(k, 0, int64(i)))
			s.CopyInto(s.Narrow(sq.v[layer], 1, p.lens[i], 1), s.Select(v, 0, int64(i)))
		}
		// Sequences with caches of their own: stack them (a copy) into
		// [B*Hkv, T, D] batches.
		var kk, vv ct
		if len(p.seqs) == 1 {
			kk = s.Narrow(p.seqs[0].k[layer], 1, 0, p.tk)
			vv = s.Narrow(p.seqs[0].v[layer], 1, 0, p.tk)
		} else {
			ks, vs := make([]ct, len(p.seqs)), make([]ct, len(p.seqs))
			for i, sq := range p.seqs {
				ks[i] = s.Narrow(sq.k[layer], 1, 0, p.tk)
				vs[i] = s.Narrow(sq.v[layer], 1, 0, p.tk)
			}
			kk, vv = s.View(s.Stack(ks, 0), -1, p.tk, d), s.View(s.Stack(vs, 0), -1, p.tk, d)
		}
		return s.View(p.decodeAttention(s.Reshape(q, p.b*hkv, rep, d), kk, vv, scale), p.b, 1, h*d)
	}
	for i, sq := range p.seqs {
		n := p.lens[i]
		s.CopyInto(s.Narrow(sq.k[layer], 1, 0, n), s.Narrow(s.Select(k, 0, int64(i)), 1, 0, n))
		s.CopyInto(s.Narrow(sq.v[layer], 1, 0, n), s.Narrow(s.Select(v, 0, int64(i)), 1, 0, n))
	}
	o := s.SDPA(q, repeatKV(s, k, rep), repeatKV(s, v, rep), p.mask, drop, false, scale)
	return s.Reshape(s.Transpose(o, 1, 2), p.b, p.t, h*d)
}

// decodeAttention is one query position's attention for q [R, rep, D]
// over keys and values [R, Tk, D] (R = batch rows times KV heads; the rep
// query heads that share a KV head ride in the query-length axis, so K and
// V are neither copied nor expanded), with p.decodeBias [R,1,Tk] (0 or
// -inf) when set. As transformers' eager attention: softmax(q@k^T*scale +
// mask) in float32, then @v. It returns [R, rep, D].
func (p *pass) decodeAttention(q, kk, vv ct, scale float64) ct {
	s := p.s
	if scale <= 0 {
		scale = 1 / math.Sqrt(float64(p.m.Config.HeadDim))
	}
	beta := 1.0
	bias := p.decodeBias
	if bias == nil {
		beta, bias = 0, p.zero // no padding: the bias only has to broadcast
	}
	scores := s.Baddbmm(bias, q, s.Transpose(kk, 1, 2), beta, scale)
	probs := s.Softmax(scores, -1, gotch.Float)
	if dt := p.m.choice.DType; dt != gotch.Float {
		probs = s.To(probs, p.m.choice.Device, dt)
	}
	return s.Bmm(probs, vv)
}

// heads reshapes a projection [B,T,n*D] to [B,n,T,D].
func (p *pass) heads(x ct, n int64) ct {
	d := int64(p.m.Config.HeadDim)
	if p.t == 1 {
		return p.s.Reshape(x, p.b, n, 1, d)
	}
	return p.s.Transpose(p.s.View(x, p.b, p.t, n, d), 1, 2)
}

// Forward runs the model on inputIDs [B,T] (any integer dtype) with an
// optional attentionMask [B,T] (1 = token, 0 = padding, left or right) and
// returns logits [B,T,V] in the compute dtype; the caller owns them.
// Positions follow the mask as in transformers' generate(), so a padded row
// gives the logits of the same row unpadded; logits at padding positions
// are finite but meaningless. With LoadOptions.Trainable the result is
// differentiable.
func (m *Model) Forward(inputIDs, attentionMask *ts.Tensor) (out *ts.Tensor, err error) {
	if m.closed {
		return nil, fmt.Errorf("forward: %w", errClosed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s scope
	defer s.Free()
	ids := torch.Of(inputIDs)
	sh := torch.Shape(ids)
	if len(sh) != 2 || sh[0] == 0 || sh[1] == 0 {
		return nil, fmt.Errorf("forward: input_ids has shape %v, want [batch, length]", sh)
	}
	b, t := sh[0], sh[1]
	var mask []int64
	if attentionMask != nil {
		if ms := torch.Shape(torch.Of(attentionMask)); len(ms) != 2 || ms[0] != b || ms[1] != t {
			return nil, fmt.Errorf("forward: attention_mask has shape %v, input_ids %v", ms, sh)
		}
		mask = s.ReadInt64s(torch.Of(attentionMask))
	}
	mi := newMaskInfo(b, t, mask)
	p, err := m.newPass(&s, b, t, mi.pos)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	p.mask = mi.tensor(&s, m.choice.Device)
	logits := p.head(p.layers(p.embed(s.To(ids, m.choice.Device, gotch.Int64)), nil))
	if s.Err() != nil {
		return nil, fmt.Errorf("forward: %w", s.Err())
	}
	return torch.Wrap(s.Detach(logits)), nil
}

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
	x := p.layers(p.embed(s.Int64s(m.choice.Device, ids, B, T)), idx)
	logits := p.head(x)
	if s.Err() != nil {
		return nil, fmt.Errorf("forward: %w", s.Err())
	}
	return torch.Wrap(s.Detach(logits)), nil
}
