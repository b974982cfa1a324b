package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dlclark/regexp2"
)

// TrainBPE learns a GPT-2-style byte-level BPE tokenizer from texts: the 256
// byte symbols, then merges of the most frequent adjacent pair (ties broken by
// the pair's text, so the result is deterministic) until the vocabulary holds
// vocabSize tokens with <|endoftext|> as the last one, which is BOS, EOS and
// PAD as in GPT-2. Words are split as HF's ByteLevel pre-tokenizer splits
// them. The result saves (Save) as a tokenizer.json that transformers loads.
func TrainBPE(texts []string, vocabSize int) (*Tokenizer, error) {
	if vocabSize < 257 {
		return nil, fmt.Errorf("train bpe: vocab size %d is below the 256 byte symbols plus %s", vocabSize, gpt2EOT)
	}
	re, err := regexp2.Compile(gpt2Pattern, regexp2.RE2)
	if err != nil {
		return nil, fmt.Errorf("train bpe: compile split pattern: %w", err)
	}
	counts := map[string]int{}
	for _, t := range texts {
		m, err := re.FindStringMatch(ValidUTF8(t))
		for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
			counts[byteLevelString(m.String())]++
		}
		if err != nil {
			return nil, fmt.Errorf("train bpe: split: %w", err)
		}
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("train bpe: no text to learn from")
	}
	type word struct {
		syms  []string
		count int
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, len(keys))
	for i, k := range keys {
		var syms []string
		for _, r := range k {
			syms = append(syms, string(r))
		}
		words[i] = word{syms, counts[k]}
	}

	vocab := make(map[string]int, vocabSize)
	for b := 0; b < 256; b++ {
		vocab[byteChars[b]] = b
	}
	var merges []string
	for len(vocab) < vocabSize-1 {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best [2]string
		bestN := 1 // a pair seen once is not worth a token
		for p, n := range pairs {
			if n > bestN || n == bestN && bestN > 1 && p[0]+" "+p[1] < best[0]+" "+best[1] {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best[0] + best[1]
		if _, dup := vocab[merged]; dup {
			// Two different pairs can spell the same token; the merge still
			// applies but adds no new id.
			merges = append(merges, best[0]+" "+best[1])
		} else {
			vocab[merged] = len(vocab)
			merges = append(merges, best[0]+" "+best[1])
		}
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, merged)
					i++
					continue
				}
				out = append(out, s[i])
			}
			words[wi].syms = out
		}
	}
	vocab[gpt2EOT] = len(vocab)

	dir, err := os.MkdirTemp("", "kfllm-bpe-*")
	if err != nil {
		return nil, fmt.Errorf("train bpe: %w", err)
	}
	defer os.RemoveAll(dir)
	enc, err := json.Marshal(vocab)
	if err != nil {
		return nil, fmt.Errorf("train bpe: %w", err)
	}
	bpe := "#version: 0.2\n" + strings.Join(merges, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "encoder.json"), enc, 0o644); err != nil {
		return nil, fmt.Errorf("train bpe: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.bpe"), []byte(bpe), 0o644); err != nil {
		return nil, fmt.Errorf("train bpe: %w", err)
	}
	t, err := Load(dir)
	if err != nil {
		return nil, fmt.Errorf("train bpe: load the trained files: %w", err)
	}
	return t, nil
}
