package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// fastSplitter is a hand-written matcher for one of the split patterns that
// byte-level BPE tokenizers ship (GPT-2, Llama 3, Qwen 2/3). It returns the
// same matches as regexp2 on the pattern text, several times faster; tests
// compare the two on the corpus and on random strings. Other patterns run on
// regexp2.
type fastSplitter struct {
	// caseFoldContractions: (?i:'s|'t|...) instead of 's|'t|...
	caseFoldContractions bool
	// llamaLetters: [^\r\n\p{L}\p{N}]?\p{L}+ instead of ` ?\p{L}+`
	llamaLetters bool
	// maxDigits bounds \p{N} runs (0: unbounded, with GPT-2's optional space)
	maxDigits int
	// newlines: the llama alternatives ` ?[^\s\p{L}\p{N}]+[\r\n]*` and
	// `\s*[\r\n]+`
	newlines bool
}

var knownPatterns = map[string]*fastSplitter{
	gpt2Pattern: {},
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: {
		caseFoldContractions: true, llamaLetters: true, maxDigits: 3, newlines: true,
	},
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: {
		caseFoldContractions: true, llamaLetters: true, maxDigits: 1, newlines: true,
	},
}

func isL(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

func isN(r rune) bool {
	if r < utf8.RuneSelf {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

func isS(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return unicode.IsSpace(r)
}

func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// run returns the end of the run of runes satisfying f starting at i.
func run(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !f(r) {
			break
		}
		i += n
	}
	return i
}

// matches appends the [start, end) spans of the pattern's matches in s. The
// alternatives are tried in the pattern's order, as a backtracking engine
// does; every position matches one of them, so the spans tile s.
func (f *fastSplitter) matches(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		e := f.matchAt(s, i)
		dst = append(dst, [2]int{i, e})
		i = e
	}
	return dst
}

func (f *fastSplitter) matchAt(s string, i int) int {
	c, n := runeAt(s, i)
	// 's|'t|'re|'ve|'m|'ll|'d
	if c == '\'' {
		if e := f.contraction(s, i+1); e > 0 {
			return e
		}
	}
	// letters
	if f.llamaLetters {
		if isL(c) {
			return run(s, i+n, isL)
		}
		if c != '\r' && c != '\n' && !isN(c) {
			if r, m := runeAt(s, i+n); m > 0 && isL(r) {
				return run(s, i+n+m, isL)
			}
		}
	} else {
		if isL(c) {
			return run(s, i+n, isL)
		}
		if c == ' ' {
			if r, m := runeAt(s, i+1); m > 0 && isL(r) {
				return run(s, i+1+m, isL)
			}
		}
	}
	// digits
	if f.maxDigits > 0 {
		if isN(c) {
			e := i + n
			for k := 1; k < f.maxDigits; k++ {
				r, m := runeAt(s, e)
				if m == 0 || !isN(r) {
					break
				}
				e += m
			}
			return e
		}
	} else {
		if isN(c) {
			return run(s, i+n, isN)
		}
		if c == ' ' {
			if r, m := runeAt(s, i+1); m > 0 && isN(r) {
				return run(s, i+1+m, isN)
			}
		}
	}
	// ` ?[^\s\p{L}\p{N}]+` (llama: followed by [\r\n]*)
	other := -1
	if isOther(c) {
		other = run(s, i+n, isOther)
	} else if c == ' ' {
		if r, m := runeAt(s, i+1); m > 0 && isOther(r) {
			other = run(s, i+1+m, isOther)
		}
	}
	if other >= 0 {
		if f.newlines {
			for other < len(s) && (s[other] == '\r' || s[other] == '\n') {
				other++
			}
		}
		return other
	}
	// c is whitespace from here on.
	end := run(s, i, isS)
	if f.newlines {
		// \s*[\r\n]+ : up to the last \r or \n of the whitespace run.
		for k := end - 1; k >= i; k-- {
			// Bytes of multi-byte runes are >= 0x80, never \r or \n.
			if s[k] == '\r' || s[k] == '\n' {
				return k + 1
			}
		}
	}
	// \s+(?!\S) : the run, or the run minus its last rune when a non-space follows.
	if end == len(s) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[i:end])
	if end-last > i {
		return end - last
	}
	// \s+
	return end
}

// contraction matches s|t|re|ve|m|ll|d at i (after the apostrophe) and
// returns the end, or 0.
func (f *fastSplitter) contraction(s string, i int) int {
	lower := func(k int) byte {
		if k >= len(s) {
			return 0
		}
		b := s[k]
		if f.caseFoldContractions && 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return b
	}
	switch lower(i) {
	case 's', 't', 'm', 'd':
		return i + 1
	case 'r', 'v':
		if lower(i+1) == 'e' {
			return i + 2
		}
	case 'l':
		if lower(i+1) == 'l' {
			return i + 2
		}
	}
	return 0
}
