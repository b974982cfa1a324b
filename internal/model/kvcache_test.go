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
// it gets alone.
func TestBatchCacheJoinLeave(t *testing.T) {
	for _, name := range []string{"llama_gqa", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			m := loadCPU(t, filepath.Join("testdata", name))
			ctx := context.Background()
			short := GenerateOptions{MaxNewTokens: 6, EOS: []int{}}
			long := GenerateOptions{MaxNewTokens: 14, EOS: []int{}}
			pa, pb, pc, pd := []int{5, 9, 13, 40, 41, 7}, []int{100, 3}, []int{77, 78, 79, 80}, []int{8, 6, 4, 2, 1, 3, 5, 7, 9}
			want := map[string][]int{
				"a": greedyAlone(t, m, pa, short), "b": greedyAlone(t, m, pb, long),
				"c": greedyAlone(t, m, pc, long), "d": greedyAlone(t, m, pd, long),
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

// A batch mixing a BatchCache's sequences with a sequence that has its own
// cache falls back to stacking the caches, with the same tokens.
func TestBatchCacheMixed(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "qwen2"))
	ctx := context.Background()
	opts := GenerateOptions{MaxNewTokens: 8, EOS: []int{}}
	pa, pb := []int{10, 20, 30}, []int{7, 8, 9, 10, 11}
	wantA, wantB := greedyAlone(t, m, pa, opts), greedyAlone(t, m, pb, opts)
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
