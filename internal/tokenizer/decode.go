package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/decoder"
	"github.com/sugarme/tokenizer/pretrained"
)

// ByteLevelDecoder is HF's ByteLevel decoder: each token's stand-in
// characters back to bytes (a token with any other character is taken as its
// own UTF-8 bytes), then the bytes as text with invalid UTF-8 replaced as
// Rust's from_utf8_lossy does. sugarme's maps unknown characters to byte 0
// and keeps invalid UTF-8.
type ByteLevelDecoder struct{}

var _ sugar.Decoder = ByteLevelDecoder{}

// DecodeChain implements sugarme's tokenizer.Decoder.
func (ByteLevelDecoder) DecodeChain(tokens []string) []string {
	var buf []byte
	for _, t := range tokens {
		start := len(buf)
		ok := true
		for _, r := range t {
			b, found := charBytes[r]
			if !found {
				ok = false
				break
			}
			buf = append(buf, b)
		}
		if !ok {
			buf = append(buf[:start], t...)
		}
	}
	return []string{lossyBytes(buf)}
}

// Decode implements sugarme's tokenizer.Decoder.
func (d ByteLevelDecoder) Decode(tokens []string) string {
	return strings.Join(d.DecodeChain(tokens), "")
}

// StripDecoder is HF's Strip decoder: it removes up to Start leading and Stop
// trailing Content characters from each token. sugarme's indexes past the end
// of short tokens and panics.
type StripDecoder struct {
	Content     rune
	Start, Stop int
}

var _ sugar.Decoder = StripDecoder{}

// DecodeChain implements sugarme's tokenizer.Decoder.
func (d StripDecoder) DecodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		chars := []rune(t)
		lo := 0
		for k := 0; k < d.Start && k < len(chars) && chars[k] == d.Content; k++ {
			lo = k + 1
		}
		hi := len(chars)
		for k := 0; k < d.Stop; k++ {
			j := len(chars) - k - 1
			if j < lo || chars[j] != d.Content {
				break
			}
			hi = j
		}
		out[i] = string(chars[lo:hi])
	}
	return out
}

// Decode implements sugarme's tokenizer.Decoder.
func (d StripDecoder) Decode(tokens []string) string {
	return strings.Join(d.DecodeChain(tokens), "")
}

// buildDecoder returns the decoder for an HF decoder config: ours where
// sugarme's differs from HF, sugarme's otherwise. nil config gives nil.
func buildDecoder(raw json.RawMessage) (sugar.Decoder, error) {
	typ, err := typed(raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "":
		return nil, nil
	case "ByteLevel":
		return ByteLevelDecoder{}, nil
	case "Strip":
		var c struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(c.Content) != 1 {
			return nil, fmt.Errorf("strip decoder: content %q is not one character", c.Content)
		}
		r, _ := utf8.DecodeRuneInString(c.Content)
		return StripDecoder{Content: r, Start: c.Start, Stop: c.Stop}, nil
	case "Sequence":
		var c struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		var steps []sugar.Decoder
		for _, sub := range c.Decoders {
			d, err := buildDecoder(sub)
			if err != nil {
				return nil, err
			}
			if d != nil {
				steps = append(steps, d)
			}
		}
		return decoder.NewSequence(steps), nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	var d sugar.Decoder
	err = catch(func() error {
		var err error
		d, err = pretrained.CreateDecoder(m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decoder %s: %w", typ, err)
	}
	return d, nil
}

// catch runs f and turns a panic (sugarme panics on inputs it does not
// expect) into an error.
func catch(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sugarme panicked: %v", r)
		}
	}()
	return f()
}
