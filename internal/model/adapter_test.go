package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/safetensors"
)

// The cases scripts/golden/lora_fixtures.py makes with transformers + peft.
var loraCases = map[string][]string{"llama": {"all", "some"}, "gpt2": {"all"}}

type loraGreedy struct {
	Prompts      [][]int            `json:"prompts"`
	MaxNewTokens int                `json:"max_new_tokens"`
	EOS          int                `json:"eos_token_id"`
	Outputs      map[string][][]int `json:"outputs"`
}

func readLoRAFixture(t *testing.T, dir string) (prompt []int, logits map[string][]float32, g loraGreedy) {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logits = map[string][]float32{}
	for _, n := range f.Names() {
		data, err := f.Data(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == "input_ids" {
			for _, v := range safetensors.Int64s(data) {
				prompt = append(prompt, int(v))
			}
			continue
		}
		logits[strings.TrimSuffix(n, ".logits")] = safetensors.Float32s(data)
	}
	b, err := os.ReadFile(filepath.Join(dir, "greedy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return prompt, logits, g
}

func loraDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// loadWithAdapters loads a case's base and every adapter on it.
func loadWithAdapters(t *testing.T, c string) (*Model, map[string]*Adapter) {
	t.Helper()
	dir := filepath.Join("testdata", "lora", c)
	m := loadCPU(t, filepath.Join(dir, "base"))
	ads := map[string]*Adapter{}
	for _, name := range loraCases[c] {
		a, err := m.LoadAdapter(name, filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("LoadAdapter(%s): %v", name, err)
		}
		ads[name] = a
	}
	return m, ads
}

// generateMixed runs each prompt through its adapter (nil: the base) to
// the end, all in one BatchCache: every Prefill and DecodeStep mixes them.
func generateMixed(t *testing.T, m *Model, prompts [][]int, ads []*Adapter, maxNew, eos int) [][]int {
	t.Helper()
	bc := m.NewBatchCache()
	seqs := make([]*Sequence, len(prompts))
	for i, p := range prompts {
		sq, err := bc.NewSequence(p, GenerateOptions{MaxNewTokens: maxNew, EOS: []int{eos}, Adapter: ads[i]})
		if err != nil {
			t.Fatal(err)
		}
		defer sq.Release()
		seqs[i] = sq
	}
	ctx := context.Background()
	if err := m.Prefill(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	for {
		if err := m.DecodeStep(ctx, seqs); err != nil {
			t.Fatal(err)
		}
		done := true
		for _, sq := range seqs {
			done = done && sq.Done()
		}
		if done {
			break
		}
	}
	out := make([][]int, len(seqs))
	for i, sq := range seqs {
		out[i] = sq.Tokens()
	}
	return out
}

// TestAdapterMatchesPEFT: an adapter loaded from what peft's save_pretrained
// wrote gives transformers + peft's logits within 1e-4 and its greedy tokens,
// for every Llama projection, per-module rank/alpha with rsLoRA, and GPT-2's
// Conv1D layers; and the answers differ from the base's.
func TestAdapterMatchesPEFT(t *testing.T) {
	for c, names := range loraCases {
		t.Run(c, func(t *testing.T) {
			prompt, want, g := readLoRAFixture(t, filepath.Join("testdata", "lora", c))
			m, ads := loadWithAdapters(t, c)
			for _, name := range append([]string{"base"}, names...) {
				got, err := m.Logits(ads[name], prompt) // nil: the base
				if err != nil {
					t.Fatal(err)
				}
				d := loraDiff(got, want[name])
				if d > logitTol {
					t.Errorf("%s: logits differ from transformers + peft by %g (tolerance %g)", name, d, logitTol)
				}
				t.Logf("%s: max |logit - peft| %.3g", name, d)
				for i, p := range g.Prompts {
					out, err := m.Generate(context.Background(), [][]int{p}, GenerateOptions{MaxNewTokens: g.MaxNewTokens, EOS: []int{g.EOS}, Adapter: ads[name]}, nil)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(out[0], g.Outputs[name][i]) {
						t.Errorf("%s prompt %d: greedy %v, peft %v", name, i, out[0], g.Outputs[name][i])
					}
				}
				if name != "base" && slices.EqualFunc(g.Outputs[name], g.Outputs["base"], slices.Equal[[]int]) {
					t.Errorf("%s: the fixture's adapter answers as the base does", name)
				}
			}
		})
	}
}

// TestAdapterMixedBatch: prompts of different adapters and of the base in
// one batch (one Prefill, shared decode steps) answer as each does alone.
func TestAdapterMixedBatch(t *testing.T) {
	_, _, g := readLoRAFixture(t, filepath.Join("testdata", "lora", "llama"))
	m, ads := loadWithAdapters(t, "llama")
	var prompts [][]int
	var which []*Adapter
	var want [][]int
	for i, p := range g.Prompts {
		for _, name := range []string{"base", "all", "some"} {
			prompts = append(prompts, p)
			which = append(which, ads[name])
			want = append(want, g.Outputs[name][i])
		}
	}
	// A rotation, so that neighbours differ from the alone order.
	got := generateMixed(t, m, prompts, which, g.MaxNewTokens, g.EOS)
	for i := range prompts {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d (%v): mixed batch %v, alone (peft) %v", i, which[i] != nil, got[i], want[i])
		}
	}
}

// TestAdapterRefusesBadInput: an adapter that does not fit the model is
// refused with a message naming the problem, and the model still serves
// the adapters it had.
func TestAdapterRefusesBadInput(t *testing.T) {
	m, ads := loadWithAdapters(t, "llama")
	prompt, want, _ := readLoRAFixture(t, filepath.Join("testdata", "lora", "llama"))
	src := filepath.Join("testdata", "lora", "llama", "all")
	cp := func(t *testing.T, edit func(cfg map[string]any)) string {
		d := t.TempDir()
		b, _ := os.ReadFile(filepath.Join(src, AdapterConfigFile))
		var cfg map[string]any
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		b, _ = json.Marshal(cfg)
		os.WriteFile(filepath.Join(d, AdapterConfigFile), b, 0o644)
		w, _ := os.ReadFile(filepath.Join(src, AdapterWeightsFile))
		os.WriteFile(filepath.Join(d, AdapterWeightsFile), w, 0o644)
		return d
	}
	for _, tc := range []struct {
		name string
		dir  string
		want string
	}{
		{"rank", cp(t, func(c map[string]any) { c["r"] = 3 }), "has shape"},
		{"dora", cp(t, func(c map[string]any) { c["use_dora"] = true }), "DoRA"},
		{"prefix", cp(t, func(c map[string]any) { c["peft_type"] = "PREFIX_TUNING" }), "only LORA"},
		{"gpt2 adapter on llama", filepath.Join("testdata", "lora", "gpt2", "all"), "not LoRA weights"},
		{"no weights", t.TempDir(), "adapter_config.json"},
	} {
		_, err := m.LoadAdapter(tc.name, tc.dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if n := len(m.Adapters()); n != 2 {
		t.Fatalf("%d adapters after refusals, want 2", n)
	}
	got, err := m.Logits(ads["some"], prompt)
	if err != nil {
		t.Fatal(err)
	}
	if d := loraDiff(got, want["some"]); d > logitTol {
		t.Errorf("after refusals, adapter some differs from peft by %g", d)
	}
}
