package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/scheduler"
)

// Generator is what LocalLLM needs from the scheduler.
type Generator interface {
	Generate(ctx context.Context, req scheduler.Request, onText func(string) error) (scheduler.Result, error)
}

var _ Generator = (*scheduler.Scheduler)(nil)

// GenerationInfo keys, the ones langchaingo's OpenAI client uses, so that
// the chain reads token counts the same way from every backend.
const (
	InfoPromptTokens     = "PromptTokens"
	InfoCompletionTokens = "CompletionTokens"
	InfoTotalTokens      = "TotalTokens"
)

// LocalLLM is a langchaingo llms.Model backed by our own model through the
// batching scheduler. It honours MaxTokens, Temperature, TopP, TopK,
// RepetitionPenalty, Seed, StopWords and StreamingFunc, and Model: the LoRA
// adapter the request runs through ("" for the model itself).
type LocalLLM struct {
	Gen Generator
}

var _ llms.Model = (*LocalLLM)(nil)

// Call generates a completion of prompt.
func (l *LocalLLM) Call(ctx context.Context, prompt string, options ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, l, prompt, options...)
}

// GenerateContent generates one completion of the concatenated text parts of
// messages (the plain, template-less prompt a base model expects).
func (l *LocalLLM) GenerateContent(ctx context.Context, messages []llms.MessageContent, options ...llms.CallOption) (*llms.ContentResponse, error) {
	var o llms.CallOptions
	for _, opt := range options {
		opt(&o)
	}
	if o.CandidateCount > 1 || o.N > 1 {
		return nil, fmt.Errorf("%w: only one completion per prompt is supported", errInvalidParam)
	}
	var prompt string
	for _, m := range messages {
		for _, p := range m.Parts {
			tp, ok := p.(llms.TextContent)
			if !ok {
				return nil, fmt.Errorf("%w: only text content is supported, got %T", errInvalidParam, p)
			}
			prompt += tp.Text
		}
	}
	req := scheduler.Request{
		Prompt: prompt,
		Stop:   o.StopWords,
		Sampling: scheduler.Sampling{
			MaxNewTokens: o.MaxTokens, Temperature: o.Temperature, TopP: o.TopP, TopK: o.TopK,
			RepetitionPenalty: o.RepetitionPenalty, Seed: int64(o.Seed), Adapter: o.Model,
		},
	}
	var onText func(string) error
	if o.StreamingFunc != nil {
		onText = func(s string) error { return o.StreamingFunc(ctx, []byte(s)) }
	}
	res, err := l.Gen.Generate(ctx, req, onText)
	if err != nil {
		return nil, err
	}
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{
		Content:    res.Text,
		StopReason: res.FinishReason,
		GenerationInfo: map[string]any{
			InfoPromptTokens: res.TokensIn, InfoCompletionTokens: res.TokensOut,
			InfoTotalTokens: res.TokensIn + res.TokensOut,
		},
	}}}, nil
}

// ErrInvalidParam marks request parameters the backend cannot honour; the
// client gets a 400 with the message.
var ErrInvalidParam = errors.New("invalid parameter")

// errInvalidParam is the package's short name for ErrInvalidParam.
var errInvalidParam = ErrInvalidParam

// NewLocalBackend wraps a scheduler over our own model as a Backend.
func NewLocalBackend(s *scheduler.Scheduler, info ModelInfo) *Backend {
	if info.Provider == "" {
		info.Provider = "kfllm"
	}
	return &Backend{LLM: &LocalLLM{Gen: s}, Info: info, Stats: s.Stats, Close: s.Close}
}
