package model

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/torch"
)

func greedyAlone(t *testing.T, m *Model, prompt []int, opts GenerateOptions) []int {
	t.Helper()
	out, err := m.Generate(context.Background(), [][]int{prompt}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// Sequences join and leave a running batch; each one's tokens are those it
// gets alone (the serving scheduler relies on this).
func TestDecodeStepJoinLeave(t *testing.T) {
	for _, name := range []string{"llama_gqa", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			m := loadCPU(t, filepath.Join("testdata", name))
			ctx := context.Background()
			opts := GenerateOptions{MaxNewTokens: 10, EOS: []int{}}
			pa, pb, pc := []int{5, 9, 13, 40, 41, 7}, []int{100, 3}, []int{77, 78, 79, 80}
			wantA, wantB, wantC := greedyAlone(t, m, pa, opts), greedyAlone(t, m, pb, opts), greedyAlone(t, m, pc, opts)
			mk := func(p []int) *Sequence {
				sq, err := m.NewSequence(p, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sq.Release)
				return sq
			}
			a, b, c := mk(pa), mk(pb), mk(pc)
			if err := m.Prefill(ctx, []*Sequence{a, c}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if err := m.DecodeStep(ctx, []*Sequence{a, c}); err != nil {
					t.Fatal(err)
				}
			}
			c.Stop("client went away") // c leaves after 4 tokens
			if err := m.Prefill(ctx, []*Sequence{b}); err != nil {
				t.Fatal(err)
			}
			for !a.Done() || !b.Done() {
				if err := m.DecodeStep(ctx, []*Sequence{a, b, c}); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(a.Tokens(), wantA) || !slices.Equal(b.Tokens(), wantB) {
				t.Errorf("in a changing batch: a %v (alone %v), b %v (alone %v)", a.Tokens(), wantA, b.Tokens(), wantB)
			}
			if !slices.Equal(c.Tokens(), wantC[:4]) || c.Reason() != "client went away" {
				t.Errorf("stopped c: %v (%s), want %v", c.Tokens(), c.Reason(), wantC[:4])
			}
			if a.Reason() != StopLength || a.CacheLength() != len(pa)+9 {
				t.Errorf("a: reason %q cache %d", a.Reason(), a.CacheLength())
			}
		})
	}
}

func TestGenerateStops(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "llama_gqa"))
	ctx := context.Background()
	prompt := []int{11, 12, 13}
	ref := greedyAlone(t, m, prompt, GenerateOptions{MaxNewTokens: 8, EOS: []int{}})
	if len(ref) != 8 {
		t.Fatalf("reference %v", ref)
	}
	// EOS: the 4th token, included in the output.
	got := greedyAlone(t, m, prompt, GenerateOptions{MaxNewTokens: 8, EOS: []int{ref[3]}})
	if i := slices.Index(ref, ref[3]); !slices.Equal(got, ref[:i+1]) {
		t.Errorf("eos %d: got %v from %v", ref[3], got, ref)
	}
	// The callback streams every token and can stop its prompt.
	var streamed []int
	out, err := m.Generate(ctx, [][]int{prompt, prompt}, GenerateOptions{MaxNewTokens: 8, EOS: []int{}}, func(i, tok int) bool {
		if i == 0 {
			streamed = append(streamed, tok)
			return len(streamed) < 3
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(streamed, ref[:3]) || !slices.Equal(out[0], ref[:3]) || !slices.Equal(out[1], ref) {
		t.Errorf("callback: streamed %v, outputs %v, want %v and %v", streamed, out, ref[:3], ref)
	}
	// Cancellation: generation returns what it has and the context's error.
	cctx, cancel := context.WithCancel(ctx)
	out, err = m.Generate(cctx, [][]int{prompt}, GenerateOptions{MaxNewTokens: 8, EOS: []int{}}, func(i, tok int) bool {
		if tok == ref[1] {
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) || !slices.Equal(out[0], ref[:2]) {
		t.Errorf("cancelled: %v %v", out, err)
	}
}

func TestGenerateMaxPositions(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "gpt2")) // n_positions 32
	prompt := make([]int, 30)
	for i := range prompt {
		prompt[i] = 3 + i
	}
	sq, err := m.NewSequence(prompt, GenerateOptions{MaxNewTokens: 10, EOS: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Release()
	ctx := context.Background()
	if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
		t.Fatal(err)
	}
	for !sq.Done() {
		if err := m.DecodeStep(ctx, []*Sequence{sq}); err != nil {
			t.Fatal(err)
		}
	}
	// Positions 30 and 31 are fed after the prompt: three tokens in all.
	if len(sq.Tokens()) != 3 || sq.Reason() != StopPositions {
		t.Errorf("tokens %v, reason %q", sq.Tokens(), sq.Reason())
	}
	if _, err := m.NewSequence(make([]int, 32), GenerateOptions{}); err == nil {
		t.Error("a prompt filling the context was accepted")
	}
	if _, err := m.NewSequence([]int{1, 200}, GenerateOptions{}); err == nil {
		t.Error("a token outside the vocabulary was accepted")
	}
}

func TestSamplingReproducible(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "qwen2"))
	ctx := context.Background()
	opts := GenerateOptions{MaxNewTokens: 12, EOS: []int{}, Temperature: 1.5, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.2, Seed: 42}
	p := []int{10, 20, 30}
	a, err := m.Generate(ctx, [][]int{p}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Generate(ctx, [][]int{{50, 60}, p}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a[0], b[1]) {
		t.Errorf("seed 42: alone %v, in a batch %v", a[0], b[1])
	}
	opts.Seed = 43
	c, _ := m.Generate(ctx, [][]int{p}, opts, nil)
	if slices.Equal(a[0], c[0]) {
		t.Errorf("seeds 42 and 43 sampled the same %v", a[0])
	}
}

func TestSequenceRelease(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "llama_gqa"))
	ctx := context.Background()
	sq, err := m.NewSequence([]int{4, 5}, GenerateOptions{MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
		t.Fatal(err)
	}
	if err := m.Prefill(ctx, []*Sequence{sq}); err == nil {
		t.Error("a second prefill was accepted")
	}
	sq.Release()
	sq.Release()
	if err := m.DecodeStep(ctx, []*Sequence{sq}); !errors.Is(err, ErrSequenceReleased) {
		t.Errorf("decode after release: %v", err)
	}
	if len(sq.Tokens()) != 1 {
		t.Errorf("tokens after release: %v", sq.Tokens())
	}
}

// Generation never goes through gotch's ts wrappers, each of which leaks a
// malloc(0) slot and allocates a 100 KB Go ballast per op: gotch's own
// tensor counter does not move while tokens are made.
func TestGenerateMakesNoGotchTensors(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "llama_bias"))
	ctx := context.Background()
	sq, err := m.NewSequence([]int{3, 4, 5}, GenerateOptions{MaxNewTokens: 20, EOS: []int{}, Temperature: 1, TopP: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Release()
	before := atomic.LoadInt64(&ts.TensorCount)
	ops := torch.OpCount()
	if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
		t.Fatal(err)
	}
	for !sq.Done() {
		if err := m.DecodeStep(ctx, []*Sequence{sq}); err != nil {
			t.Fatal(err)
		}
	}
	if after := atomic.LoadInt64(&ts.TensorCount); after != before {
		t.Errorf("generating 20 tokens made %d gotch tensors", after-before)
	}
	if torch.OpCount() == ops {
		t.Error("no libtorch ops counted")
	}
}
