package model

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

var update = flag.Bool("update", false, "rewrite testdata/roundtrip/ (then run scripts/golden/model_fixtures.py roundtrip)")

// The cases scripts/golden/model_fixtures.py makes with transformers.
var parityCases = []string{"llama_gqa", "llama_mha_tied", "llama_bias", "llama3_rope", "qwen2", "gpt2", "gpt2_noprefix"}

// roundtripCases are saved by the Go test and reloaded by transformers.
var roundtripCases = []string{"llama_gqa", "llama_mha_tied", "qwen2", "gpt2_noprefix"}

const logitTol = 1e-4

type greedyFixture struct {
	Prompts      [][]int `json:"prompts"`
	MaxNewTokens int     `json:"max_new_tokens"`
	EOS          int     `json:"eos_token_id"`
	Outputs      [][]int `json:"outputs"`
}

func loadCPU(t testing.TB, dir string) *Model {
	t.Helper()
	m, err := Load(dir, LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	t.Cleanup(m.Close)
	return m
}

type batch struct {
	ids, mask []int64
	shape     []int64
	logits    []float32
}

func readBatches(t *testing.T, dir string) map[string]batch {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]batch{}
	for _, key := range []string{"single", "left", "right"} {
		var b batch
		for _, part := range []string{"input_ids", "attention_mask", "logits"} {
			data, err := f.Data(key + "." + part)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := f.Info(key + "." + part)
			switch part {
			case "input_ids":
				b.ids, b.shape = safetensors.Int64s(data), info.Shape
			case "attention_mask":
				b.mask = safetensors.Int64s(data)
			case "logits":
				b.logits = safetensors.Float32s(data)
			}
		}
		out[key] = b
	}
	return out
}

func tensorOf(t testing.TB, data []int64, shape []int64) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(data)
	if err != nil {
		t.Fatal(err)
	}
	y := x.MustView(shape, true)
	t.Cleanup(y.MustDrop)
	return y
}

// maxDiff compares logits [B,T,V] at unmasked positions only.
func maxDiff(got, want []float32, mask []int64, vocab int) float64 {
	var d float64
	for pos, m := range mask {
		if m == 0 {
			continue
		}
		for j := 0; j < vocab; j++ {
			d = max(d, math.Abs(float64(got[pos*vocab+j]-want[pos*vocab+j])))
		}
	}
	return d
}

func forwardValues(t *testing.T, m *Model, b batch) []float32 {
	t.Helper()
	logits, err := m.Forward(tensorOf(t, b.ids, b.shape), tensorOf(t, b.mask, b.shape))
	if err != nil {
		t.Fatal(err)
	}
	defer logits.MustDrop()
	if sh := logits.MustSize(); !slices.Equal(sh, []int64{b.shape[0], b.shape[1], int64(m.Config.VocabSize)}) {
		t.Fatalf("logits shape %v", sh)
	}
	return valuesOf(t, logits)
}

// valuesOf copies a float tensor into Go.
func valuesOf(t testing.TB, x *ts.Tensor) []float32 {
	t.Helper()
	var s scope
	defer s.Free()
	v := s.ReadFloat32s(torch.Of(x))
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	return v
}

// TestParityLogits: logits match transformers' within 1e-4 (float32, CPU)
// on an unpadded, a left-padded and a right-padded batch.
func TestParityLogits(t *testing.T) {
	for _, name := range parityCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m := loadCPU(t, dir)
			for key, b := range readBatches(t, dir) {
				d := maxDiff(forwardValues(t, m, b), b.logits, b.mask, m.Config.VocabSize)
				t.Logf("%s/%s: max |logits - transformers| = %.3g", name, key, d)
				if d > logitTol {
					t.Errorf("%s: max |logits - transformers| = %g > %g", key, d, logitTol)
				}
			}
		})
	}
}

// TestParityGreedy: greedy generation of a batch of prompts of different
// lengths is token-identical to transformers' generate(do_sample=False).
func TestParityGreedy(t *testing.T) {
	for _, name := range parityCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m := loadCPU(t, dir)
			var g greedyFixture
			b, err := os.ReadFile(filepath.Join(dir, "greedy.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			opts := GenerateOptions{MaxNewTokens: g.MaxNewTokens, EOS: []int{g.EOS}}
			got, err := m.Generate(context.Background(), g.Prompts, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range g.Outputs {
				if !slices.Equal(got[i], g.Outputs[i]) {
					t.Errorf("prompt %d: got %v, transformers %v", i, got[i], g.Outputs[i])
				}
			}
			// One prompt alone decodes the same as in the batch.
			alone, err := m.Generate(context.Background(), g.Prompts[1:2], opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(alone[0], g.Outputs[1]) {
				t.Errorf("prompt 1 alone: got %v, transformers %v", alone[0], g.Outputs[1])
			}
		})
	}
}

// TestRoundTrip: a model we save loads back with identical parameters and
// logits, and transformers loads it too (testdata/roundtrip/
// transformers_check.json, written by model_fixtures.py roundtrip from the
// directories this test writes with -update).
func TestRoundTrip(t *testing.T) {
	for _, name := range roundtripCases {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("testdata", name)
			m := loadCPU(t, src)
			out := t.TempDir()
			if *update {
				out = filepath.Join("testdata", "roundtrip", name)
				os.RemoveAll(out)
			}
			if err := m.Save(out); err != nil {
				t.Fatal(err)
			}
			again := loadCPU(t, out)
			p1, p2 := m.Parameters(), again.Parameters()
			if len(p1) != len(p2) {
				t.Fatalf("%d parameters saved, %d loaded back", len(p1), len(p2))
			}
			for i := range p1 {
				if p1[i].Name != p2[i].Name || !p1[i].Tensor.MustEqual(p2[i].Tensor, false) {
					t.Fatalf("parameter %d: %s != %s after save/load", i, p1[i].Name, p2[i].Name)
				}
			}
			b := readBatches(t, src)["left"]
			if d := maxDiff(forwardValues(t, again, b), b.logits, b.mask, m.Config.VocabSize); d > logitTol {
				t.Errorf("reloaded model: max diff %g", d)
			}
			st, err := safetensors.OpenDir(out)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if m.Config.TieWordEmbeddings && slices.Contains(st.Names(), "lm_head.weight") {
				t.Error("tied lm_head.weight was saved; transformers leaves it out")
			}
		})
	}
	var check struct {
		MaxAbsDiff any `json:"max_abs_diff"`
		Cases      map[string]struct {
			MaxAbsDiff any `json:"max_abs_diff"`
		} `json:"cases"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "roundtrip", "transformers_check.json"))
	if err != nil {
		t.Fatalf("no transformers check: run this test with -update, then scripts/golden/model_fixtures.py roundtrip: %v", err)
	}
	if err := json.Unmarshal(b, &check); err != nil {
		t.Fatal(err)
	}
	for _, name := range roundtripCases {
		c, ok := check.Cases[name]
		d, isNum := c.MaxAbsDiff.(float64)
		if !ok || !isNum || d > 1e-5 {
			t.Errorf("transformers loaded our %s with max diff %v (want <= 1e-5)", name, c.MaxAbsDiff)
		}
	}
}

var _ = gotch.Float
