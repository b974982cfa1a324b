package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// boundAlphabet mixes what moves a text's byte length against its token
// count: ASCII words, runs of one character, spaces and newlines, CJK,
// emoji, combining marks, Hangul jamo (NFC composes them), mathematical
// letters (NFKC folds them), a Kelvin sign (lowercases to "k"), unknown
// bytes for byte fallback and an added token's text.
var boundAlphabet = []string{"the ", "tower ", "a", "aaaaaaaa", " ", "    ", "\n", "\t", "東京", "🙂", "e\u0301",
	"\u1100\u1161\u11a8", "𝐀", "\u212a", "ÿ", "<|endoftext|>", "<s>", "----", "1234567", "İ"}

func randomBoundText(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(boundAlphabet[r.IntN(len(boundAlphabet))])
	}
	return b.String()
}

// A text of more than k*n bytes must encode to more than k tokens, for the n
// MaxBytesPerToken returns; the prompt's bounded truncation relies on it.
func TestMaxBytesPerTokenBoundsEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range testTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := loadTest(t, name)
			n, ok := tok.MaxBytesPerToken()
			if !ok {
				t.Fatalf("%s: no bound; its BPE model, normalizer and pre-tokenizer neither drop nor fuse input", name)
			}
			t.Logf("%s: at most %d bytes per token", name, n)
			for i := 0; i < 300; i++ {
				text := randomBoundText(r, 1+r.IntN(4000))
				if i%3 == 0 { // one repeated piece: the fewest tokens per byte
					text = strings.Repeat(boundAlphabet[r.IntN(len(boundAlphabet))], 1+r.IntN(2000))
				}
				ids, err := tok.Encode(text, false)
				if err != nil {
					t.Fatal(err)
				}
				if len(ids)*n < len(text) {
					t.Fatalf("%d bytes encode to %d tokens: more than %d bytes per token (%q...)", len(text), len(ids), n, truncate(text, 40))
				}
			}
		})
	}
}

// Tokenizers that can drop or fuse unbounded input have no bound.
func TestMaxBytesPerTokenRefuses(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(tokenizerDir(t, "llama3"), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"strip normalizer":   {`"normalizer": null`, `"normalizer": {"type": "Strip", "strip_left": true, "strip_right": true}`},
		"regex replace":      {`"normalizer": null`, `"normalizer": {"type": "Replace", "pattern": {"Regex": " +"}, "content": " "}`},
		"removed split":      {`"behavior": "Isolated"`, `"behavior": "Removed"`},
		"lstrip added token": {`"lstrip": false`, `"lstrip": true`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := string(base)
			if !strings.Contains(cfg, edit[0]) {
				t.Fatalf("llama3 tokenizer.json has no %s", edit[0])
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(strings.Replace(cfg, edit[0], edit[1], 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			tok, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if n, ok := tok.MaxBytesPerToken(); ok {
				t.Fatalf("bound %d, want none", n)
			}
		})
	}
}
