package tokenizer

import (
	"encoding/json"
)

// MaxBytesPerToken returns n such that no token of an encoding stands for
// more than n bytes of the text given to Encode: a text longer than k*n bytes
// encodes to more than k tokens. Callers use it to cut a long text to a
// prefix that is sure to hold the first k tokens' worth of input before
// tokenizing it, so that work stays proportional to k, not to the text.
//
// ok is false when the tokenizer may fold unbounded input into one token or
// drop input: a model other than BPE, unknown characters fused into one
// <unk> or dropped, a normalizer that deletes text (Strip, a Replace by a
// regular expression or by less), a Split pre-tokenizer that removes its
// matches, or added tokens that swallow the white space beside them.
func (t *Tokenizer) MaxBytesPerToken() (n int, ok bool) {
	return t.bytesPerToken, t.bytesPerToken > 0
}

// normShrink is the most by which a shrinking normalizer divides a text's
// length in bytes. Unicode normalization and lowercasing map a character or a
// canonical sequence to one of at least a quarter of its UTF-8 length (the
// worst cases: a 4-byte mathematical letter to ASCII under NFKC; a Hangul
// L+V+T jamo sequence of 9 bytes to one 3-byte syllable; a 3-byte Kelvin
// sign to "k").
const normShrink = 4

// computeBytesPerToken works out MaxBytesPerToken from tokenizer.json; 0
// when no bound holds.
func computeBytesPerToken(cfg fileConfig, bpe *BPE) int {
	if bpe == nil || bpe.prefix != "" || bpe.suffix != "" {
		return 0
	}
	shrink := normalizerShrink(cfg.Normalizer)
	if shrink == 0 {
		return 0
	}
	byteLevel, removes := preTokenizerTraits(cfg.PreTokenizer)
	if removes {
		return 0
	}
	// Every character must become at least one token, never vanish and
	// never merge with its unknown neighbours into one <unk>.
	switch {
	case bpe.byteFallback && allBytes(func(b int) bool { return bpe.byteIDs[b] >= 0 }):
	case bpe.hasUnk && !bpe.fuseUnk:
	case byteLevel && allBytes(func(b int) bool { _, ok := bpe.vocab[byteChars[b]]; return ok }):
	default:
		return 0
	}
	per := 4 // an <unk> or a byte-fallback token: one character, at most 4 bytes
	for _, tok := range bpe.tokens {
		per = max(per, len(tok)) // a byte-level character is 1 input byte, 1 or 2 bytes here
	}
	for _, a := range cfg.AddedTokens {
		if a.LStrip || a.RStrip {
			return 0
		}
		per = max(per, len(a.Content))
	}
	return per * shrink
}

func allBytes(known func(b int) bool) bool {
	for b := 0; b < 256; b++ {
		if !known(b) {
			return false
		}
	}
	return true
}

// normalizerShrink returns the factor by which the normalizer can shorten a
// text (1: never), or 0 when it can delete text outright.
func normalizerShrink(raw json.RawMessage) int {
	typ, err := typed(raw)
	if err != nil {
		return 0
	}
	switch typ {
	case "", "Prepend":
		return 1
	case "NFC", "NFD", "NFKC", "NFKD", "Lowercase":
		return normShrink
	case "Replace":
		var c struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if json.Unmarshal(raw, &c) != nil || c.Pattern.String == nil || *c.Pattern.String == "" || c.Content == "" {
			return 0
		}
		from := len(*c.Pattern.String)
		return max(1, (from+len(c.Content)-1)/len(c.Content))
	case "Sequence":
		var c struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return 0
		}
		f := 1
		for _, sub := range c.Normalizers {
			s := normalizerShrink(sub)
			if s == 0 {
				return 0
			}
			f *= s
		}
		return f
	}
	return 0 // Strip, regex Replace, Precompiled, BertNormalizer...: may delete
}

// preTokenizerTraits tells whether the pre-tokenizer maps bytes to
// byte-level characters and whether it may remove text. Pre-tokenizers it
// does not know count as removing.
func preTokenizerTraits(raw json.RawMessage) (byteLevel, removes bool) {
	typ, err := typed(raw)
	if err != nil {
		return false, true
	}
	switch typ {
	case "":
		return false, false
	case "ByteLevel":
		return true, false
	case "Digits":
		return false, false
	case "Split":
		var c struct {
			Behavior string `json:"behavior"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return false, true
		}
		return false, c.Behavior == "Removed"
	case "Sequence":
		var c struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return false, true
		}
		for _, sub := range c.PreTokenizers {
			bl, rm := preTokenizerTraits(sub)
			byteLevel = byteLevel || bl
			removes = removes || rm
		}
		return byteLevel, removes
	}
	return false, true
}
