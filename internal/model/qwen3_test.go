package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// qwen3Fixture is testdata/qwen3, which scripts/golden/qwen3_fixture.py
// makes with transformers: texts tokenized with the Qwen3 tokenizer, the
// logits at a subset of the vocabulary, and a greedy continuation.
type qwen3Fixture struct {
	ids, mask, columns []int64
	shape              []int64 // [B,T]
	logits             []float32
	greedy             struct {
		Text         string `json:"text"`
		Prompt       []int  `json:"prompt"`
		MaxNewTokens int    `json:"max_new_tokens"`
		Output       []int  `json:"output"`
	}
}

func readQwen3Fixture(t *testing.T) *qwen3Fixture {
	t.Helper()
	dir := filepath.Join("testdata", "qwen3")
	f, err := safetensors.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fx qwen3Fixture
	for _, name := range []string{"input_ids", "attention_mask", "columns", "logits"} {
		data, err := f.Data(name)
		if err != nil {
			t.Fatal(err)
		}
		switch name {
		case "input_ids":
			info, _ := f.Info(name)
			fx.ids, fx.shape = safetensors.Int64s(data), info.Shape
		case "attention_mask":
			fx.mask = safetensors.Int64s(data)
		case "columns":
			fx.columns = safetensors.Int64s(data)
		case "logits":
			fx.logits = safetensors.Float32s(data)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "greedy.json"))
	if err == nil {
		err = json.Unmarshal(b, &fx.greedy)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &fx
}

// TestQwen3Parity: Qwen3 (per-head q/k RMSNorm) on text tokenized with
// the Qwen3 tokenizer gives transformers' logits within 1e-4, on a
// right-padded batch, and its greedy continuation.
func TestQwen3Parity(t *testing.T) {
	fx := readQwen3Fixture(t)
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	tok, err := tokenizer.Load(filepath.Join(base, "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(fx.greedy.Text, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, fx.greedy.Prompt) {
		t.Fatalf("the tokenizer gives %v, the fixture was made with %v", ids, fx.greedy.Prompt)
	}

	m := loadCPU(t, filepath.Join("testdata", "qwen3"))
	if m.Config.Architecture != ArchQwen3 || m.Config.HeadDim*m.Config.NumHeads == m.Config.HiddenSize {
		t.Fatalf("fixture config %+v: want Qwen3 with head_dim * heads != hidden_size", m.Config)
	}
	got := forwardValues(t, m, batch{ids: fx.ids, mask: fx.mask, shape: fx.shape})
	v, c := m.Config.VocabSize, len(fx.columns)
	var d float64
	for pos, on := range fx.mask {
		if on == 0 {
			continue
		}
		for j, col := range fx.columns {
			d = max(d, math.Abs(float64(got[pos*v+int(col)]-fx.logits[pos*c+j])))
		}
	}
	t.Logf("max |logits - transformers| = %.3g over %d columns", d, c)
	if d > logitTol {
		t.Errorf("max |logits - transformers| = %g > %g", d, logitTol)
	}

	out, err := m.Generate(context.Background(), [][]int{ids}, GenerateOptions{MaxNewTokens: fx.greedy.MaxNewTokens, EOS: []int{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0], fx.greedy.Output) {
		t.Errorf("greedy: got %v, transformers %v", out[0], fx.greedy.Output)
	}
}

// A Qwen3 saved by Save loads back with the same parameters, q_norm and
// k_norm included, and config.json keeps its architecture.
func TestQwen3RoundTrip(t *testing.T) {
	m := loadCPU(t, filepath.Join("testdata", "qwen3"))
	out := t.TempDir()
	if err := m.Save(out); err != nil {
		t.Fatal(err)
	}
	again := loadCPU(t, out)
	p1, p2 := m.Parameters(), again.Parameters()
	if len(p1) != len(p2) || !slices.ContainsFunc(p1, func(p Param) bool { return p.Name == "model.layers.1.self_attn.k_norm.weight" }) {
		t.Fatalf("%d parameters saved, %d loaded back (k_norm among them?)", len(p1), len(p2))
	}
	for i := range p1 {
		if p1[i].Name != p2[i].Name || !p1[i].Tensor.MustEqual(p2[i].Tensor, false) {
			t.Fatalf("parameter %d: %s != %s after save/load", i, p1[i].Name, p2[i].Name)
		}
	}
	if again.Config.Architecture != ArchQwen3 || again.Config.ModelType != "qwen3" {
		t.Errorf("saved config is %s/%s", again.Config.Architecture, again.Config.ModelType)
	}
}
