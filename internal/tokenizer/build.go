package tokenizer

import (
	"encoding/json"
	"fmt"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// buildPreTokenizer returns the sugarme pre-tokenizer for an HF config and,
// when this package implements it, its string form (else nil).
func buildPreTokenizer(raw json.RawMessage) (sugar.PreTokenizer, stringPreTokenizer, error) {
	typ, err := typed(raw)
	if err != nil {
		return nil, nil, err
	}
	switch typ {
	case "":
		return nil, nil, nil
	case "Split":
		var c struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, err
		}
		var src string
		switch {
		case c.Pattern.Regex != nil:
			src = *c.Pattern.Regex
		case c.Pattern.String != nil:
			src = regexpQuote(*c.Pattern.String)
		default:
			return nil, nil, fmt.Errorf("split: pattern needs String or Regex")
		}
		p, err := NewRegexPattern(src)
		if err != nil {
			return nil, nil, fmt.Errorf("split: %w", err)
		}
		s, err := newSplit(p, c.Behavior, c.Invert)
		if err != nil {
			return nil, nil, fmt.Errorf("split: %w", err)
		}
		return s, s, nil
	case "Digits":
		// Hugging Face splits off each numeric char (individual_digits)
		// or each run of them, isolated: the same as a Split on \p{N} or
		// \p{N}+ (Rust's char::is_numeric is Nd, Nl and No, Go's \p{N}).
		var c struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, err
		}
		src := `\p{N}+`
		if c.Individual {
			src = `\p{N}`
		}
		p, err := NewRegexPattern(src)
		if err != nil {
			return nil, nil, fmt.Errorf("digits: %w", err)
		}
		s, err := newSplit(p, "Isolated", false)
		if err != nil {
			return nil, nil, fmt.Errorf("digits: %w", err)
		}
		return s, s, nil
	case "ByteLevel":
		c := struct {
			AddPrefixSpace bool `json:"add_prefix_space"`
			UseRegex       bool `json:"use_regex"`
		}{UseRegex: true}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, err
		}
		bl, err := newByteLevel(c.AddPrefixSpace, c.UseRegex)
		if err != nil {
			return nil, nil, err
		}
		return bl, bl, nil
	case "Sequence":
		var c struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, err
		}
		var steps []sugar.PreTokenizer
		var fast []stringPreTokenizer
		allFast := true
		for _, sub := range c.PreTokenizers {
			s, f, err := buildPreTokenizer(sub)
			if err != nil {
				return nil, nil, err
			}
			if s == nil {
				continue
			}
			steps = append(steps, s)
			fast = append(fast, f)
			allFast = allFast && f != nil
		}
		seq := &sequencePreTokenizer{steps: fast, inner: pretokenizer.NewSequence(steps)}
		if !allFast {
			return seq.inner, nil, nil
		}
		return seq, seq, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, err
	}
	var p sugar.PreTokenizer
	err = catch(func() error {
		var err error
		p, err = pretrained.CreatePreTokenizer(m)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("pre-tokenizer %s: %w", typ, err)
	}
	return p, nil, nil
}

// buildModel returns the model: ours for BPE, sugarme's for the others.
func buildModel(raw json.RawMessage) (sugar.Model, *BPE, error) {
	typ, err := typed(raw)
	if err != nil {
		return nil, nil, err
	}
	if typ == "" || typ == "BPE" {
		var c bpeConfig
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, fmt.Errorf("bpe model: %w", err)
		}
		merges, err := parseMerges(c.Merges)
		if err != nil {
			return nil, nil, fmt.Errorf("bpe model: %w", err)
		}
		m, err := newBPE(c, merges)
		if err != nil {
			return nil, nil, err
		}
		return m, m, nil
	}
	var cfg sugar.Config
	if err := json.Unmarshal([]byte(`{"model":`+string(raw)+`}`), &cfg); err != nil {
		return nil, nil, err
	}
	var m sugar.Model
	err = catch(func() error {
		var err error
		m, err = pretrained.CreateModel(&cfg)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", typ, err)
	}
	return m, nil, nil
}

func regexpQuote(s string) string {
	const special = `\.+*?()|[]{}^$#`
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(special); j++ {
			if s[i] == special[j] {
				out = append(out, '\\')
				break
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
