package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"
)

// The C decode step (decode_amd64.c) runs the decode steps of a
// BatchCache's sequences, also with quantized projections: its logits are the libtorch forward pass's on
// the whole sequence so far (within 1e-4 relative to the largest logit, as
// TestParityLogits holds libtorch to transformers), and a row's logits
// are the same bits in a batch of three sequences at other positions as
// alone.
func TestFusedDecodeMatchesLibtorch(t *testing.T) {
	if !haveKernel {
		t.Skip("no decode kernels on this CPU")
	}
	for _, name := range []string{"llama_gqa", "llama_bias", "llama_mha_tied", "llama3_rope", "qwen2", "qwen3", "random_hd32", "gguf_quantized"} {
		t.Run(name, func(t *testing.T) {
			var m *Model
			if name == "gguf_quantized" { // Q8_0, Q4_0 and Q4_1 projections (quant.c)
				var err error
				if m, err = LoadGGUF("../gguf/testdata/llama_tiny.gguf", GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
				if len(m.Quantized()) == 0 {
					t.Fatal("no quantized weights")
				}
			} else if name == "random_hd32" {
				c := &Config{Architecture: ArchLlama, VocabSize: 256, HiddenSize: 96, IntermediateSize: 160, NumLayers: 2,
					NumHeads: 3, NumKVHeads: 1, MaxPositions: 64, RopeTheta: 10000, RMSNormEps: 1e-5, InitializerRange: 0.5, BOS: []int{1}, EOS: []int{2}, Pad: -1}
				var err error
				if m, err = NewRandom(c, 3, LoadOptions{Device: "cpu", DType: "float32"}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
			} else {
				m = loadCPU(t, filepath.Join("testdata", name))
			}
			ctx := context.Background()
			v := m.Config.VocabSize
			opts := GenerateOptions{MaxNewTokens: 8, EOS: []int{}}
			prompts := [][]int{{5, 9, 13, 40, 41, 7}, {100, 3}, {77, 78, 79, 80}}
			bc, own := m.NewBatchCache(), m.NewBatchCache()
			var seqs []*Sequence
			for _, p := range prompts {
				sq, err := bc.NewSequence(p, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sq.Release)
				seqs = append(seqs, sq)
			}
			alone, err := own.NewSequence(prompts[1], opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(alone.Release)
			// One at a time: libtorch's prefill of a padded batch need not
			// give a row the bits it gets alone.
			for _, sq := range append(slices.Clone(seqs), alone) {
				if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
					t.Fatal(err)
				}
			}
			for step := 0; step < 5; step++ {
				inputs := make([][]int, len(seqs))
				for i, sq := range seqs {
					inputs[i] = append(sq.Prompt(), sq.Tokens()...)
				}
				if err := m.DecodeStep(ctx, seqs); err != nil {
					t.Fatal(err)
				}
				if m.fused == nil {
					t.Fatal("the decode step did not take the C path")
				}
				got := slices.Clone(fusedLogits(m, len(seqs)))
				if err := m.DecodeStep(ctx, []*Sequence{alone}); err != nil {
					t.Fatal(err)
				}
				if a := fusedLogits(m, 1); !slices.Equal(got[v:2*v], a) {
					t.Errorf("step %d: row 1's logits in a batch of 3 differ from its logits alone", step)
				}
				for i, in := range inputs {
					ids := make([]int64, len(in))
					for j, tok := range in {
						ids[j] = int64(tok)
					}
					ref, err := m.ForwardAt(ids, nil, 1, len(ids), []int64{int64(len(ids) - 1)})
					if err != nil {
						t.Fatal(err)
					}
					want := valuesOf(t, ref)
					ref.MustDrop()
					var d, top float64
					for j, w := range want {
						d = max(d, math.Abs(float64(got[i*v+j]-w)))
						top = max(top, math.Abs(float64(w)))
					}
					if d > 1e-4*max(1, top) {
						t.Errorf("step %d row %d: max |C - libtorch| = %g (largest logit %g)", step, i, d, top)
					}
				}
			}
		})
	}
}

// fusedLogits is the last C step's logits, n rows.
func fusedLogits(m *Model, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(m.fused.logits)), n*m.Config.VocabSize)
}

// The C step's greedy choice (each lm_head chunk's first largest logit,
// then the first largest of those) is the token sampler.next picks with
// greedy settings: NaN never wins, the first of equal logits wins also
// across chunks, and a row with nothing above -Inf gives token 0.
func TestFusedArgmaxMatchesSampler(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	r := rand.New(rand.NewPCG(1, 2))
	rows := map[string][]float32{
		"all -inf":          {-inf, -inf, -inf, -inf, -inf},
		"all nan":           {nan, nan, nan, nan, nan},
		"nan first":         {nan, -3, 2, 2, -1},
		"tie across chunks": {1, 0, 5, 0, 0, 5, 0, 5},
		"tie within chunk":  {0, 7, 7, 0, 7, 0},
		"+inf late":         {1, 2, 3, inf, 4, inf},
		"-inf then nan":     {-inf, nan, -inf},
		"last wins":         {-5, -4, -3, -2, -1, 0, 1, 9},
	}
	for i := range 20 {
		v := make([]float32, 1+r.IntN(300))
		for j := range v {
			v[j] = float32(r.IntN(7)) // many ties
			if r.IntN(20) == 0 {
				v[j] = nan
			}
		}
		rows[fmt.Sprintf("random %d", i)] = v
	}
	for name, v := range rows {
		sm := newSampler(GenerateOptions{}, len(v), nil)
		if !sm.greedy() {
			t.Fatal("default options are not greedy")
		}
		want := sm.next(v)
		for _, w := range []int{1, 2, 3, 48, 2048} {
			if got := kernelArgmax(v, w); got != want {
				t.Errorf("%s, ranges of %d: C picks %d, the sampler %d (%v)", name, w, got, want, v)
			}
		}
	}
}

// Requests that are not plainly greedy still sample in Go from the C
// step's logits: one batch holds a greedy row, a greedy row with a
// repetition penalty and a seeded row with temperature, top-k and top-p;
// each row's tokens are what its own sampler picks from the step's logits,
// step after step.
func TestFusedStepHonoursSampling(t *testing.T) {
	if !haveKernel {
		t.Skip("no decode kernels on this CPU")
	}
	m := loadCPU(t, filepath.Join("testdata", "llama_gqa"))
	ctx := context.Background()
	v := m.Config.VocabSize
	prompt := []int{5, 9, 13, 40, 41, 7, 5, 9}
	opts := []GenerateOptions{
		{MaxNewTokens: 12, EOS: []int{}},
		{MaxNewTokens: 12, EOS: []int{}, RepetitionPenalty: 50},
		{MaxNewTokens: 12, EOS: []int{}, Temperature: 1.5, TopK: 20, TopP: 0.9, Seed: 7},
	}
	bc := m.NewBatchCache()
	var seqs []*Sequence
	var twins []*sampler
	for _, o := range opts {
		sq, err := bc.NewSequence(prompt, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sq.Release)
		seqs = append(seqs, sq)
	}
	if err := m.Prefill(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	for i, sq := range seqs {
		// The twin has seen what the sequence has: the prompt, the first
		// token, and the RNG draw that picked it.
		tw := newSampler(opts[i], v, prompt)
		tw.observe(sq.Last())
		if opts[i].Temperature > 0 {
			tw.rng.Float64()
		}
		twins = append(twins, tw)
	}
	differ := false
	for step := 0; step < 8; step++ {
		if err := m.DecodeStep(ctx, seqs); err != nil {
			t.Fatal(err)
		}
		if m.fused == nil {
			t.Fatal("the decode step did not take the C path")
		}
		logits := fusedLogits(m, len(seqs))
		for i, sq := range seqs {
			want := twins[i].next(logits[i*v : (i+1)*v])
			twins[i].observe(want)
			if got := sq.Last(); got != want {
				t.Fatalf("step %d row %d (%+v): token %d, its sampler picks %d", step, i, opts[i], got, want)
			}
			if want != argmax(logits[i*v:(i+1)*v]) {
				differ = true
			}
		}
	}
	if !differ {
		t.Error("every token was the plain argmax: the test cannot tell sampling from greedy")
	}
}

// The C step counts the machine's runnable threads (/proc/loadavg) to
// choose between spinning and sleeping at a phase's end; a count it could
// not read would leave its threads sleeping on a quiet machine. The
// calling thread is running, so the count is at least 1.
func TestRunnableThreadsReadable(t *testing.T) {
	if n := runnableThreads(); n < 1 {
		t.Fatalf("runnable threads = %d, want at least 1 (this one)", n)
	}
}
