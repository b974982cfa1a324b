package model

import (
	"cmp"
	"math"
	"slices"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

// BatchCache is the KV cache of sequences decoded together (a server's
// running batch): per layer one K and one V buffer [slots, kv_heads,
// capacity, head_dim], a slot per sequence. A decode step over its
// sequences writes every sequence's new position with one index_copy_ per
// buffer and attends over a narrow of the buffers, where sequences with
// caches of their own have theirs stacked (copied whole) on every step.
//
// Sequences made with NewSequence take a slot at Prefill and give it back
// on Release; a later sequence reuses it. The buffers grow (slots and
// capacity, geometrically, keeping what they hold) when a sequence needs
// more room, and are freed when the last sequence is released. A
// BatchCache, like its sequences, is used by one goroutine at a time.
type BatchCache struct {
	m        *Model
	k, v     []ct // per layer
	slots    int64
	capacity int64
	members  []*Sequence // by slot; nil: free
}

// NewBatchCache makes an empty batch cache; it holds no memory until its
// first sequence is prefilled.
func (m *Model) NewBatchCache() *BatchCache { return &BatchCache{m: m} }

// NewSequence is Model.NewSequence for a sequence whose KV cache lives in
// b.
func (b *BatchCache) NewSequence(prompt []int, opts GenerateOptions) (*Sequence, error) {
	sq, err := b.m.NewSequence(prompt, opts)
	if err != nil {
		return nil, err
	}
	sq.batch, sq.slot = b, -1
	return sq, nil
}

// Slots is the number of slots the buffers have room for (for tests and
// metrics); 0 when no sequence holds one.
func (b *BatchCache) Slots() int { return int(b.slots) }

// reserve gives sq a slot if it has none and room for capacity positions,
// growing the buffers if needed, and points sq's per-layer caches at its
// slot.
func (b *BatchCache) reserve(sc *scope, sq *Sequence, capacity int64) {
	slot := sq.slot
	if slot < 0 {
		slot = int64(slices.Index(b.members, nil))
		if slot < 0 {
			slot = int64(len(b.members))
		}
	}
	slots, capac := b.slots, b.capacity
	if slot >= slots {
		slots = max(slot+1, 2*slots)
	}
	if capacity > capac {
		capac = max(capacity, min(2*capac, int64(b.m.Config.ContextLength())))
	}
	if slots != b.slots || capac != b.capacity {
		b.grow(sc, slots, capac)
	}
	if !sc.OK() {
		return
	}
	for int64(len(b.members)) <= slot {
		b.members = append(b.members, nil)
	}
	b.members[slot], sq.slot = sq, slot
	b.bind(sc, sq)
}

// grow reallocates the buffers as [slots, kv_heads, capacity, head_dim],
// zeroed, keeping what the old ones held, and re-points every member.
// Zeros (not garbage) past a sequence's length keep masked attention
// finite.
func (b *BatchCache) grow(sc *scope, slots, capacity int64) {
	c, m := b.m.Config, b.m
	hkv, d := int64(c.NumKVHeads), int64(c.HeadDim)
	if b.k == nil {
		b.k, b.v = make([]ct, c.NumLayers), make([]ct, c.NumLayers)
	}
	for l := 0; l < c.NumLayers; l++ {
		for _, buf := range []*ct{&b.k[l], &b.v[l]} {
			nb := sc.Zeros(m.choice.Device, m.choice.DType, slots, hkv, capacity, d)
			if *buf != nil {
				sc.CopyInto(sc.Narrow(sc.Narrow(nb, 0, 0, b.slots), 2, 0, b.capacity), *buf)
			}
			if !sc.OK() {
				return
			}
			if *buf != nil {
				torch.Free(*buf)
			}
			*buf = sc.Detach(nb)
		}
	}
	b.slots, b.capacity = slots, capacity
	for _, sq := range b.members {
		if sq != nil {
			b.bind(sc, sq)
		}
	}
}

// bind makes sq's per-layer caches views of its slot, [kv_heads,
// capacity, head_dim], as a sequence's own caches are: prefill and the
// stacking decode path use them unchanged.
func (b *BatchCache) bind(sc *scope, sq *Sequence) {
	n := b.m.Config.NumLayers
	if sq.k == nil {
		sq.k, sq.v = make([]ct, n), make([]ct, n)
	}
	for l := 0; l < n; l++ {
		for _, pair := range [][2]*ct{{&sq.k[l], &b.k[l]}, {&sq.v[l], &b.v[l]}} {
			view := sc.Select(*pair[1], 0, sq.slot)
			if !sc.OK() {
				return
			}
			if *pair[0] != nil {
				torch.Free(*pair[0])
			}
			*pair[0] = sc.Detach(view)
		}
	}
	sq.capacity = b.capacity
}

// leave frees sq's slot (sq has dropped its views); the buffers go when
// the last member leaves. It reports whether they went.
func (b *BatchCache) leave(sq *Sequence) bool {
	if sq.slot < 0 || sq.slot >= int64(len(b.members)) || b.members[sq.slot] != sq {
		return false
	}
	b.members[sq.slot], sq.slot = nil, -1
	for _, o := range b.members {
		if o != nil {
			return false
		}
	}
	for _, c := range append(b.k, b.v...) {
		if c != nil {
			torch.Free(c)
		}
	}
	b.k, b.v, b.members, b.slots, b.capacity = nil, nil, nil, 0, 0
	return true
}

// sharedBatch returns the batch cache every sequence of seqs holds a slot
// in, or nil.
func sharedBatch(seqs []*Sequence) *BatchCache {
	b := seqs[0].batch
	for _, sq := range seqs {
		if b == nil || sq.batch != b || sq.slot < 0 {
			return nil
		}
	}
	return b
}

// batchStep is what attention needs for a decode step over a batch
// cache's slots: where each new K/V row goes, and which rows of the
// buffers to read (libtorch's path reads slots 0..used-1 and drops the
// rows of slots not in the step, "gaps"; the kernel reads just the step's).
type batchStep struct {
	b     *BatchCache
	used  int64 // slots 0..used-1 take part in the attention products
	dense bool  // the step's sequences are exactly slots 0..used-1
	write ct    // int64 [B*kv_heads]: rows of a buffer viewed [slots*kv_heads*capacity, head_dim]
	rows  ct    // int64 [B*kv_heads]: the step's rows among used*kv_heads (gaps only)
	// kernel: attention runs gemm_amd64.c's kf_attn_* on the buffers, over
	// each row's own positions (no mask, no gaps); rowmap and valid are
	// their per-row buffer rows and lengths.
	kernel        bool
	rowmap, valid []int64
}

// prepareBatchStep fills p for the batch cache path, active in slot
// order: where the new K/V rows go, and then either the kernel's per-row
// buffer rows and lengths, or libtorch's gather indices (gaps) and
// additive mask (lengths differ, or gaps) over used*kv_heads rows.
func (p *pass) prepareBatchStep(b *BatchCache, active []*Sequence) {
	s, m := p.s, p.m
	hkv := int64(m.Config.NumKVHeads)
	used := active[len(active)-1].slot + 1
	bs := &batchStep{b: b, used: used, dense: used == int64(len(active))}
	write := make([]int64, 0, len(active)*int(hkv))
	rows := make([]int64, 0, len(active)*int(hkv))
	same := true
	for i, sq := range active {
		same = same && p.lens[i] == p.lens[0]
		for h := int64(0); h < hkv; h++ {
			write = append(write, (sq.slot*hkv+h)*b.capacity+p.lens[i])
			rows = append(rows, sq.slot*hkv+h)
		}
	}
	dev := m.choice.Device
	bs.write = s.Int64s(dev, write, int64(len(write)))
	if haveKernel && m.Config.HeadDim%16 == 0 && dev == gotch.CPU && m.choice.DType == gotch.Float {
		bs.kernel, bs.rowmap, bs.valid = true, rows, make([]int64, len(rows))
		for i := range active {
			for h := int64(0); h < hkv; h++ {
				bs.valid[int64(i)*hkv+h] = p.lens[i] + 1
			}
		}
		p.batch = bs
		return
	}
	if !bs.dense {
		bs.rows = s.Int64s(dev, rows, int64(len(rows)))
	}
	if !same || !bs.dense {
		// Rows of gap slots attend to everything (finite, and dropped).
		bias := make([]float32, used*hkv*p.tk)
		for i, sq := range active {
			for h := int64(0); h < hkv; h++ {
				row := bias[(sq.slot*hkv+h)*p.tk:][:p.tk]
				for j := p.lens[i] + 1; j < p.tk; j++ {
					row[j] = float32(math.Inf(-1))
				}
			}
		}
		p.decodeBias = s.Floats(dev, m.choice.DType, bias, used*hkv, 1, p.tk)
	}
	p.batch = bs
}

// sortBySlot orders sequences holding slots by slot.
func sortBySlot(seqs []*Sequence) {
	slices.SortFunc(seqs, func(a, b *Sequence) int { return cmp.Compare(a.slot, b.slot) })
}

// attendBatch is decode attention over the batch cache: write the new K
// and V rows in place, then attend over the used slots' first tk
// positions (a view, no copy).
func (p *pass) attendBatch(layer int, q, k, v ct, scale float64) ct {
	s, c, bs := p.s, p.m.Config, p.batch
	h, hkv, d := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	rep := h / hkv
	kb, vb := bs.b.k[layer], bs.b.v[layer]
	s.IndexCopyInPlace(s.View(kb, -1, d), 0, bs.write, s.Reshape(k, -1, d))
	s.IndexCopyInPlace(s.View(vb, -1, d), 0, bs.write, s.Reshape(v, -1, d))
	window := func(buf ct) ct {
		return s.View(s.Narrow(s.Narrow(buf, 0, 0, bs.used), 2, 0, p.tk), bs.used*hkv, p.tk, d)
	}
	qq := s.Reshape(q, p.b*hkv, rep, d)
	if bs.kernel {
		return s.View(p.attendKernel(qq, kb, vb, scale), p.b, 1, h*d)
	}
	kk, vv := window(kb), window(vb)
	if !bs.dense {
		qq = s.IndexCopy(s.Zeros(p.m.choice.Device, p.m.choice.DType, bs.used*hkv, rep, d), 0, bs.rows, qq)
	}
	o := p.decodeAttention(qq, kk, vv, scale)
	if !bs.dense {
		o = s.IndexSelect(o, 0, bs.rows)
	}
	return s.View(o, p.b, 1, h*d)
}

// attendKernel is decodeAttention for q [B*kv_heads, rep, D] on the
// buffers with gemm_amd64.c: scores over each row's valid positions, the
// softmax in libtorch (float32, as decodeAttention), the weighted sum of
// values. It returns [B*kv_heads, rep, D].
func (p *pass) attendKernel(q, kb, vb ct, scale float64) ct {
	s, bs := p.s, p.batch
	d := int64(p.m.Config.HeadDim)
	if scale <= 0 {
		scale = 1 / math.Sqrt(float64(d))
	}
	if !s.OK() {
		return nil
	}
	if !torch.IsContiguous(q) {
		q = s.Contiguous(q)
	}
	sh := torch.Shape(q)
	rows, rep := sh[0], sh[1]
	ld := bs.b.capacity * d
	scores := s.Empty(rows, rep, p.tk)
	if !s.OK() {
		return nil
	}
	attnScores(torch.DataPtr(q), torch.DataPtr(kb), torch.DataPtr(scores), rows, rep, d, p.tk, ld, bs.rowmap, bs.valid, scale)
	probs := s.Softmax(scores, -1, gotch.Float)
	out := s.Empty(rows, rep, d)
	if !s.OK() {
		return nil
	}
	attnValues(torch.DataPtr(probs), torch.DataPtr(vb), torch.DataPtr(out), rows, rep, d, p.tk, ld, bs.rowmap, bs.valid)
	return out
}
