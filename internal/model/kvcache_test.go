package model

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// Sequences of different prompt lengths join a BatchCache's running batch
// mid-way, stop, leave a gap, give their slot to a newcomer, and make the
// cache grow while others are decoding; each one's greedy tokens are those
// it gets alone. Head dims of 8 take libtorch's attention; 16 and 32 the
// kernel's (gemm_amd64.c), where the CPU has it.
func TestBatchCacheJoinLeave(t *testing.T) {
	for _, name := range []string{"llama_gqa", "gpt2", "llama3_rope", "random_hd32"} {
		t.Run(name, func(t *testing.T) {
			var m *Model
			if name == "random_hd32" {
				c := &Config{Architecture: ArchLlama, VocabSize: 256, HiddenSize: 64, IntermediateSize: 128, NumLayers: 2,
					NumHeads: 2, NumKVHeads: 1, MaxPositions: 64, RopeTheta: 10000, RMSNormEps: 1e-5, InitializerRange: 0.5, BOS: []int{1}, EOS: []int{2}, Pad: -1}
				var err error
				if m, err = NewRandom(c, 3, LoadOptions{Device: "cpu", DType: "float32"}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
			} else {
				m = loadCPU(t, filepath.Join("testdata", name))
			}
			ctx := context.Background()
			short := GenerateOptions{MaxNewTokens: 6, EOS: []int{}}
			long := GenerateOptions{MaxNewTokens: 14, EOS: []int{}}
			pa, pb, pc, pd := []int{5, 9, 13, 40, 41, 7}, []int{100, 3}, []int{77, 78, 79, 80}, []int{8, 6, 4, 2, 1, 3, 5, 7, 9}
			want := map[string][]int{
				"a": greedyOwn(t, m, pa, short), "b": greedyOwn(t, m, pb, long),
				"c": greedyOwn(t, m, pc, long), "d": greedyOwn(t, m, pd, long),
			}
			bc := m.NewBatchCache()
			mk := func(p []int, o GenerateOptions) *Sequence {
				sq, err := bc.NewSequence(p, o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sq.Release)
				return sq
			}
			step := func(seqs ...*Sequence) {
				t.Helper()
				if err := m.DecodeStep(ctx, seqs); err != nil {
					t.Fatal(err)
				}
			}
			a, c := mk(pa, short), mk(pc, long)
			if err := m.Prefill(ctx, []*Sequence{a, c}); err != nil {
				t.Fatal(err)
			}
			step(c, a) // any order
			step(a, c)
			c.Stop("client went away") // slot 1 stays taken: a gap
			b := mk(pb, long)          // slot 2; the cache grows in slots and length
			if err := m.Prefill(ctx, []*Sequence{b}); err != nil {
				t.Fatal(err)
			}
			if bc.Slots() < 3 {
				t.Fatalf("%d slots for three sequences", bc.Slots())
			}
			step(a, b, c)
			step(b, a)
			c.Release() // slot 1 is free again
			d := mk(pd, long)
			if err := m.Prefill(ctx, []*Sequence{d}); err != nil {
				t.Fatal(err)
			}
			if d.slot != 1 {
				t.Errorf("d took slot %d, want the freed slot 1", d.slot)
			}
			for !a.Done() || !b.Done() || !d.Done() {
				step(d, b, a)
			}
			got := map[string][]int{"a": a.Tokens(), "b": b.Tokens(), "c": c.Tokens(), "d": d.Tokens()}
			want["c"] = want["c"][:3]
			for k := range want {
				if !slices.Equal(got[k], want[k]) {
					t.Errorf("%s: batched %v, alone %v", k, got[k], want[k])
				}
			}
			for _, sq := range []*Sequence{a, b, d} {
				sq.Release()
			}
			if bc.Slots() != 0 || bc.k != nil {
				t.Errorf("buffers kept after every sequence was released: %d slots", bc.Slots())
			}
		})
	}
}

// greedyOwn decodes a prompt alone with a cache of its own and libtorch's
// attention: the reference the batch cache's paths are held to.
func greedyOwn(t *testing.T, m *Model, prompt []int, opts GenerateOptions) []int {
	t.Helper()
	sq, err := m.NewSequence(prompt, opts)
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
	return sq.Tokens()
}

// A batch mixing a BatchCache's sequences with a sequence that has its own
// cache falls back to stacking the caches, with the same tokens.
func TestBatchCacheMixed(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "qwen2"))
	ctx := context.Background()
	opts := GenerateOptions{MaxNewTokens: 8, EOS: []int{}}
	pa, pb := []int{10, 20, 30}, []int{7, 8, 9, 10, 11}
	wantA, wantB := greedyOwn(t, m, pa, opts), greedyOwn(t, m, pb, opts)
	a, err := m.NewBatchCache().NewSequence(pa, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := m.NewSequence(pb, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := m.Prefill(ctx, []*Sequence{a, b}); err != nil {
		t.Fatal(err)
	}
	for !a.Done() || !b.Done() {
		if err := m.DecodeStep(ctx, []*Sequence{a, b}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(a.Tokens(), wantA) || !slices.Equal(b.Tokens(), wantB) {
		t.Errorf("mixed batch: a %v (alone %v), b %v (alone %v)", a.Tokens(), wantA, b.Tokens(), wantB)
	}
}
