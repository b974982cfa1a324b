package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// gpt2Set is what an OpenAI GPT-2 encoder.json + vocab.bpe pair becomes: the
// tokenizer.json that transformers' GPT2TokenizerFast would build (BPE,
// ByteLevel pre-tokenizer without prefix space, ByteLevel decoder,
// <|endoftext|> as a special added token), and the files that let
// transformers load the directory.
type gpt2Set struct {
	tokenizerJSON    []byte
	tokenizerConfig  []byte
	specialTokensMap []byte
	encoder, merges  []byte
}

const gpt2EOT = "<|endoftext|>"

func gpt2Files(encoder, vocabBPE []byte) (*gpt2Set, error) {
	var vocab map[string]int
	if err := json.Unmarshal(encoder, &vocab); err != nil {
		return nil, fmt.Errorf("parse encoder.json: %w", err)
	}
	eot, ok := vocab[gpt2EOT]
	if !ok {
		return nil, fmt.Errorf("encoder.json has no %s", gpt2EOT)
	}
	var merges []string
	for i, line := range strings.Split(string(vocabBPE), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || (i == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		if strings.Count(line, " ") != 1 {
			return nil, fmt.Errorf("vocab.bpe line %d %q: want two tokens separated by one space", i+1, line)
		}
		merges = append(merges, line)
	}
	doc := map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []map[string]any{{
			"id": eot, "content": gpt2EOT, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true,
		}},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"vocab": json.RawMessage(bytes.TrimSpace(encoder)), "merges": merges,
		},
	}
	tj, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	specials := map[string]string{"bos_token": gpt2EOT, "eos_token": gpt2EOT, "unk_token": gpt2EOT}
	sm, _ := json.MarshalIndent(specials, "", "  ")
	tc, _ := json.MarshalIndent(map[string]any{
		"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": false, "model_max_length": 1024,
		"bos_token": gpt2EOT, "eos_token": gpt2EOT, "unk_token": gpt2EOT,
		"clean_up_tokenization_spaces": false,
	}, "", "  ")
	return &gpt2Set{tokenizerJSON: tj, tokenizerConfig: tc, specialTokensMap: sm, encoder: encoder, merges: vocabBPE}, nil
}

func (g *gpt2Set) files() []namedFile {
	return []namedFile{
		{"tokenizer.json", g.tokenizerJSON},
		{"tokenizer_config.json", g.tokenizerConfig},
		{"special_tokens_map.json", g.specialTokensMap},
		{"vocab.json", g.encoder},
		{"merges.txt", g.merges},
	}
}
