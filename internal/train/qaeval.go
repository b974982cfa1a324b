package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/squad"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// qaRecord is one held-out question (the records artifact's QA fields).
type qaRecord struct {
	Context  string `json:"context"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// readQA reads up to max records from a JSONL file.
func readQA(path string, max int) ([]qaRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read qa eval set: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []qaRecord
	for line := 1; sc.Scan() && len(out) < max; line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		var r qaRecord
		if err := json.Unmarshal([]byte(t), &r); err != nil {
			return nil, fmt.Errorf("read qa eval set %s line %d: %w", path, line, err)
		}
		if r.Question == "" || r.Answer == "" {
			return nil, fmt.Errorf("read qa eval set %s line %d: want context, question and answer", path, line)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read qa eval set %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read qa eval set %s: no records", path)
	}
	return out, nil
}

// qaEvalNoted is qaEval with a progress line on w (when not nil) before it
// starts and one with the scores when it is done: on two CPU cores the
// evaluation of a 135M model takes the better part of a minute.
func qaEvalNoted(ctx context.Context, w io.Writer, when string, m *model.Model, tok *tokenizer.Tokenizer, recs []qaRecord, maxNew int) (*QAScore, error) {
	if w != nil {
		fmt.Fprintf(w, "qa eval %s fine-tuning: %d held-out questions\n", when, len(recs))
	}
	start := time.Now()
	sc, err := qaEval(ctx, m, tok, recs, maxNew)
	if err == nil && w != nil {
		fmt.Fprintf(w, "qa eval %s fine-tuning: exact match %.3f, token F1 %.3f (%s)\n", when, sc.ExactMatch, sc.F1, time.Since(start).Round(100*time.Millisecond))
	}
	return sc, err
}

// qaEval answers each question greedily from the prompt the model was
// trained on (internal/prompt) and scores the answers as SQuAD v1.1 does.
func qaEval(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, recs []qaRecord, maxNew int) (*QAScore, error) {
	var eos []int
	if id, ok := tok.EOS(); ok {
		eos = []int{id}
	}
	var sc squad.Score
	const chunk = 16
	for lo := 0; lo < len(recs); lo += chunk {
		part := recs[lo:min(lo+chunk, len(recs))]
		prompts := make([][]int, len(part))
		for i, r := range part {
			ids, err := tok.Encode(prompt.Render(r.Context, r.Question), true)
			if err != nil {
				return nil, fmt.Errorf("qa eval: encode prompt: %w", err)
			}
			prompts[i] = ids
		}
		outs, err := m.Generate(ctx, prompts, model.GenerateOptions{MaxNewTokens: maxNew, EOS: eos}, nil)
		if err != nil {
			return nil, fmt.Errorf("qa eval: %w", err)
		}
		for i, r := range part {
			text, err := tok.Decode(outs[i], true)
			if err != nil {
				return nil, fmt.Errorf("qa eval: decode answer: %w", err)
			}
			sc.Add(strings.TrimSpace(text), r.Answer)
		}
	}
	return &QAScore{ExactMatch: sc.ExactMatch(), F1: sc.F1(), N: sc.N}, nil
}
