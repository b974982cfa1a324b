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
	x := p.layers(p.embed(s.int64s(m.choice.Device, ids, B, T)))
	x = s.reshape(x, B*T, -1)
	x = s.indexSelect(x, 0, s.int64s(m.choice.Device, at, int64(len(at))))
	logits := p.head(x)
	if s.err != nil {
		return nil, fmt.Errorf("forward: %w", s.err)
	}
	return wrap(s.detach(logits)), nil
}
