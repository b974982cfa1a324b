package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// TestCompletionTextAsTransformers: for generated token ids of the real test
// tokenizers (make setup's $KFLLM_TOKENIZERS), the OpenAI completions route
// answers the text transformers' text-generation pipeline returns for them
// (testdata/completion_text.json, scripts/golden/completion_text.py): the
// leading space of " Paris" kept, as llama.cpp keeps it, also where the
// tokenizer's decoder strips a leading space (Llama 2), and the same text
// whether streamed or not.
func TestCompletionTextAsTransformers(t *testing.T) {
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "completion_text.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Prompt     string
		Tokenizers map[string]struct {
			PromptIDs []int `json:"prompt_ids"`
			GenIDs    []int `json:"gen_ids"`
			Text      string
		}
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	for name, g := range golden.Tokenizers {
		t.Run(name, func(t *testing.T) {
			tok, err := tokenizer.Load(filepath.Join(base, name))
			if err != nil {
				t.Fatal(err)
			}
			if ids, err := tok.Encode(golden.Prompt, true); err != nil || !slices.Equal(ids, g.PromptIDs) {
				t.Fatalf("prompt ids %v (%v), transformers' %v", ids, err, g.PromptIDs)
			}
			eos := []int{-1}
			if id, ok := tok.EOS(); ok {
				eos = []int{id}
			}
			eng := &schedulertest.Engine{IDs: func([]int) []int { return g.GenIDs }}
			e := start(t, eng, setup{backend: func(context.Context) (*server.Backend, error) {
				sch := scheduler.New(eng, tok, scheduler.Options{EOS: eos, AddSpecial: true})
				return server.NewLocalBackend(sch, server.ModelInfo{ID: "kfllm/" + name, LLMName: "TinyLM"}), nil
			}})
			e.waitReady()
			prompt, _ := json.Marshal(golden.Prompt)
			body := fmt.Sprintf(`{"model":"llm","prompt":%s,"max_tokens":%d`, prompt, len(g.GenIDs))
			m := e.post("/openai/v1/completions", body+"}").json(t)
			if got := m["choices"].([]any)[0].(map[string]any)["text"]; got != g.Text {
				t.Errorf("completion text %q, transformers' %q", got, g.Text)
			}
			r := e.post("/openai/v1/completions", body+`,"stream":true}`)
			var streamed strings.Builder
			for _, ev := range readSSE(t, bytes.NewReader(r.body)) {
				var c struct{ Choices []struct{ Text string } }
				if ev != "[DONE]" && json.Unmarshal([]byte(ev), &c) == nil && len(c.Choices) > 0 {
					streamed.WriteString(c.Choices[0].Text)
				}
			}
			if streamed.String() != g.Text {
				t.Errorf("streamed text %q, transformers' %q", streamed.String(), g.Text)
			}
		})
	}
}
