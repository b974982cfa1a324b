package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Components against the Python library one by one
// (testdata/golden/components.json, from scripts/golden/tokenizer_components.py).
func TestComponentsMatchHuggingFace(t *testing.T) {
	b, err := os.ReadFile("testdata/golden/components.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Split []struct {
			Pattern  json.RawMessage `json:"pattern"`
			Behavior string          `json:"behavior"`
			Invert   bool            `json:"invert"`
			Input    string          `json:"input"`
			Pieces   []string        `json:"pieces"`
		} `json:"split"`
		ByteLevel []struct {
			AddPrefixSpace bool     `json:"add_prefix_space"`
			UseRegex       bool     `json:"use_regex"`
			Input          string   `json:"input"`
			Pieces         []string `json:"pieces"`
		} `json:"byte_level"`
		Digits []struct {
			Individual bool     `json:"individual_digits"`
			Input      string   `json:"input"`
			Pieces     []string `json:"pieces"`
		} `json:"digits"`
		Normalizers []struct {
			Normalizer json.RawMessage `json:"normalizer"`
			Input      string          `json:"input"`
			Output     string          `json:"output"`
		} `json:"normalizers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Split {
		cfg := fmt.Sprintf(`{"type":"Split","pattern":%s,"behavior":%q,"invert":%v}`, c.Pattern, c.Behavior, c.Invert)
		_, pre, err := buildPreTokenizer(json.RawMessage(cfg))
		if err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		if d := cmp.Diff(c.Pieces, pre.splitString(nil, c.Input), cmpEmpty); d != "" {
			t.Errorf("%s on %q (-python +go):\n%s", cfg, c.Input, d)
		}
	}
	for _, c := range doc.Digits {
		cfg := fmt.Sprintf(`{"type":"Digits","individual_digits":%v}`, c.Individual)
		_, pre, err := buildPreTokenizer(json.RawMessage(cfg))
		if err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		if d := cmp.Diff(c.Pieces, pre.splitString(nil, c.Input), cmpEmpty); d != "" {
			t.Errorf("%s on %q (-python +go):\n%s", cfg, c.Input, d)
		}
	}
	for _, c := range doc.ByteLevel {
		bl, err := newByteLevel(c.AddPrefixSpace, c.UseRegex)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c.Pieces, bl.splitString(nil, c.Input), cmpEmpty); d != "" {
			t.Errorf("ByteLevel prefix=%v regex=%v on %q (-python +go):\n%s", c.AddPrefixSpace, c.UseRegex, c.Input, d)
		}
	}
	for _, c := range doc.Normalizers {
		n, ok, err := buildStringNormalizer(c.Normalizer)
		if err != nil || !ok {
			t.Fatalf("%s: ok=%v err=%v", c.Normalizer, ok, err)
		}
		if got := n.normalizeString(c.Input); got != c.Output {
			t.Errorf("%s on %q = %q, python %q", c.Normalizer, c.Input, got, c.Output)
		}
	}
}

// cmpEmpty treats nil and empty piece lists as equal.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
})

// Added tokens with lstrip, rstrip and single_word, on the GPT-2 reference.
func TestAddedTokenOptionsMatchHuggingFace(t *testing.T) {
	b, err := os.ReadFile("testdata/golden/components.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Added struct {
			Tokens []map[string]any `json:"tokens"`
			Cases  []struct {
				Input string `json:"input"`
				IDs   []int  `json:"ids"`
			} `json:"cases"`
		} `json:"added_tokens_gpt2"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(tokenizerDir(t, "gpt2") + "/encoder.json")
	if err != nil {
		t.Fatal(err)
	}
	merges, _ := os.ReadFile(tokenizerDir(t, "gpt2") + "/vocab.bpe")
	g, err := gpt2Files(enc, merges)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	json.Unmarshal(g.tokenizerJSON, &cfg)
	for _, tok := range doc.Added.Tokens {
		cfg["added_tokens"] = append(cfg["added_tokens"].([]any), tok)
	}
	raw, _ := json.Marshal(cfg)
	tok, err := build(raw, options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Added.Cases {
		got, err := tok.Encode(c.Input, true)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c.IDs, got); d != "" {
			t.Errorf("%q (-python +go):\n%s", c.Input, d)
		}
	}
}
