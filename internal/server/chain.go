package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/outputparser"
	"github.com/tmc/langchaingo/prompts"

	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/langsmith"
)

// Params are one request's generation parameters; nil means "the default".
// They are KServe V1's "parameters" (the type the UI sends; the V2 and
// OpenAI routes fill the same) and the LoRA adapter the request's model
// name chose.
type Params struct {
	kserve.Parameters
	// Adapter is the LoRA adapter the request names ("": the model
	// itself); it reaches the LLM as llms.WithModel.
	Adapter string
}

// ModelInfo describes the model behind a backend, for traces and metrics.
type ModelInfo struct {
	// ID is the Hub repo id or the directory the model came from.
	ID string
	// Revision is the resolved commit (or "" when unknown).
	Revision string
	// Provider names the backend: "kfllm" for the local model.
	Provider string
	// LLMName names the llm run in traces.
	LLMName string
}

// chain is LangChain's `prompt | llm | parser` in langchaingo terms: a
// PromptTemplate, an llms.Model, and a string output parser. Each
// invocation is traced as a chain run with prompt, llm and parser children.
type chain struct {
	template     prompts.PromptTemplate
	templateName string
	llm          llms.Model
	parser       parser
	tracer       *langsmith.Tracer
	model        ModelInfo
	modelName    string
	defaults     Defaults
}

// parser turns the model's text into the chain's output.
type parser interface {
	Parse(text string) (any, error)
}

// The QA answer (KServe V1 and V2, chat completions) is langchaingo's
// Simple parser: the text without surrounding space, the " " that follows
// "Answer:" in the template included. A completion is LangChain's
// StrOutputParser as Python has it, verbatim: its leading space belongs to
// the text (" Paris" after "The capital of France is"), as transformers,
// llama.cpp and vLLM return it.
var (
	_ parser = outputparser.Simple{}
	_ parser = verbatim{}
)

// verbatim returns the text as it is.
type verbatim struct{}

func (verbatim) Parse(text string) (any, error) { return text, nil }

// Defaults are the generation parameters used when a request gives none.
type Defaults struct {
	MaxNewTokens int
	Temperature  float64
}

// answer is one instance's outcome.
type answer struct {
	Text         string
	RunID        string
	TokensIn     int
	TokensOut    int
	FinishReason string
	Latency      time.Duration
}

func newChain(tmpl string, vars []string, name string, p parser, llm llms.Model, tr *langsmith.Tracer, info ModelInfo, modelName string, d Defaults) (*chain, error) {
	t := prompts.PromptTemplate{Template: tmpl, InputVariables: vars, TemplateFormat: prompts.TemplateFormatFString}
	if err := prompts.CheckValidTemplate(t.Template, t.TemplateFormat, t.InputVariables); err != nil {
		return nil, fmt.Errorf("prompt template %s: %w", name, err)
	}
	return &chain{template: t, templateName: name, llm: llm, parser: p,
		tracer: tr, model: info, modelName: modelName, defaults: d}, nil
}

func (c *chain) callOptions(p Params, onText func(string) error) ([]llms.CallOption, map[string]any) {
	maxNew := c.defaults.MaxNewTokens
	if p.MaxNewTokens != nil {
		maxNew = *p.MaxNewTokens
	}
	temp := c.defaults.Temperature
	if p.Temperature != nil {
		temp = *p.Temperature
	}
	opts := []llms.CallOption{llms.WithMaxTokens(maxNew), llms.WithTemperature(temp)}
	inv := map[string]any{"max_new_tokens": maxNew, "temperature": temp}
	if p.TopP != nil {
		opts = append(opts, llms.WithTopP(*p.TopP))
		inv["top_p"] = *p.TopP
	}
	if p.TopK != nil {
		opts = append(opts, llms.WithTopK(*p.TopK))
		inv["top_k"] = *p.TopK
	}
	if p.RepetitionPenalty != nil {
		opts = append(opts, llms.WithRepetitionPenalty(*p.RepetitionPenalty))
		inv["repetition_penalty"] = *p.RepetitionPenalty
	}
	if p.Seed != nil {
		opts = append(opts, llms.WithSeed(*p.Seed))
		inv["seed"] = *p.Seed
	}
	if len(p.Stop) > 0 {
		opts = append(opts, llms.WithStopWords(p.Stop))
		inv["stop"] = p.Stop
	}
	if p.Adapter != "" {
		opts = append(opts, llms.WithModel(p.Adapter))
		inv["adapter"] = p.Adapter
	}
	if onText != nil {
		opts = append(opts, llms.WithStreamingFunc(func(_ context.Context, chunk []byte) error { return onText(string(chunk)) }))
	}
	return opts, inv
}

// invoke runs the chain on vars. The trace is submitted whatever happens;
// its root run id is returned in the answer (and with an error, too).
// onRun, if set, gets the root run id before any model work.
func (c *chain) invoke(ctx context.Context, vars map[string]any, p Params, onRun func(string), onText func(string) error) (answer, error) {
	start := time.Now()
	inputs := make(map[string]any, len(vars))
	for k, v := range vars {
		inputs[k] = v
	}
	root := langsmith.NewTrace("RunnableSequence", langsmith.RunTypeChain, inputs, start)
	root.AddMetadata(langsmith.MetadataFromContext(ctx)) // the caller's baggage first: ours wins
	root.SetMetadata("model_name", c.modelName)
	if p.Adapter != "" {
		root.SetMetadata("model_name", p.Adapter)
		root.SetMetadata("lora_adapter", p.Adapter)
	}
	root.SetMetadata("model_id", c.model.ID)
	root.SetMetadata("model_revision", c.model.Revision)
	ans := answer{RunID: root.ID}
	if onRun != nil {
		onRun(root.ID)
	}
	defer func() { c.tracer.Submit(root) }()

	// prompt
	pr := root.Child("PromptTemplate", langsmith.RunTypePrompt, inputs, time.Now())
	text, err := c.template.Format(vars)
	if err != nil {
		err = fmt.Errorf("format prompt: %w", err)
		pr.End(nil, err, time.Now())
		root.End(nil, err, time.Now())
		return ans, err
	}
	pr.End(map[string]any{"output": text}, nil, time.Now())
	pr.SetMetadata("template", c.templateName)

	// llm
	opts, inv := c.callOptions(p, onText)
	lr := root.Child(c.model.LLMName, langsmith.RunTypeLLM, map[string]any{"prompts": []string{text}}, time.Now())
	lr.Extra = map[string]any{"invocation_params": inv}
	lr.SetMetadata("ls_provider", c.model.Provider)
	lr.SetMetadata("ls_model_name", c.model.ID)
	lr.SetMetadata("ls_model_type", "llm")
	lr.SetMetadata("ls_temperature", inv["temperature"])
	lr.SetMetadata("ls_max_tokens", inv["max_new_tokens"])
	lr.SetMetadata("model_revision", c.model.Revision)
	llmStart := time.Now()
	resp, err := c.generate(ctx, text, opts)
	if err == nil && (resp == nil || len(resp.Choices) == 0) {
		err = errors.New("the model returned no choices")
	}
	if err != nil {
		lr.End(nil, err, time.Now())
		root.End(nil, err, time.Now())
		return ans, err
	}
	choice := resp.Choices[0]
	llmTime := time.Since(llmStart)
	ans.TokensIn = intInfo(choice.GenerationInfo, InfoPromptTokens)
	ans.TokensOut = intInfo(choice.GenerationInfo, InfoCompletionTokens)
	ans.FinishReason = choice.StopReason
	tps := 0.0
	if llmTime > 0 {
		tps = float64(ans.TokensOut) / llmTime.Seconds()
	}
	usage := map[string]any{"input_tokens": ans.TokensIn, "output_tokens": ans.TokensOut, "total_tokens": ans.TokensIn + ans.TokensOut}
	lr.End(map[string]any{
		"generations": [][]map[string]any{{{
			"text": choice.Content, "type": "Generation",
			"generation_info": map[string]any{"finish_reason": choice.StopReason},
		}}},
		"llm_output": map[string]any{"model_name": c.model.ID, "token_usage": map[string]any{
			"prompt_tokens": ans.TokensIn, "completion_tokens": ans.TokensOut, "total_tokens": ans.TokensIn + ans.TokensOut}},
		"usage_metadata": usage,
	}, nil, time.Now())
	lr.SetMetadata("tokens_in", ans.TokensIn)
	lr.SetMetadata("tokens_out", ans.TokensOut)
	lr.SetMetadata("latency_ms", llmTime.Milliseconds())
	lr.SetMetadata("tokens_per_second", tps)

	// parser
	or := root.Child("StrOutputParser", langsmith.RunTypeParser, map[string]any{"input": choice.Content}, time.Now())
	parsed, err := c.parser.Parse(choice.Content)
	if err != nil {
		err = fmt.Errorf("parse output: %w", err)
		or.End(nil, err, time.Now())
		root.End(nil, err, time.Now())
		return ans, err
	}
	ans.Text, _ = parsed.(string)
	or.End(map[string]any{"output": ans.Text}, nil, time.Now())

	ans.Latency = time.Since(start)
	root.SetMetadata("tokens_in", ans.TokensIn)
	root.SetMetadata("tokens_out", ans.TokensOut)
	root.SetMetadata("latency_ms", ans.Latency.Milliseconds())
	root.SetMetadata("tokens_per_second", tps)
	root.End(map[string]any{"output": ans.Text}, nil, time.Now())
	return ans, nil
}

// errPanic marks a panic recovered from a model call (500).
var errPanic = errors.New("panic in model call")

// generate calls the llm, turning a panic into an error (so that the trace
// still ends with it and the client gets a 500).
func (c *chain) generate(ctx context.Context, text string, opts []llms.CallOption) (resp *llms.ContentResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return c.llm.GenerateContent(ctx, []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, text)}, opts...)
}

// panicError carries a recovered panic and its stack to the one place that logs it.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("%v: %v", errPanic, e.value) }
func (e *panicError) Unwrap() error { return errPanic }

func intInfo(m map[string]any, key string) int {
	switch v := m[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}
