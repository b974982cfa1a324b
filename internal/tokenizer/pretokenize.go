package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// stringPreTokenizer is a sugarme PreTokenizer that can also split a plain
// string, which the fast encoding path uses.
type stringPreTokenizer interface {
	sugar.PreTokenizer
	// splitString appends the words of s to dst.
	splitString(dst []string, s string) []string
}

// RegexPattern is a normalizer.Pattern on github.com/dlclark/regexp2, a
// backtracking engine with the lookahead `(?!\S)` that HF's Split patterns use
// and Go's regexp lacks.
type RegexPattern struct {
	re     *regexp2.Regexp
	source string
	fast   *fastSplitter // hand-written equivalent of a known pattern, or nil
}

var _ normalizer.Pattern = (*RegexPattern)(nil)

// NewRegexPattern compiles an HF (Oniguruma) pattern with regexp2.
func NewRegexPattern(pattern string) (*RegexPattern, error) {
	re, err := regexp2.Compile(pattern, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("compile pattern %q: %w", pattern, err)
	}
	return &RegexPattern{re: re, source: pattern, fast: knownPatterns[pattern]}, nil
}

// matches returns the byte spans [start, end) of the non-empty matches in s.
func (p *RegexPattern) matches(s string) [][2]int {
	if s == "" {
		return nil
	}
	if p.fast != nil {
		return p.fast.matches(nil, s)
	}
	return p.regexpMatches(s)
}

// regexpMatches is matches on regexp2.
func (p *RegexPattern) regexpMatches(s string) [][2]int {
	runes := []rune(s)
	var byteOff []int // rune index -> byte offset, only for non-ASCII input
	if len(runes) != len(s) {
		byteOff = make([]int, 0, len(runes)+1)
		for b := range s { // byte index of each rune, right for invalid bytes too
			byteOff = append(byteOff, b)
		}
		byteOff = append(byteOff, len(s))
	}
	conv := func(i int) int {
		if byteOff == nil {
			return i
		}
		return byteOff[i]
	}
	var out [][2]int
	m, err := p.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			out = append(out, [2]int{conv(m.Index), conv(m.Index + m.Length)})
		}
		m, err = p.re.FindNextMatch(m)
	}
	// err is only a match timeout, and none is set.
	return out
}

// FindMatches implements normalizer.Pattern: it covers the whole string with
// contiguous spans, each flagged as a match or not.
func (p *RegexPattern) FindMatches(inside string) []normalizer.OffsetsMatch {
	if inside == "" {
		return []normalizer.OffsetsMatch{{Offsets: []int{0, 0}, Match: false}}
	}
	var out []normalizer.OffsetsMatch
	prev := 0
	for _, m := range p.matches(inside) {
		if m[0] > prev {
			out = append(out, normalizer.OffsetsMatch{Offsets: []int{prev, m[0]}, Match: false})
		}
		out = append(out, normalizer.OffsetsMatch{Offsets: []int{m[0], m[1]}, Match: true})
		prev = m[1]
	}
	if prev < len(inside) {
		out = append(out, normalizer.OffsetsMatch{Offsets: []int{prev, len(inside)}, Match: false})
	}
	return out
}

// Split is HF's Split pre-tokenizer with its pattern on regexp2.
type Split struct {
	pattern  *RegexPattern
	behavior normalizer.SplitDelimiterBehavior
	invert   bool
	inner    *pretokenizer.Split // sugarme's Split on our pattern, for the sugarme pipeline
}

var _ stringPreTokenizer = (*Split)(nil)

func newSplit(p *RegexPattern, behavior string, invert bool) (*Split, error) {
	b, err := splitBehavior(behavior)
	if err != nil {
		return nil, err
	}
	return &Split{pattern: p, behavior: b, invert: invert, inner: pretokenizer.NewSplit(p, b, invert)}, nil
}

func splitBehavior(s string) (normalizer.SplitDelimiterBehavior, error) {
	switch s {
	case "Removed":
		return normalizer.RemovedBehavior, nil
	case "Isolated":
		return normalizer.IsolatedBehavior, nil
	case "MergedWithPrevious":
		return normalizer.MergedWithPreviousBehavior, nil
	case "MergedWithNext":
		return normalizer.MergedWithNextBehavior, nil
	case "Contiguous":
		return normalizer.ContiguousBehavior, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// PreTokenize implements sugarme's tokenizer.PreTokenizer.
func (s *Split) PreTokenize(p *sugar.PreTokenizedString) (*sugar.PreTokenizedString, error) {
	return s.inner.PreTokenize(p)
}

type span struct {
	start, end int
	match      bool
}

func (s *Split) splitString(dst []string, text string) []string {
	if text == "" {
		return dst
	}
	var spans []span
	prev := 0
	for _, m := range s.pattern.matches(text) {
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], s.invert})
		}
		spans = append(spans, span{m[0], m[1], !s.invert})
		prev = m[1]
	}
	if prev < len(text) {
		spans = append(spans, span{prev, len(text), s.invert})
	}
	spans = applyBehavior(spans, s.behavior)
	for _, sp := range spans {
		if sp.end > sp.start {
			dst = append(dst, text[sp.start:sp.end])
		}
	}
	return dst
}

// applyBehavior turns match/non-match spans into the kept pieces, as HF's
// NormalizedString::split does for each SplitDelimiterBehavior.
func applyBehavior(spans []span, b normalizer.SplitDelimiterBehavior) []span {
	switch b {
	case normalizer.IsolatedBehavior:
		return spans
	case normalizer.RemovedBehavior:
		out := spans[:0]
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
		return out
	case normalizer.MergedWithPreviousBehavior:
		var out []span
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		return out
	case normalizer.MergedWithNextBehavior:
		var out []span
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	case normalizer.ContiguousBehavior:
		// Runs of spans with the same flag merge (after invert, runs of
		// non-matches of the pattern too).
		var out []span
		prevMatch := false
		for _, sp := range spans {
			if sp.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, sp.match})
			}
			prevMatch = sp.match
		}
		return out
	}
	return spans
}

// gpt2Pattern is the split regex of HF's ByteLevel pre-tokenizer.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// ByteLevel is HF's ByteLevel pre-tokenizer: optionally a leading space and
// the GPT-2 split (use_regex), then every byte mapped to its printable
// stand-in character. sugarme's ByteLevel always splits, with a pattern that
// lacks the whitespace rules, and has no use_regex.
type ByteLevel struct {
	AddPrefixSpace bool
	UseRegex       bool
	split          *Split
}

var _ stringPreTokenizer = (*ByteLevel)(nil)

func newByteLevel(addPrefixSpace, useRegex bool) (*ByteLevel, error) {
	bl := &ByteLevel{AddPrefixSpace: addPrefixSpace, UseRegex: useRegex}
	if useRegex {
		p, err := NewRegexPattern(gpt2Pattern)
		if err != nil {
			return nil, err
		}
		bl.split, err = newSplit(p, "Isolated", false)
		if err != nil {
			return nil, err
		}
	}
	return bl, nil
}

func (bl *ByteLevel) splitString(dst []string, s string) []string {
	if s == "" {
		return dst
	}
	if bl.AddPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	start := len(dst)
	if bl.UseRegex {
		dst = bl.split.splitString(dst, s)
	} else {
		dst = append(dst, s)
	}
	for i := start; i < len(dst); i++ {
		dst[i] = byteLevelString(dst[i])
	}
	return dst
}

// PreTokenize implements sugarme's tokenizer.PreTokenizer.
func (bl *ByteLevel) PreTokenize(p *sugar.PreTokenizedString) (*sugar.PreTokenizedString, error) {
	p = p.Split(func(_ int, n *normalizer.NormalizedString) []sugar.SplitIdx {
		if bl.AddPrefixSpace && !strings.HasPrefix(n.GetNormalized(), " ") {
			n = n.Prepend(" ")
		}
		if !bl.UseRegex {
			return []sugar.SplitIdx{{Normalized: n}}
		}
		parts := n.Split(bl.split.pattern, normalizer.IsolatedBehavior)
		out := make([]sugar.SplitIdx, len(parts))
		for i := range parts {
			out[i] = sugar.SplitIdx{Normalized: &parts[i]}
		}
		return out
	})
	return p.Normalize(func(n *normalizer.NormalizedString) *normalizer.NormalizedString {
		var changes []normalizer.ChangeMap
		for _, r := range n.GetNormalized() {
			var buf [utf8.UTFMax]byte
			k := utf8.EncodeRune(buf[:], r)
			for i := 0; i < k; i++ {
				change := 0
				if i > 0 {
					change = 1
				}
				changes = append(changes, normalizer.ChangeMap{RuneVal: byteChars[buf[i]], Changes: change})
			}
		}
		return n.Transform(changes, 0)
	}), nil
}

// byteChars maps each byte to the printable character GPT-2's byte-level BPE
// uses for it; charBytes is the inverse.
var byteChars, charBytes = func() ([256]string, map[rune]byte) {
	var bc [256]string
	cb := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = rune(256 + n)
			n++
		}
		bc[b] = string(r)
		cb[r] = byte(b)
	}
	return bc, cb
}()

func byteLevelString(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteString(byteChars[s[i]])
	}
	return b.String()
}

// sequencePreTokenizer applies pre-tokenizers in turn (HF's Sequence).
type sequencePreTokenizer struct {
	steps []stringPreTokenizer
	inner *pretokenizer.Sequence
}

var _ stringPreTokenizer = (*sequencePreTokenizer)(nil)

func (s *sequencePreTokenizer) PreTokenize(p *sugar.PreTokenizedString) (*sugar.PreTokenizedString, error) {
	return s.inner.PreTokenize(p)
}

func (s *sequencePreTokenizer) splitString(dst []string, text string) []string {
	cur := []string{text}
	var next []string
	for _, st := range s.steps {
		next = next[:0]
		for _, w := range cur {
			next = st.splitString(next, w)
		}
		cur, next = next, cur
	}
	return append(dst, cur...)
}
