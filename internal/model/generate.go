package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"

	"github.com/kfllm/kfllm/internal/torch"
)

// GenerateOptions control generation. Zero values mean: MaxNewTokens 128,
// greedy (Temperature <= 0), no top-k (0), no top-p (0 or 1), no
// repetition penalty (0 or 1), EOS from generation_config.json (else
// config.json), Seed 0.
type GenerateOptions struct {
	MaxNewTokens      int
	Temperature       float64
	TopP              float64
	RepetitionPenalty float64
	TopK              int
	// EOS ends a sequence (the EOS token is kept in its output). nil means
	// the model's (generation_config.json, else config.json); an empty
	// non-nil slice means none.
	EOS []int
	// Seed seeds the sequence's own RNG: the same prompt, options and
	// seed give the same tokens, whatever else shares the batch.
	Seed int64
	// Adapter, when set, is the LoRA adapter (Model.LoadAdapter) the
	// sequence runs through; nil is the base model.
	Adapter *Adapter
}

// Stop reasons reported by Sequence.Reason.
const (
	StopEOS       = "eos"
	StopLength    = "length"        // MaxNewTokens reached
	StopPositions = "max_positions" // the model's context (Config.ContextLength) is full
)

// ErrSequenceReleased is returned when a released sequence is stepped.
var ErrSequenceReleased = errors.New("sequence released")

// Sequence is one prompt being generated: its KV cache (one buffer per
// layer for K and for V, [kv_heads, capacity, head_dim], its own or a slot
// of a BatchCache), its sampler and the tokens generated so far. A
// Sequence is used by one goroutine at a time.
type Sequence struct {
	m        *Model
	prompt   []int
	tokens   []int
	opts     GenerateOptions
	eos      []int
	sampler  *sampler
	k, v     []ct
	capacity int64
	length   int64 // positions held in the cache
	done     bool
	reason   string
	released bool
	batch    *BatchCache // nil: the cache is the sequence's own
	slot     int64       // in batch; -1 before Prefill and after Release
}

// NewSequence checks a prompt and prepares its state; Prefill runs it.
func (m *Model) NewSequence(prompt []int, opts GenerateOptions) (*Sequence, error) {
	if m.closed {
		return nil, fmt.Errorf("new sequence: %w", errClosed)
	}
	if len(prompt) == 0 {
		return nil, errors.New("new sequence: empty prompt")
	}
	if opts.Adapter != nil && opts.Adapter.m != m {
		return nil, errors.New("new sequence: the adapter belongs to another model")
	}
	for _, t := range prompt {
		if t < 0 || t >= m.Config.VocabSize {
			return nil, fmt.Errorf("new sequence: token %d outside the vocabulary [0,%d)", t, m.Config.VocabSize)
		}
	}
	if len(prompt) >= m.Config.ContextLength() {
		return nil, fmt.Errorf("new sequence: prompt of %d tokens leaves no room in the model's %d positions", len(prompt), m.Config.ContextLength())
	}
	if opts.MaxNewTokens <= 0 {
		opts.MaxNewTokens = 128
	}
	eos := opts.EOS
	if eos == nil {
		eos = m.defaultEOS()
	}
	return &Sequence{m: m, prompt: slices.Clone(prompt), opts: opts, eos: eos,
		sampler: newSampler(opts, m.Config.VocabSize, prompt)}, nil
}

func (m *Model) defaultEOS() []int {
	if g := m.GenerationConfig; g != nil {
		r := reader{raw: g}
		if ids := r.ids("eos_token_id"); r.err == nil && ids != nil {
			return ids
		}
	}
	return m.Config.EOS
}

// Last is the newest generated token (-1 before Prefill).
func (s *Sequence) Last() int {
	if len(s.tokens) == 0 {
		return -1
	}
	return s.tokens[len(s.tokens)-1]
}

// Tokens returns the tokens generated so far (an EOS that ended the
// sequence included).
func (s *Sequence) Tokens() []int { return slices.Clone(s.tokens) }

// Prompt returns the prompt.
func (s *Sequence) Prompt() []int { return slices.Clone(s.prompt) }

// Done reports whether the sequence has stopped.
func (s *Sequence) Done() bool { return s.done }

// Reason says why it stopped: StopEOS, StopLength, StopPositions or what
// Stop was given.
func (s *Sequence) Reason() string { return s.reason }

// Stop ends the sequence; later steps skip it.
func (s *Sequence) Stop(reason string) {
	if !s.done {
		s.done, s.reason = true, reason
	}
}

// Release frees the KV cache and stops the sequence. It is safe to call
// twice; Tokens stay readable.
func (s *Sequence) Release() {
	s.Stop("released")
	for _, c := range append(s.k, s.v...) {
		if c != nil {
			torch.Free(c)
		}
	}
	freed := s.k != nil && s.batch == nil
	if s.batch != nil {
		freed = s.batch.leave(s)
	}
	if freed {
		torch.TrimHeap()
	}
	s.k, s.v, s.released = nil, nil, true
}

// CacheLength is the number of positions in the KV cache.
func (s *Sequence) CacheLength() int { return int(s.length) }

// accept records a sampled token and decides whether to stop.
func (s *Sequence) accept(tok int) {
	s.tokens = append(s.tokens, tok)
	s.sampler.observe(tok)
	switch {
	case slices.Contains(s.eos, tok):
		s.Stop(StopEOS)
	case len(s.tokens) >= s.opts.MaxNewTokens:
		s.Stop(StopLength)
	case s.length >= int64(s.m.Config.ContextLength()):
		s.Stop(StopPositions)
	}
}

// allocCache makes zeroed cache buffers of the given capacity, keeping what
// the old ones held. Zeros (not garbage) past a sequence's length keep
// masked attention finite.
func (s *Sequence) allocCache(sc *scope, capacity int64) {
	if s.batch != nil {
		s.batch.reserve(sc, s, capacity)
		return
	}
	c, m := s.m.Config, s.m
	hkv, d := int64(c.NumKVHeads), int64(c.HeadDim)
	if s.k == nil {
		s.k, s.v = make([]ct, c.NumLayers), make([]ct, c.NumLayers)
	}
	for l := 0; l < c.NumLayers; l++ {
		for _, buf := range []*ct{&s.k[l], &s.v[l]} {
			nb := sc.Zeros(m.choice.Device, m.choice.DType, hkv, capacity, d)
			if *buf != nil && s.length > 0 {
				sc.CopyInto(sc.Narrow(nb, 1, 0, s.length), sc.Narrow(*buf, 1, 0, s.length))
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
	s.capacity = capacity
}

// inference runs f with the OS thread held (libtorch's error slot and
// grad mode are per thread) and autograd off.
func inference(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	torch.NoGrad(func() { err = f() })
	return err
}

// Prefill runs the prompts of fresh sequences as one right-padded batch,
// fills their caches and samples each one's first token.
func (m *Model) Prefill(ctx context.Context, seqs []*Sequence) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	if m.closed {
		return fmt.Errorf("prefill: %w", errClosed)
	}
	if len(seqs) == 0 {
		return nil
	}
	var t int64
	for _, sq := range seqs {
		if sq.m != m || sq.released || sq.length > 0 || len(sq.tokens) > 0 {
			return errors.New("prefill: a sequence is not fresh (already prefilled, released, or of another model)")
		}
		t = max(t, int64(len(sq.prompt)))
	}
	b := int64(len(seqs))
	profEvent(evPrefillStart, len(seqs))
	defer profEvent(evPrefillEnd, 0)
	return inference(func() error {
		var s scope
		defer s.Free()
		ids := make([]int64, b*t)
		pos := make([]int64, b*t)
		lens := make([]int64, b)
		last := make([]int64, b)
		for i, sq := range seqs {
			for j := int64(0); j < t; j++ {
				pos[int64(i)*t+j] = j
				if j < int64(len(sq.prompt)) {
					ids[int64(i)*t+j] = int64(sq.prompt[j])
				}
			}
			lens[i] = int64(len(sq.prompt))
			last[i] = int64(i)*t + lens[i] - 1
			capacity := min(int64(m.Config.ContextLength()), lens[i]+int64(sq.opts.MaxNewTokens))
			sq.allocCache(&s, capacity)
		}
		p, err := m.newPass(&s, b, t, pos)
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		p.seqs, p.lens = seqs, lens
		s.lora = m.rowsFor(&s, seqs)
		mask := make([]int64, b*t)
		for i := range seqs {
			for j := int64(0); j < lens[i]; j++ {
				mask[int64(i)*t+j] = 1
			}
		}
		p.mask = newMaskInfo(b, t, mask).tensor(&s, m.choice.Device)
		x := p.layers(p.embed(s.Int64s(m.choice.Device, ids, b, t)), nil)
		// Only each prompt's last position needs logits.
		x = s.IndexSelect(s.View(x, b*t, -1), 0, s.Int64s(m.choice.Device, last, b))
		logits := s.ReadFloat32s(p.head(x))
		if s.Err() != nil {
			return fmt.Errorf("prefill: %w", s.Err())
		}
		v := m.Config.VocabSize
		for i, sq := range seqs {
			sq.length = lens[i]
			sq.accept(sq.sampler.next(logits[i*v : (i+1)*v]))
		}
		return nil
	})
}

// DecodeStep feeds each unfinished sequence its last token in ONE batched
// forward (caches of different lengths are padded and masked) and samples
// its next token. Sequences may join (after their Prefill) or leave between
// steps; finished ones are skipped. When they all hold slots of one
// BatchCache, attention reads its buffers in place; otherwise their caches
// are stacked.
func (m *Model) DecodeStep(ctx context.Context, seqs []*Sequence) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if m.closed {
		return fmt.Errorf("decode: %w", errClosed)
	}
	var active []*Sequence
	for _, sq := range seqs {
		if sq.released {
			return fmt.Errorf("decode: %w", ErrSequenceReleased)
		}
		if sq.m != m || len(sq.tokens) == 0 {
			return errors.New("decode: a sequence was not prefilled by this model")
		}
		if !sq.done {
			active = append(active, sq)
		}
	}
	if len(active) == 0 {
		return nil
	}
	profEvent(evDecodeStart, len(active))
	defer profEvent(evDecodeEnd, 0)
	batch := sharedBatch(active)
	if batch != nil {
		sortBySlot(active) // the buffers' row order
	}
	b := int64(len(active))
	return inference(func() error {
		var s scope
		defer s.Free()
		ids := make([]int64, b)
		lens := make([]int64, b)
		var tk int64
		for i, sq := range active {
			ids[i], lens[i] = int64(sq.Last()), sq.length
			tk = max(tk, sq.length+1)
		}
		for _, sq := range active {
			if sq.capacity < tk {
				sq.allocCache(&s, max(tk, min(2*sq.capacity, int64(m.Config.ContextLength()))))
			}
		}
		if f := fusedBatch(m, batch, active); f != nil {
			if s.Err() != nil {
				return fmt.Errorf("decode: %w", s.Err())
			}
			return f.step(m, batch, active, ids, lens) // decode_amd64.go
		}
		p, err := m.newPass(&s, b, 1, lens)
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		p.seqs, p.lens, p.decode, p.tk = active, lens, true, tk
		s.lora = m.rowsFor(&s, active)
		p.zero = s.Zeros(m.choice.Device, m.choice.DType, 1, 1, 1)
		if batch != nil {
			p.prepareBatchStep(batch, active)
		} else if b > 1 {
			hkv := int64(m.Config.NumKVHeads)
			bias := make([]float32, b*hkv*tk)
			for i := range active {
				for h := int64(0); h < hkv; h++ {
					row := bias[(int64(i)*hkv+h)*tk:][:tk]
					for j := lens[i] + 1; j < tk; j++ {
						row[j] = float32(math.Inf(-1))
					}
				}
			}
			p.decodeBias = s.Floats(m.choice.Device, m.choice.DType, bias, b*hkv, 1, tk)
		}
		logits := s.ReadFloat32s(p.head(p.layers(p.embed(s.Int64s(m.choice.Device, ids, b, 1)), nil)))
		if s.Err() != nil {
			return fmt.Errorf("decode: %w", s.Err())
		}
		v := m.Config.VocabSize
		for i, sq := range active {
			sq.length++
			sq.accept(sq.sampler.next(logits[i*v : (i+1)*v]))
		}
		return nil
	})
}

// fusedBatch is the fused decoder for a step over active when they share
// batch, else nil.
func fusedBatch(m *Model, batch *BatchCache, active []*Sequence) *fusedModel {
	if batch == nil {
		return nil
	}
	return m.fusedFor(active)
}

// Generate runs prompts to completion with Prefill and DecodeStep and
// returns each one's generated tokens. onToken (may be nil) sees every
// token as it is made; returning false stops that prompt. Stop strings are
// the caller's: decode the tokens in onToken and return false on a match.
// When ctx ends, Generate returns what was generated and ctx's error.
func (m *Model) Generate(ctx context.Context, prompts [][]int, opts GenerateOptions, onToken func(i, tok int) bool) ([][]int, error) {
	batch := m.NewBatchCache()
	seqs := make([]*Sequence, len(prompts))
	defer func() {
		for _, sq := range seqs {
			if sq != nil {
				sq.Release()
			}
		}
	}()
	for i, p := range prompts {
		sq, err := batch.NewSequence(p, opts)
		if err != nil {
			return nil, fmt.Errorf("generate: prompt %d: %w", i, err)
		}
		seqs[i] = sq
	}
	outputs := func() [][]int {
		out := make([][]int, len(seqs))
		for i, sq := range seqs {
			out[i] = sq.Tokens()
		}
		return out
	}
	emit := func() {
		for i, sq := range seqs {
			if onToken != nil && len(sq.tokens) > 0 && !onToken(i, sq.Last()) {
				sq.Stop("callback")
			}
		}
	}
	if err := m.Prefill(ctx, seqs); err != nil {
		return outputs(), fmt.Errorf("generate: %w", err)
	}
	emit()
	for {
		var active []*Sequence
		for _, sq := range seqs {
			if !sq.done {
				active = append(active, sq)
			}
		}
		if len(active) == 0 {
			return outputs(), nil
		}
		if err := m.DecodeStep(ctx, active); err != nil {
			return outputs(), fmt.Errorf("generate: %w", err)
		}
		for i, sq := range seqs {
			if onToken != nil && slices.Contains(active, sq) && !onToken(i, sq.Last()) {
				sq.Stop("callback")
			}
		}
	}
}
