package model

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigFixtures(t *testing.T) {
	for name, want := range map[string]Config{
		"llama_gqa":      {Architecture: ArchLlama, HiddenSize: 32, NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RopeTheta: 10000, Rope: RopeScaling{Type: "default"}},
		"llama_mha_tied": {Architecture: ArchLlama, HiddenSize: 32, NumHeads: 4, NumKVHeads: 4, HeadDim: 8, RopeTheta: 500000, TieWordEmbeddings: true, Rope: RopeScaling{Type: "default"}},
		"llama_bias":     {Architecture: ArchLlama, HiddenSize: 32, NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RopeTheta: 10000, AttentionBias: true, MLPBias: true, Rope: RopeScaling{Type: "default"}},
		"llama3_rope": {Architecture: ArchLlama, HiddenSize: 64, NumHeads: 4, NumKVHeads: 1, HeadDim: 16, RopeTheta: 500000,
			Rope: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}},
		"qwen2": {Architecture: ArchQwen2, HiddenSize: 32, NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RopeTheta: 1e6, QKVBias: true, TieWordEmbeddings: true, Rope: RopeScaling{Type: "default"}},
		"gpt2":  {Architecture: ArchGPT2, HiddenSize: 32, NumHeads: 4, NumKVHeads: 4, HeadDim: 8, RopeTheta: 10000, TieWordEmbeddings: true, Rope: RopeScaling{Type: "default"}},
	} {
		c, err := LoadConfig(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := Config{Architecture: c.Architecture, HiddenSize: c.HiddenSize, NumHeads: c.NumHeads, NumKVHeads: c.NumKVHeads,
			HeadDim: c.HeadDim, RopeTheta: c.RopeTheta, TieWordEmbeddings: c.TieWordEmbeddings, AttentionBias: c.AttentionBias,
			MLPBias: c.MLPBias, QKVBias: c.QKVBias, Rope: c.Rope}
		if got.Architecture != want.Architecture || got.HiddenSize != want.HiddenSize || got.NumHeads != want.NumHeads ||
			got.NumKVHeads != want.NumKVHeads || got.HeadDim != want.HeadDim || got.RopeTheta != want.RopeTheta ||
			got.TieWordEmbeddings != want.TieWordEmbeddings || got.AttentionBias != want.AttentionBias ||
			got.MLPBias != want.MLPBias || got.QKVBias != want.QKVBias || got.Rope != want.Rope {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
		if c.VocabSize != 200 || c.NumLayers != 2 || len(c.EOS) != 1 || c.EOS[0] != 2 || c.Pad != 0 {
			t.Errorf("%s: vocab %d layers %d eos %v pad %d", name, c.VocabSize, c.NumLayers, c.EOS, c.Pad)
		}
	}
	g, err := LoadConfig(filepath.Join("testdata", "gpt2"))
	if err != nil {
		t.Fatal(err)
	}
	if g.IntermediateSize != 128 || g.MaxPositions != 32 || g.HiddenAct != "gelu_new" || g.LayerNormEps != 1e-5 {
		t.Errorf("gpt2: n_inner null should give 4*n_embd: %+v", g)
	}
}

func TestParseConfigForms(t *testing.T) {
	base := func(extra string) []byte {
		return []byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32` + extra + `}`)
	}
	// transformers v5: rope_theta and the scaling live in rope_parameters.
	c, err := ParseConfig(base(`,"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,
		"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || c.Rope.Type != "llama3" || c.Rope.Factor != 32 || c.Rope.OriginalMaxPositions != 8192 {
		t.Errorf("v5 rope_parameters: theta %v rope %+v", c.RopeTheta, c.Rope)
	}
	if c.NumKVHeads != 2 || c.HeadDim != 4 {
		t.Errorf("defaults: kv heads %d head dim %d", c.NumKVHeads, c.HeadDim)
	}
	// Saving keeps the v5 form.
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	if p, ok := raw["rope_parameters"].(map[string]any); !ok || p["rope_theta"] != 500000.0 || p["rope_type"] != "llama3" {
		t.Errorf("JSON lost rope_parameters: %s", b)
	}
	again, err := ParseConfig(b)
	if err != nil || again.Rope != c.Rope || again.RopeTheta != c.RopeTheta {
		t.Errorf("re-parse: %+v %v", again, err)
	}
	// eos_token_id as a list (Llama 3's generation config style).
	c, err = ParseConfig(base(`,"eos_token_id":[128001,128009],"bos_token_id":128000,"rope_scaling":null`))
	if err != nil || len(c.EOS) != 2 || c.EOS[1] != 128009 || c.BOS[0] != 128000 {
		t.Errorf("eos list: %v %v", c.EOS, err)
	}
	// A sliding window shorter than the positions bounds the context.
	if c, err := ParseConfig([]byte(`{"architectures":["MistralForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32,"sliding_window":4}`)); err != nil || c.ContextLength() != 4 {
		t.Errorf("mistral window: %v %v", c, err)
	}
	// Mistral and configs without "architectures".
	if c, err := ParseConfig([]byte(`{"model_type":"mistral","vocab_size":10,"hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":32,"sliding_window":null}`)); err != nil || c.Architecture != ArchMistral {
		t.Errorf("mistral by model_type: %v %v", c, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		json, want  string
		unsupported bool
	}{
		{`{"architectures":["BertForMaskedLM"]}`, `"BertForMaskedLM"`, true},
		{`{"model_type":"t5"}`, `"t5"`, true},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32}`, `"hidden_size"`, false},
		{`{"architectures":["GPT2LMHeadModel"],"vocab_size":10,"n_embd":8,"n_head":2,"n_positions":32}`, `"n_layer"`, false},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32,"rope_scaling":{"rope_type":"yarn","factor":4}}`, `"yarn"`, true},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32,"rope_scaling":{"rope_type":"llama3","factor":8}}`, `"low_freq_factor"`, false},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2,"max_position_embeddings":32}`, "not a multiple", false},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":"ten","hidden_size":8}`, `"vocab_size"`, false},
		{`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32,"hidden_act":"relu2"}`, `"relu2"`, true},
		{`not json`, "parse config.json", false},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.want)
			continue
		}
		if errors.Is(err, ErrUnsupported) != tc.unsupported {
			t.Errorf("%s: errors.Is(ErrUnsupported) = %v", tc.json, !tc.unsupported)
		}
	}
}

// The llama3 frequencies follow transformers' _compute_llama3_parameters:
// long wavelengths divided by factor, short ones kept, the band between
// smoothed.
func TestRopeInvFreqLlama3(t *testing.T) {
	c := &Config{HeadDim: 16, RopeTheta: 500000, Rope: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}}
	base := ropeInvFreq(&Config{HeadDim: 16, RopeTheta: 500000})
	got := ropeInvFreq(c)
	var kept, divided, smoothed int
	for i := range got {
		wl := 2 * 3.141592653589793 / float64(base[i])
		switch {
		case wl < 16:
			kept++
			if got[i] != base[i] {
				t.Errorf("freq %d (wavelen %.1f) changed", i, wl)
			}
		case wl > 64:
			divided++
			if got[i] != base[i]/8 {
				t.Errorf("freq %d (wavelen %.1f) = %g, want %g", i, wl, got[i], base[i]/8)
			}
		default:
			smoothed++
			if !(got[i] < base[i] && got[i] > base[i]/8) {
				t.Errorf("freq %d (wavelen %.1f) = %g not between %g and %g", i, wl, got[i], base[i]/8, base[i])
			}
		}
	}
	if kept == 0 || divided == 0 || smoothed == 0 {
		t.Errorf("case covers kept %d, divided %d, smoothed %d", kept, divided, smoothed)
	}
}
