package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The hand-written splitters must give exactly regexp2's matches.
func TestFastSplitterMatchesRegexp2(t *testing.T) {
	var texts []string
	for _, c := range corpusCases(t) {
		texts = append(texts, c.text)
	}
	// Random strings over an alphabet that exercises every alternative.
	alphabet := []string{"a", "Z", "é", "中", "ſ", "1", "٣", "½", " ", "  ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000",
		"'", "'s", "'S", "'ll", "'Re", "'x", "!", "?!", "-", "😀", "\u200d", "_", "\u0085", "\xff", "\v"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		for k := rng.IntN(30); k >= 0; k-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	for src := range knownPatterns {
		p, err := NewRegexPattern(src)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Fatalf("pattern %q not recognised as known", src)
		}
		for _, s := range texts {
			want := p.regexpMatches(s)
			got := p.fast.matches(nil, s)
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("pattern %.30q on %q (-regexp2 +fast):\n%s", src, s, d)
			}
		}
	}
}

func FuzzFastSplitter(f *testing.F) {
	for _, s := range []string{"it's  a\t\ttest\r\n 123 ¡hola! 東京😀", "  \n\n x", "'S'll ſ ٣٣٣٣"} {
		f.Add(s)
	}
	var pats []*RegexPattern
	for src := range knownPatterns {
		p, err := NewRegexPattern(src)
		if err != nil {
			f.Fatal(err)
		}
		pats = append(pats, p)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = ValidUTF8(s) // Encode replaces invalid UTF-8 before splitting
		for _, p := range pats {
			if d := cmp.Diff(p.regexpMatches(s), p.fast.matches(nil, s)); d != "" {
				t.Fatalf("pattern %.30q on %q (-regexp2 +fast):\n%s", p.source, s, d)
			}
		}
	})
}
