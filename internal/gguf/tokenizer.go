package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	tokenUnknown     = 2
	tokenControl     = 3
	tokenUserDefined = 4
	tokenByte        = 6 // normal (1) and unused (5) tokens are only in the vocabulary
)

// preTokenizers maps tokenizer.ggml.pre to the Hugging Face pre-tokenizer
// that splits text as llama.cpp's regexes for that name do:
//
//   - "gpt2": the GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
//     ?[^\s\p{L}\p{N}]+|\s+(?!\S), which is ByteLevel's own (use_regex).
//   - "smollm": "\p{N}" first, then the GPT-2 pattern; Digits with
//     individual_digits isolates every \p{N} character the same way, and is
//     what SmolLM's own tokenizer.json uses.
//
// llama.cpp's "default" (no or unknown tokenizer.ggml.pre) adds punctuation
// and 3-digit splits that no Hugging Face tokenizer.json reproduces exactly,
// so it, like every other name, is refused rather than guessed.
var preTokenizers = map[string]any{
	"gpt2": byteLevel(),
	"smollm": map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Digits", "individual_digits": true},
		byteLevel(),
	}},
}

func byteLevel() map[string]any {
	return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
}

// hfTokenizer is the pair of files Hugging Face loads a tokenizer from.
type hfTokenizer struct {
	JSON   []byte         // tokenizer.json
	Config map[string]any // tokenizer_config.json
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// buildTokenizer makes a byte-level BPE tokenizer.json and its
// tokenizer_config.json from the tokenizer.ggml.* metadata: vocabulary in id
// order, merges as stored, control (and unknown) tokens as special added
// tokens, user-defined tokens as non-special added tokens, the
// pre-tokenizer chosen by tokenizer.ggml.pre, a ByteLevel decoder, and BOS/EOS
// added by a TemplateProcessing post-processor only when
// tokenizer.ggml.add_bos_token / add_eos_token say so.
//
// vocab is the number of embedding rows: a model cannot have fewer than
// there are tokens.
func buildTokenizer(md Metadata, vocab, maxLen int) (*hfTokenizer, error) {
	model, err := md.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	if model != "gpt2" {
		return nil, fmt.Errorf("tokenizer.ggml.model %q (want gpt2, byte-level BPE): %w", model, ErrUnsupported)
	}
	preName := "default"
	if md.Has("tokenizer.ggml.pre") {
		if preName, err = md.String("tokenizer.ggml.pre"); err != nil {
			return nil, err
		}
	}
	pre, ok := preTokenizers[preName]
	if !ok {
		return nil, fmt.Errorf("tokenizer.ggml.pre %q (want gpt2 or smollm): %w", preName, ErrUnsupported)
	}
	tokens, err := md.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	if len(tokens) > vocab {
		return nil, fmt.Errorf("%d tokens but %d embedding rows: %w", len(tokens), vocab, ErrMalformed)
	}
	types := make([]int, len(tokens))
	if md.Has("tokenizer.ggml.token_type") {
		if types, err = md.Ints("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
		if len(types) != len(tokens) {
			return nil, fmt.Errorf("%d token types for %d tokens: %w", len(types), len(tokens), ErrMalformed)
		}
	}
	merges, err := md.Strings("tokenizer.ggml.merges")
	if err != nil {
		return nil, err
	}

	// The vocabulary is written by hand to keep id order (a Go map would sort
	// it by token).
	var vocabJSON bytes.Buffer
	vocabJSON.WriteByte('{')
	seen := make(map[string]int, len(tokens))
	var added []addedToken
	for id, tok := range tokens {
		if prev, dup := seen[tok]; dup {
			return nil, fmt.Errorf("token %q is both id %d and id %d: %w", tok, prev, id, ErrMalformed)
		}
		seen[tok] = id
		if id > 0 {
			vocabJSON.WriteByte(',')
		}
		vocabJSON.Write(jsonString(tok))
		fmt.Fprintf(&vocabJSON, ":%d", id)
		switch types[id] {
		case tokenControl, tokenUnknown:
			added = append(added, addedToken{ID: id, Content: tok, Special: true})
		case tokenUserDefined:
			added = append(added, addedToken{ID: id, Content: tok})
		case tokenByte:
			return nil, fmt.Errorf("token %d %q has type byte, which byte-level BPE does not use: %w", id, tok, ErrUnsupported)
		}
	}
	vocabJSON.WriteByte('}')
	for i, m := range merges {
		a, b, ok := bytes.Cut([]byte(m), []byte(" "))
		if !ok || len(a) == 0 || len(b) == 0 {
			return nil, fmt.Errorf("merge %d %q is not \"left right\": %w", i, m, ErrMalformed)
		}
	}

	special := func(key string) (string, int, error) {
		if !md.Has(key) {
			return "", -1, nil
		}
		id, err := md.Int(key)
		if err != nil {
			return "", -1, err
		}
		if id < 0 || id >= len(tokens) {
			return "", -1, fmt.Errorf("%s = %d, outside the %d tokens: %w", key, id, len(tokens), ErrMalformed)
		}
		return tokens[id], id, nil
	}
	flag := func(key string) (bool, error) {
		if !md.Has(key) {
			return false, nil
		}
		return md.Bool(key)
	}
	cfg := map[string]any{
		"tokenizer_class":              "GPT2Tokenizer",
		"model_max_length":             maxLen,
		"clean_up_tokenization_spaces": false,
	}
	ids := map[string]int{}
	for _, s := range []string{"bos", "eos", "unk", "pad"} {
		key := map[string]string{"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "pad": "padding_token_id"}[s]
		tok, id, err := special("tokenizer.ggml." + key)
		if err != nil {
			return nil, err
		}
		if id >= 0 {
			cfg[s+"_token"] = tok
		}
		ids[s] = id
	}
	addBOS, err := flag("tokenizer.ggml.add_bos_token")
	if err != nil {
		return nil, err
	}
	addEOS, err := flag("tokenizer.ggml.add_eos_token")
	if err != nil {
		return nil, err
	}
	cfg["add_bos_token"], cfg["add_eos_token"] = addBOS, addEOS
	if md.Has("tokenizer.chat_template") {
		if cfg["chat_template"], err = md.String("tokenizer.chat_template"); err != nil {
			return nil, err
		}
	}
	post, err := postProcessor(tokens, addBOS, addEOS, ids["bos"], ids["eos"])
	if err != nil {
		return nil, err
	}
	if added == nil {
		added = []addedToken{}
	}

	tj := struct {
		Version       string          `json:"version"`
		Truncation    any             `json:"truncation"`
		Padding       any             `json:"padding"`
		AddedTokens   []addedToken    `json:"added_tokens"`
		Normalizer    any             `json:"normalizer"`
		PreTokenizer  any             `json:"pre_tokenizer"`
		PostProcessor any             `json:"post_processor"`
		Decoder       any             `json:"decoder"`
		Model         json.RawMessage `json:"model"`
	}{
		Version:       "1.0",
		AddedTokens:   added,
		PreTokenizer:  pre,
		PostProcessor: post,
		Decoder:       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
	}
	mergesJSON, err := json.Marshal(merges)
	if err != nil {
		return nil, err
	}
	var mb bytes.Buffer
	mb.WriteString(`{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,` +
		`"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":`)
	mb.Write(vocabJSON.Bytes())
	mb.WriteString(`,"merges":`)
	mb.Write(mergesJSON)
	mb.WriteByte('}')
	tj.Model = mb.Bytes()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tj); err != nil {
		return nil, fmt.Errorf("encode tokenizer.json: %w", err)
	}
	return &hfTokenizer{JSON: bytes.TrimRight(out.Bytes(), "\n"), Config: cfg}, nil
}

// postProcessor adds BOS/EOS when the metadata asks for them; otherwise it is
// the ByteLevel post-processor byte-level tokenizers carry, which adds
// nothing.
func postProcessor(tokens []string, addBOS, addEOS bool, bos, eos int) (any, error) {
	if !addBOS && !addEOS {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}, nil
	}
	var single, pair []any
	specials := map[string]any{}
	piece := func(id int, what string) (any, error) {
		if id < 0 {
			return nil, fmt.Errorf("add_%s_token is set but there is no %s token id: %w", what, what, ErrMalformed)
		}
		specials[tokens[id]] = map[string]any{"id": tokens[id], "ids": []int{id}, "tokens": []string{tokens[id]}}
		return map[string]any{"SpecialToken": map[string]any{"id": tokens[id], "type_id": 0}}, nil
	}
	seq := func(id string) any { return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}} }
	for _, part := range []string{"A", "B"} {
		var p []any
		if addBOS {
			s, err := piece(bos, "bos")
			if err != nil {
				return nil, err
			}
			p = append(p, s)
		}
		p = append(p, seq(part))
		if addEOS {
			s, err := piece(eos, "eos")
			if err != nil {
				return nil, err
			}
			p = append(p, s)
		}
		if part == "A" {
			single, pair = p, p
		} else {
			pair = append(append([]any{}, single...), p...)
		}
	}
	return map[string]any{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}, nil
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return bytes.TrimRight(b.Bytes(), "\n")
}
