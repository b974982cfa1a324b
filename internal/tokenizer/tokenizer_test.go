package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sugarme's own pipeline, fed our components, must give the fast path's ids.
func TestSugarmePipelineAgrees(t *testing.T) {
	cases := corpusCases(t)
	for _, name := range testTokenizers {
		t.Run(name, func(t *testing.T) {
			fast := loadTest(t, name)
			slow, err := Load(tokenizerDir(t, name), withSugarmePipeline())
			if err != nil {
				t.Fatal(err)
			}
			if slow.fast {
				t.Fatal("withSugarmePipeline did not take effect")
			}
			for _, c := range cases {
				want, err := fast.Encode(c.text, true)
				if err != nil {
					t.Fatal(err)
				}
				got, err := slow.Encode(c.text, true)
				if err != nil {
					t.Fatalf("%s:%d: %v", c.file, c.line, err)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Fatalf("%s:%d %q: sugarme pipeline differs (-fast +sugarme):\n%s", c.file, c.line, truncate(c.text, 60), d)
				}
			}
		})
	}
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	var texts []string
	for _, c := range corpusCases(t) {
		texts = append(texts, c.text)
	}
	tok := loadTest(t, "llama3")
	got, err := tok.EncodeBatch(texts, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		want, _ := tok.Encode(s, true)
		if !slices.Equal(got[i], want) {
			t.Fatalf("text %d: batch %v, single %v", i, got[i], want)
		}
	}
}

func TestSpecialTokenIDs(t *testing.T) {
	type ids struct{ bos, eos, pad int }
	want := map[string]ids{
		"gpt2":   {50256, 50256, -1},
		"llama2": {1, 2, -1},
		"llama3": {128000, 128001, -1},
		"qwen3":  {-1, 151645, 151643},
	}
	for name, w := range want {
		tok := loadTest(t, name)
		get := func(f func() (int, bool)) int {
			if id, ok := f(); ok {
				return id
			}
			return -1
		}
		if got := (ids{get(tok.BOS), get(tok.EOS), get(tok.Pad)}); got != w {
			t.Errorf("%s: bos/eos/pad %v, want %v", name, got, w)
		}
	}
	if n := loadTest(t, "qwen3").VocabSize(); n != 151669 {
		t.Errorf("qwen3 VocabSize %d, want 151669", n)
	}
}

// Save writes files that Load reads back to the same tokenizer; for GPT-2
// it writes the tokenizer.json built from encoder.json + vocab.bpe.
func TestSaveRoundTrip(t *testing.T) {
	for _, name := range []string{"gpt2", "llama2"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTest(t, name)
			dir := filepath.Join(t.TempDir(), "tok")
			if err := tok.Save(dir); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !slices.Contains(names, "tokenizer.json") || !slices.Contains(names, "tokenizer_config.json") {
				t.Fatalf("saved %v", names)
			}
			back, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if back.SHA256() != tok.SHA256() {
				t.Fatalf("sha256 %s after save, %s before", back.SHA256(), tok.SHA256())
			}
			for _, c := range corpusCases(t) {
				a, _ := tok.Encode(c.text, true)
				b, _ := back.Encode(c.text, true)
				if !slices.Equal(a, b) {
					t.Fatalf("%s:%d: ids differ after save", c.file, c.line)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "tokenizer.json"), []byte(content), 0o644)
		return d
	}
	cases := []struct {
		name, path, want string
		is               error
	}{
		{"missing dir", filepath.Join(dir, "nope", "deeper"), "no such directory", nil},
		{"a Hub repo id", "Qwen/Qwen3-0.6B", "no such directory", os.ErrNotExist},
		{"empty dir", t.TempDir(), "no tokenizer.json, nor encoder.json + vocab.bpe", nil},
		{"not json", write("a", "{"), "parse tokenizer.json", nil},
		{"no model", write("b", `{"version":"1.0"}`), "has no model", nil},
		{"bad merges", write("c", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`), "not in the vocab", nil},
		{"bad regex", write("d", `{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(?<"},"behavior":"Isolated","invert":false}}`), "compile pattern", nil},
		{"unknown post-processor", write("e", `{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"post_processor":{"type":"Nope"}}`), "not supported", nil},
		// sugarme panics on a Delimiter pre-tokenizer without its delimiter.
		{"sugarme panic", write("f", `{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Delimiter"}}`), "sugarme panicked", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Load(c.path)
			if err == nil {
				t.Fatalf("loaded %+v", tok != nil)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestDecodeEdges(t *testing.T) {
	tok := loadTest(t, "llama2")
	for _, ids := range [][]int{nil, {}, {1}, {999999}, {-5, 1, 2}} {
		if _, err := tok.Decode(ids, true); err != nil {
			t.Fatalf("Decode(%v): %v", ids, err)
		}
	}
	// Bytes of an incomplete UTF-8 sequence decode to U+FFFD, as HF does.
	g := loadTest(t, "gpt2")
	ids, _ := g.Encode("\U0002a6d6", false)
	if len(ids) < 2 {
		t.Fatalf("rare ideograph is %d token(s), want several", len(ids))
	}
	s, _ := g.Decode(ids[:1], false)
	if !strings.Contains(s, "\uFFFD") {
		t.Fatalf("first byte token of a 4-byte character decodes to %q", s)
	}
}

func TestValidUTF8MatchesPython(t *testing.T) {
	// The GPT-2 golden decode of the whole invalid_utf8.txt is Python's
	// errors="replace" text (byte-level BPE round-trips exactly).
	for _, g := range readGolden(t, "gpt2") {
		if g.File != "invalid_utf8.txt" || g.Line != -1 {
			continue
		}
		b, _ := os.ReadFile("testdata/corpus/invalid_utf8.txt")
		if got := ValidUTF8(string(b)); got != g.Decoded {
			t.Fatalf("ValidUTF8 = %q\npython   = %q", got, g.Decoded)
		}
		return
	}
	t.Fatal("no golden case for invalid_utf8.txt")
}
