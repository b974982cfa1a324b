package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2"
	"github.com/sugarme/tokenizer/normalizer"
	"golang.org/x/text/unicode/norm"
)

// normalizerAdapter lets sugarme's pipeline run one of our normalizers. The
// result starts a new NormalizedString: offsets into the original text are
// not kept, and ids do not need them.
type normalizerAdapter struct{ n stringNormalizer }

var _ normalizer.Normalizer = normalizerAdapter{}

// Normalize implements sugarme's normalizer.Normalizer.
func (a normalizerAdapter) Normalize(ns *normalizer.NormalizedString) (*normalizer.NormalizedString, error) {
	return normalizer.NewNormalizedFrom(a.n.normalizeString(ns.GetNormalized())), nil
}

// stringNormalizer is the fast path's normalizer: string in, string out.
type stringNormalizer interface {
	normalizeString(s string) string
}

type normalizerFunc func(string) string

func (f normalizerFunc) normalizeString(s string) string { return f(s) }

type normalizerSeq []stringNormalizer

func (q normalizerSeq) normalizeString(s string) string {
	for _, n := range q {
		s = n.normalizeString(s)
	}
	return s
}

// buildStringNormalizer returns the fast-path normalizer for an HF normalizer
// config, or ok=false when this package has none for it (the sugarme
// pipeline is used then).
func buildStringNormalizer(raw json.RawMessage) (n stringNormalizer, ok bool, err error) {
	typ, err := typed(raw)
	if err != nil {
		return nil, false, err
	}
	switch typ {
	case "":
		return nil, true, nil
	case "NFC":
		return normalizerFunc(norm.NFC.String), true, nil
	case "NFD":
		return normalizerFunc(norm.NFD.String), true, nil
	case "NFKC":
		return normalizerFunc(norm.NFKC.String), true, nil
	case "NFKD":
		return normalizerFunc(norm.NFKD.String), true, nil
	case "Lowercase":
		return normalizerFunc(lowercase), true, nil
	case "Strip":
		var c struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, false, err
		}
		return normalizerFunc(func(s string) string {
			if c.Left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if c.Right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}), true, nil
	case "Prepend":
		var c struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, false, err
		}
		return normalizerFunc(func(s string) string {
			if s == "" {
				return s
			}
			return c.Prepend + s
		}), true, nil
	case "Replace":
		var c struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, false, err
		}
		switch {
		case c.Pattern.String != nil:
			from := *c.Pattern.String
			if from == "" {
				return nil, false, fmt.Errorf("replace normalizer: empty pattern")
			}
			return normalizerFunc(func(s string) string { return strings.ReplaceAll(s, from, c.Content) }), true, nil
		case c.Pattern.Regex != nil:
			re, err := regexp2.Compile(*c.Pattern.Regex, regexp2.Unicode)
			if err != nil {
				return nil, false, fmt.Errorf("replace normalizer: %w", err)
			}
			return normalizerFunc(func(s string) string {
				out, err := re.ReplaceFunc(s, func(regexp2.Match) string { return c.Content }, -1, -1)
				if err != nil {
					return s
				}
				return out
			}), true, nil
		}
		return nil, false, fmt.Errorf("replace normalizer: pattern needs String or Regex")
	case "Sequence":
		var c struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, false, err
		}
		var seq normalizerSeq
		for _, sub := range c.Normalizers {
			n, ok, err := buildStringNormalizer(sub)
			if err != nil || !ok {
				return nil, ok, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, true, nil
	}
	return nil, false, nil
}

// lowercase maps each character to its lowercase as Rust's char::to_lowercase
// does (HF's Lowercase normalizer): like strings.ToLower, except that U+0130
// (İ) becomes "i" + U+0307, its full lowercase mapping. No context rules
// (final sigma stays σ), as in HF.
func lowercase(s string) string {
	if !strings.ContainsRune(s, '\u0130') {
		return strings.ToLower(s)
	}
	return strings.ToLower(strings.ReplaceAll(s, "\u0130", "i\u0307"))
}
