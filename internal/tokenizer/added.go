package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's "added_tokens".
type addedToken struct {
	id         int
	content    string
	special    bool
	normalized bool
	lstrip     bool
	rstrip     bool
	singleWord bool
}

// addedVocab holds the added tokens and finds them in text the way HF's
// AddedVocabulary does: leftmost-longest, non-normalized tokens on the raw
// text, normalized ones on each normalized piece. sugarme's matcher drops
// matches when the text holds several different added tokens.
type addedVocab struct {
	byID      map[int]*addedToken
	byContent map[string]*addedToken
	raw       tokenMatcher // normalized == false
	norm      tokenMatcher // normalized == true
}

type tokenMatcher struct {
	byFirst map[byte][]*addedToken // by first byte, longest first
}

func newAddedVocab(toks []addedToken) *addedVocab {
	v := &addedVocab{
		byID:      make(map[int]*addedToken, len(toks)),
		byContent: make(map[string]*addedToken, len(toks)),
		raw:       tokenMatcher{byFirst: map[byte][]*addedToken{}},
		norm:      tokenMatcher{byFirst: map[byte][]*addedToken{}},
	}
	for i := range toks {
		t := &toks[i]
		v.byID[t.id] = t
		v.byContent[t.content] = t
		if t.content == "" {
			continue
		}
		m := &v.raw
		if t.normalized {
			m = &v.norm
		}
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
	}
	for _, m := range []*tokenMatcher{&v.raw, &v.norm} {
		for _, l := range m.byFirst {
			sort.SliceStable(l, func(i, j int) bool { return len(l[i].content) > len(l[j].content) })
		}
	}
	return v
}

func (m *tokenMatcher) empty() bool { return len(m.byFirst) == 0 }

// segment is a piece of text, or an added token (id >= 0).
type segment struct {
	text string
	id   int
}

// split cuts text into plain segments and added-token segments.
func (m *tokenMatcher) split(dst []segment, text string) []segment {
	if m.empty() {
		return append(dst, segment{text: text, id: -1})
	}
	prev := 0
	for i := 0; i < len(text); i++ {
		cands := m.byFirst[text[i]]
		if cands == nil {
			continue
		}
		var hit *addedToken
		for _, t := range cands {
			if len(text)-i >= len(t.content) && text[i:i+len(t.content)] == t.content {
				if t.singleWord && !singleWordOK(text, i, i+len(t.content)) {
					continue
				}
				hit = t
				break
			}
		}
		if hit == nil {
			continue
		}
		start, end := i, i+len(hit.content)
		if hit.lstrip {
			for start > prev {
				r, n := utf8.DecodeLastRuneInString(text[prev:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if hit.rstrip {
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += n
			}
		}
		if start > prev {
			dst = append(dst, segment{text: text[prev:start], id: -1})
		}
		dst = append(dst, segment{text: text[start:end], id: hit.id})
		prev = end
		i = end - 1
	}
	if prev < len(text) {
		dst = append(dst, segment{text: text[prev:], id: -1})
	}
	return dst
}

func isWordChar(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func singleWordOK(text string, start, end int) bool {
	if start > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:start])
		if isWordChar(r) {
			return false
		}
	}
	if end < len(text) {
		r, _ := utf8.DecodeRuneInString(text[end:])
		if isWordChar(r) {
			return false
		}
	}
	return true
}
