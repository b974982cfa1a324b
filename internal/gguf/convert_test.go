package gguf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// llama_tiny.gguf is a random 2-layer transformers Llama (4 heads, 2 kv
// heads, tied embeddings) with a tokenizer trained by `tokenizers`, written by
// scripts/golden/gguf_fixture.py as llama.cpp lays a model out, its block
// tensors spread over F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
const tinyGGUF = "testdata/llama_tiny.gguf"

func convertTiny(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model")
	if err := ConvertLlama(context.Background(), tinyGGUF, out, ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every tensor matches the state dict transformers' GGUF loader makes of the
// same file (llama_tiny_expected.safetensors): same names and shapes, q and k
// un-permuted, values equal. Both sides dequantize in float32 with the same
// formulas, so the only allowed difference is float rounding.
func TestConvertTensorsMatchTransformers(t *testing.T) {
	out := convertTiny(t)
	got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := safetensors.Open("testdata/llama_tiny_expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if d := cmp.Diff(want.Names(), got.Names()); d != "" {
		t.Fatalf("tensor names (-transformers +ours):\n%s", d)
	}
	g, err := Open(tinyGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	types := map[Type]bool{}
	for _, ti := range g.Tensors {
		types[ti.Type] = true
	}
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_1} {
		if !types[typ] {
			t.Errorf("fixture has no %s tensor", typ)
		}
	}
	for _, name := range want.Names() {
		wi, _ := want.Info(name)
		gi, _ := got.Info(name)
		if gi.DType != safetensors.F32 || !cmp.Equal(wi.Shape, gi.Shape) {
			t.Errorf("%s: %s %v, want F32 %v", name, gi.DType, gi.Shape, wi.Shape)
			continue
		}
		wb, _ := want.Data(name)
		gb, _ := got.Data(name)
		w, g := safetensors.Float32s(wb), safetensors.Float32s(gb)
		var worst float64
		for i := range w {
			worst = max(worst, math.Abs(float64(w[i]-g[i])))
		}
		if worst > 1e-6 {
			t.Errorf("%s: max |delta| %g", name, worst)
		}
	}
}

func TestConvertConfig(t *testing.T) {
	out := convertTiny(t)
	var cfg, gen, tokCfg map[string]any
	for name, dst := range map[string]*map[string]any{"config.json": &cfg, "generation_config.json": &gen, "tokenizer_config.json": &tokCfg} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The values gguf_fixture.py gave its LlamaConfig.
	want := map[string]any{
		"architectures": []any{"LlamaForCausalLM"}, "model_type": "llama", "vocab_size": 421.0,
		"hidden_size": 64.0, "intermediate_size": 96.0, "num_hidden_layers": 2.0,
		"num_attention_heads": 4.0, "num_key_value_heads": 2.0, "head_dim": 16.0,
		"max_position_embeddings": 128.0, "rope_theta": 50000.0, "rms_norm_eps": 1e-5,
		"tie_word_embeddings": true, "torch_dtype": "float32", "hidden_act": "silu",
		"bos_token_id": 1.0, "eos_token_id": 2.0, "pad_token_id": 2.0,
	}
	for k, v := range want {
		if !cmp.Equal(cfg[k], v) {
			t.Errorf("config.json %s = %v, want %v", k, cfg[k], v)
		}
	}
	if gen["eos_token_id"] != 2.0 || gen["bos_token_id"] != 1.0 {
		t.Errorf("generation_config.json = %v", gen)
	}
	for k, v := range map[string]any{
		"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
		"unk_token": "<|endoftext|>", "add_bos_token": false, "model_max_length": 128.0,
	} {
		if tokCfg[k] != v {
			t.Errorf("tokenizer_config.json %s = %v, want %v", k, tokCfg[k], v)
		}
	}
}

// The converted tokenizer.json, loaded by internal/tokenizer, gives the ids
// the original tokenizer (Python `tokenizers`, before it went into the GGUF)
// gives: digits one by one, spaces, punctuation, unicode, special and
// user-defined added tokens.
func TestConvertTokenizerMatchesOriginal(t *testing.T) {
	out := convertTiny(t)
	checkTokens(t, out, "testdata/llama_tiny_tokens.json")
}

type tokenCase struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

func checkTokens(t *testing.T, modelDir, golden string) {
	t.Helper()
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var cases []tokenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	checkTokenCases(t, modelDir, cases, true)
}

// checkTokenCases encodes each text with special tokens added and compares
// the ids; with roundTrip, decoding them must give the text back.
func checkTokenCases(t *testing.T, modelDir string, cases []tokenCase, roundTrip bool) {
	t.Helper()
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		ids, err := tok.Encode(c.Text, true)
		if err != nil {
			t.Fatalf("%q: %v", c.Text, err)
		}
		if d := cmp.Diff(c.IDs, ids); d != "" {
			t.Errorf("%q (-python +go):\n%s", c.Text, d)
		}
		if !roundTrip {
			continue
		}
		text, err := tok.Decode(ids, false)
		if err != nil || text != c.Text {
			t.Errorf("decode %q = %q, %v", c.Text, text, err)
		}
	}
}

// outDir appears complete or not at all: an existing directory is refused
// unless Overwrite, and a failed conversion leaves nothing behind.
func TestConvertAtomic(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "model")
	ctx := context.Background()
	if err := ConvertLlama(ctx, tinyGGUF, out, ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ConvertLlama(ctx, tinyGGUF, out, ConvertOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second conversion: %v, want fs.ErrExist", err)
	}
	os.WriteFile(filepath.Join(out, "stale"), nil, 0o644)
	var calls int
	progress := func(done, total int, name string) {
		calls++
		if done != calls || total != 20 || name == "" {
			t.Errorf("progress(%d, %d, %q) on call %d", done, total, name, calls)
		}
	}
	if err := ConvertLlama(ctx, tinyGGUF, out, ConvertOptions{Overwrite: true, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Overwrite kept a file of the old directory: %v", err)
	}
	if calls != 20 {
		t.Errorf("progress called %d times, want 20", calls)
	}

	// A cancelled context stops the conversion: no directory, no temp dir.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	other := filepath.Join(parent, "other")
	if err := ConvertLlama(cancelled, tinyGGUF, other, ConvertOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "model" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("after a failed conversion the parent holds %v, want only model", names)
	}
}

// Inputs the converter must refuse with a reason, not guess at.
func TestConvertRefuses(t *testing.T) {
	values := "testdata/values.gguf"
	err := ConvertLlama(context.Background(), values, filepath.Join(t.TempDir(), "m"), ConvertOptions{})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"none"`) {
		t.Errorf("architecture none: %v", err)
	}
	tokens := []string{"a", "b", "ab"}
	md := func(kv ...any) Metadata {
		m := Metadata{values: map[string]any{"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": []string{"a b"}}}
		for i := 0; i < len(kv); i += 2 {
			m.values[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		md   Metadata
		want error
	}{
		{"no pre (llama.cpp default regexes)", md(), ErrUnsupported},
		{"unknown pre", md("tokenizer.ggml.pre", "qwen2"), ErrUnsupported},
		{"sentencepiece", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.model", "llama"), ErrUnsupported},
		{"bad merge", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.merges", []string{"ab"}), ErrMalformed},
		{"duplicate token", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.tokens", []string{"a", "a"}), ErrMalformed},
		{"bos out of range", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.bos_token_id", uint32(3)), ErrMalformed},
		{"more tokens than embeddings", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.tokens", []string{"a", "b", "ab", "ba"}), ErrMalformed},
		{"add_bos without bos", md("tokenizer.ggml.pre", "gpt2", "tokenizer.ggml.add_bos_token", true), ErrMalformed},
	} {
		if _, err := buildTokenizer(tc.md, 3, 16); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// With tokenizer.ggml.add_bos_token set, Encode(text, true) starts with BOS.
func TestTokenizerAddBOS(t *testing.T) {
	m := Metadata{values: map[string]any{
		"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2",
		"tokenizer.ggml.tokens": []string{"<s>", "a", "b", "ab"}, "tokenizer.ggml.token_type": []int32{3, 1, 1, 1},
		"tokenizer.ggml.merges": []string{"a b"}, "tokenizer.ggml.bos_token_id": uint32(0), "tokenizer.ggml.add_bos_token": true,
	}}
	tok, err := buildTokenizer(m, 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeJSON(filepath.Join(dir, "tokenizer.json"), tok.JSON); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), tok.Config); err != nil {
		t.Fatal(err)
	}
	checkTokenCases(t, dir, []tokenCase{{Text: "abba", IDs: []int{0, 3, 2, 1}}}, false)
}

// A tensor of a type Dequantize does not handle is an error naming the
// tensor and the type, before anything is written.
func TestConvertUnsupportedType(t *testing.T) {
	data, err := os.ReadFile(tinyGGUF)
	if err != nil {
		t.Fatal(err)
	}
	// Tensor info: name, n_dims (uint32) = 1, dim (uint64) = 64, type (uint32).
	name := []byte("blk.1.attn_norm.weight")
	at := bytes.Index(data, name) + len(name) + 4 + 8
	if data[at] != byte(F32) {
		t.Fatalf("fixture layout changed: type byte %d at %d", data[at], at)
	}
	data[at] = byte(Q8_1) // 64 elements take 72 bytes instead of 256: still in bounds
	src := filepath.Join(t.TempDir(), "q8_1.gguf")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	err = ConvertLlama(context.Background(), src, out, ConvertOptions{})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "blk.1.attn_norm.weight: type Q8_1") {
		t.Fatalf("got %v, want ErrUnsupported naming blk.1.attn_norm.weight and Q8_1", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("output dir after a failed conversion: %v", err)
	}
}
