// Package schedulertest provides a scripted [scheduler.Engine] and a byte
// tokenizer, for testing the scheduler and the HTTP layer above it without
// libtorch. The engine follows the Engine contract exactly (one token per
// sequence per Prefill/DecodeStep, sequences joining and leaving between
// steps) and records the batch size of every step.
package schedulertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kfllm/kfllm/internal/scheduler"
)

// EOS is the ByteTokenizer's end-of-sequence id.
const EOS = 256

// ByteTokenizer maps each byte to its own id and EOS to 256.
type ByteTokenizer struct{}

var _ scheduler.Tokenizer = ByteTokenizer{}

// Encode returns the bytes of text.
func (ByteTokenizer) Encode(text string, _ bool) ([]int, error) {
	ids := make([]int, len(text))
	for i := range len(text) {
		ids[i] = int(text[i])
	}
	return ids, nil
}

// Decode returns the bytes, skipping EOS when skipSpecial.
func (ByteTokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		switch {
		case id == EOS && skipSpecial:
		case id >= 0 && id < 256:
			b = append(b, byte(id))
		default:
			return "", fmt.Errorf("id %d out of range", id)
		}
	}
	return string(b), nil
}

// Engine answers each prompt with Answer(prompt) byte by byte, then EOS
// (or forever, if Endless).
type Engine struct {
	// Answer maps a prompt to the text generated for it.
	Answer func(prompt string) string
	// StepDelay is slept in each Prefill and DecodeStep, like a forward pass.
	StepDelay time.Duration
	// IDs, when set, answers with these token ids instead of Answer's
	// bytes, for a real tokenizer's vocabulary; the prompt is then not
	// decoded, and Answer and OnSequence get "".
	IDs func(prompt []int) []int
	// Endless makes sequences never emit EOS (repeating the answer).
	Endless bool
	// PanicOn makes DecodeStep panic when a prompt contains it.
	PanicOn string
	// OnSequence, if set, is called by NewSequence with the prompt and the
	// sampling parameters the scheduler passed down.
	OnSequence func(prompt string, s scheduler.Sampling)

	mu       sync.Mutex
	batches  []int
	live     int
	released int
}

var _ scheduler.Engine = (*Engine)(nil)

type seq struct {
	prompt   string
	answer   []int
	n        int
	last     int
	released bool
	eng      *Engine
}

func (s *seq) Last() int { return s.last }

// Done is true once EOS was produced (the engine then skips the sequence).
func (s *seq) Done() bool { return s.last == EOS }

func (s *seq) Release() {
	s.eng.mu.Lock()
	defer s.eng.mu.Unlock()
	if s.released {
		panic("sequence released twice")
	}
	s.released = true
	s.eng.live--
	s.eng.released++
}

func (s *seq) next() {
	switch {
	case s.n < len(s.answer):
		s.last = s.answer[s.n]
	case s.eng.Endless && len(s.answer) > 0:
		s.last = s.answer[s.n%len(s.answer)]
	default:
		s.last = EOS
	}
	s.n++
}

// NewSequence starts a sequence.
func (e *Engine) NewSequence(prompt []int, sp scheduler.Sampling) (scheduler.Sequence, error) {
	var p string
	if e.IDs == nil {
		var err error
		if p, err = (ByteTokenizer{}).Decode(prompt, true); err != nil {
			return nil, err
		}
	}
	if e.OnSequence != nil {
		e.OnSequence(p, sp)
	}
	var ans []int
	switch {
	case e.IDs != nil:
		ans = e.IDs(prompt)
	case e.Answer != nil:
		ans = byteIDs(e.Answer(p))
	default:
		ans = byteIDs(p)
	}
	e.mu.Lock()
	e.live++
	e.mu.Unlock()
	return &seq{prompt: p, answer: ans, eng: e}, nil
}

func byteIDs(s string) []int {
	ids := make([]int, len(s))
	for i := range len(s) {
		ids[i] = int(s[i])
	}
	return ids
}

func (e *Engine) step(ctx context.Context, seqs []scheduler.Sequence, record bool) error {
	if e.StepDelay > 0 {
		time.Sleep(e.StepDelay)
	}
	e.mu.Lock()
	if record {
		e.batches = append(e.batches, len(seqs))
	}
	e.mu.Unlock()
	for _, s := range seqs {
		sq := s.(*seq)
		if sq.released {
			return errors.New("step on a released sequence")
		}
		if sq.Done() {
			continue
		}
		if record && e.PanicOn != "" && contains(sq.prompt, e.PanicOn) {
			panic("scripted engine panic")
		}
		sq.next()
	}
	return ctx.Err()
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Prefill samples each sequence's first token.
func (e *Engine) Prefill(ctx context.Context, seqs []scheduler.Sequence) error {
	return e.step(ctx, seqs, false)
}

// DecodeStep samples one more token for each sequence.
func (e *Engine) DecodeStep(ctx context.Context, seqs []scheduler.Sequence) error {
	return e.step(ctx, seqs, true)
}

// Batches returns the batch size of every DecodeStep so far.
func (e *Engine) Batches() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.batches...)
}

// Live is the number of sequences not yet released.
func (e *Engine) Live() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live
}
