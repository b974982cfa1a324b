package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// OpenAI-compatible routes under /openai/v1, as KServe's Hugging Face
// server offers them. Completions run the raw prompt through the identity
// template; chat completions map the conversation onto the QA template
// (see doc.go). Both are traced like every other chain call.

type openaiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (s *Server) openaiFail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.statusOf(err)
	s.logFailure(r, status, err)
	s.openaiError(w, status, msg, "")
}

func (s *Server) openaiError(w http.ResponseWriter, status int, msg, code string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	e := openaiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", fmt.Sprint(int(max(1, s.opts.RetryAfter.Seconds()))))
	}
	if status == 499 {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// openaiModel checks the request's model and readiness.
func (s *Server) openaiModel(w http.ResponseWriter, r *http.Request, model string) *state {
	if _, ok := s.served(model); !ok {
		s.openaiError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", model), "model_not_found")
		return nil
	}
	st := s.ready(r.Context())
	if st == nil {
		s.openaiError(w, http.StatusServiceUnavailable, fmt.Sprintf("Model with name %s is not ready.", model), "model_not_ready")
	}
	return st
}

func (s *Server) openaiModels(w http.ResponseWriter, r *http.Request) {
	data := []map[string]any{}
	for _, n := range s.names() {
		data = append(data, map[string]any{"id": n, "object": "model", "created": s.created, "owned_by": "kfllm"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// openaiCommon holds the sampling fields both endpoints share.
type openaiCommon struct {
	Model             string          `json:"model"`
	MaxTokens         *int            `json:"max_tokens"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	TopK              *int            `json:"top_k"`
	RepetitionPenalty *float64        `json:"repetition_penalty"`
	N                 *int            `json:"n"`
	Stream            bool            `json:"stream"`
	StreamOptions     *streamOptions  `json:"stream_options"`
	Stop              json.RawMessage `json:"stop"`
	Seed              *int            `json:"seed"`
	User              string          `json:"user"`
	FrequencyPenalty  *float64        `json:"frequency_penalty"`
	PresencePenalty   *float64        `json:"presence_penalty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

func (c openaiCommon) params() (Params, error) {
	raw := map[string]json.RawMessage{}
	put := func(k string, v any) {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	if c.MaxTokens != nil {
		put("max_new_tokens", *c.MaxTokens)
	}
	if c.Temperature != nil {
		put("temperature", *c.Temperature)
	}
	if c.TopP != nil {
		put("top_p", *c.TopP)
	}
	if c.TopK != nil {
		put("top_k", *c.TopK)
	}
	if c.RepetitionPenalty != nil {
		put("repetition_penalty", *c.RepetitionPenalty)
	}
	if c.Seed != nil {
		put("seed", *c.Seed)
	}
	if len(c.Stop) > 0 {
		raw["stop"] = c.Stop
	}
	if c.N != nil && *c.N != 1 {
		return Params{}, badRequestf(`"n" must be 1`)
	}
	if (c.FrequencyPenalty != nil && *c.FrequencyPenalty != 0) || (c.PresencePenalty != nil && *c.PresencePenalty != 0) {
		return Params{}, badRequestf("frequency_penalty and presence_penalty are not supported (use repetition_penalty)")
	}
	return parseParams(raw)
}

type completionRequest struct {
	openaiCommon
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	Suffix   *string         `json:"suffix"`
}

func usage(a []answer) map[string]int {
	in, out := 0, 0
	for _, x := range a {
		in += x.TokensIn
		out += x.TokensOut
	}
	return map[string]int{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}
}

func finishReason(a answer) string {
	if a.FinishReason == "length" {
		return "length"
	}
	return "stop"
}

func (s *Server) openaiCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.openaiFail(w, r, err)
		return
	}
	st := s.openaiModel(w, r, req.Model)
	if st == nil {
		return
	}
	var prompts []string
	var one string
	if json.Unmarshal(req.Prompt, &one) == nil {
		prompts = []string{one}
	} else if json.Unmarshal(req.Prompt, &prompts) != nil || len(prompts) == 0 {
		s.openaiFail(w, r, badRequestf(`"prompt" must be a string or a non-empty list of strings`))
		return
	}
	if req.Echo || req.Logprobs != nil || req.Suffix != nil {
		s.openaiFail(w, r, badRequestf("echo, logprobs and suffix are not supported"))
		return
	}
	if len(prompts) > s.opts.MaxInstances {
		s.openaiFail(w, r, badRequestf("%d prompts: at most %d per request", len(prompts), s.opts.MaxInstances))
		return
	}
	params, err := req.params()
	if err != nil {
		s.openaiFail(w, r, err)
		return
	}
	params.Adapter, _ = s.served(req.Model)
	id := "cmpl-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	created := time.Now().Unix()
	if req.Stream {
		if len(prompts) != 1 {
			s.openaiFail(w, r, badRequestf("streaming answers one prompt at a time"))
			return
		}
		chunk := func(text string, finish *string) map[string]any {
			return map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
				"choices": []map[string]any{{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}}
		}
		s.streamOpenAI(w, r, st.raw, map[string]any{"prompt": prompts[0]}, params, req.StreamOptions,
			func(tok string) any { return chunk(tok, nil) },
			func(a answer) any { f := finishReason(a); return chunk("", &f) },
			func(a answer) any {
				return map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
					"choices": []any{}, "usage": usage([]answer{a})}
			})
		return
	}
	vars := make([]map[string]any, len(prompts))
	for i, p := range prompts {
		vars[i] = map[string]any{"prompt": p}
	}
	answers, err := s.runAll(r.Context(), st.raw, vars, params)
	if err != nil {
		s.openaiFail(w, r, err)
		return
	}
	choices := make([]map[string]any, len(answers))
	for i, a := range answers {
		choices[i] = map[string]any{"index": i, "text": a.Text, "logprobs": nil, "finish_reason": finishReason(a), "run_id": a.RunID}
	}
	if len(answers) == 1 {
		w.Header().Set("X-Run-Id", answers[0].RunID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "text_completion", "created": created,
		"model": req.Model, "choices": choices, "usage": usage(answers)})
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name"`
}

type chatRequest struct {
	openaiCommon
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
}

// text returns a message's text: a string, or the text parts of a list.
// Content may not be missing or null (OpenAI allows null only beside
// tool_calls, which this server does not take).
func (m chatMessage) text() (string, error) {
	if c := strings.TrimSpace(string(m.Content)); c == "" || c == "null" {
		return "", badRequestf("message from %q: \"content\" is required", m.Role)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", badRequestf("message content must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", badRequestf("content part type %q is not supported", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// chatVars maps a conversation onto the QA prompt: the last user message
// is the question; system messages, then earlier turns as "role: text"
// lines, are the context.
func chatVars(msgs []chatMessage) (map[string]any, error) {
	if len(msgs) == 0 {
		return nil, badRequestf(`"messages" must not be empty`)
	}
	last := msgs[len(msgs)-1]
	if last.Role != "user" {
		return nil, badRequestf("the last message must come from the user, not %q", last.Role)
	}
	question, err := last.text()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(question) == "" { // the question, which V1 and V2 refuse empty too
		return nil, badRequestf("the last user message (the question) is empty")
	}
	var system, turns []string
	for _, m := range msgs[:len(msgs)-1] {
		t, err := m.text()
		if err != nil {
			return nil, err
		}
		switch m.Role {
		case "system", "developer":
			system = append(system, t)
		case "user", "assistant":
			turns = append(turns, m.Role+": "+t)
		default:
			return nil, badRequestf("message role %q is not supported", m.Role)
		}
	}
	ctx := strings.Join(append(system, turns...), "\n")
	return map[string]any{"context": ctx, "question": question}, nil
}

func (s *Server) openaiChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.openaiFail(w, r, err)
		return
	}
	st := s.openaiModel(w, r, req.Model)
	if st == nil {
		return
	}
	if req.MaxCompletionTokens != nil {
		req.MaxTokens = req.MaxCompletionTokens
	}
	vars, err := chatVars(req.Messages)
	if err != nil {
		s.openaiFail(w, r, err)
		return
	}
	params, err := req.params()
	if err != nil {
		s.openaiFail(w, r, err)
		return
	}
	params.Adapter, _ = s.served(req.Model)
	id := "chatcmpl-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	created := time.Now().Unix()
	chunk := func(delta map[string]any, finish *string) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
	}
	if req.Stream {
		first := true
		s.streamOpenAI(w, r, st.qa, vars, params, req.StreamOptions,
			func(tok string) any {
				d := map[string]any{"content": tok}
				if first {
					d["role"], first = "assistant", false
				}
				return chunk(d, nil)
			},
			func(a answer) any { f := finishReason(a); return chunk(map[string]any{}, &f) },
			func(a answer) any {
				return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
					"choices": []any{}, "usage": usage([]answer{a})}
			})
		return
	}
	answers, err := s.runAll(r.Context(), st.qa, []map[string]any{vars}, params)
	if err != nil {
		s.openaiFail(w, r, err)
		return
	}
	a := answers[0]
	w.Header().Set("X-Run-Id", a.RunID)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created,
		"model": req.Model, "usage": usage(answers),
		"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": a.Text},
			"logprobs": nil, "finish_reason": finishReason(a), "run_id": a.RunID}}})
}

// streamOpenAI runs one chain call as OpenAI-style SSE: a chunk per piece
// of text, a final chunk with finish_reason, an optional usage chunk, then
// "data: [DONE]".
func (s *Server) streamOpenAI(w http.ResponseWriter, r *http.Request, ch *chain, vars map[string]any, p Params,
	so *streamOptions, tokenChunk func(string) any, finalChunk func(answer) any, usageChunk func(answer) any) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	ev := newSSE(w)
	onRun := func(id string) { w.Header().Set("X-Run-Id", id) }
	a, err := s.invoke(ctx, ch, vars, p, onRun, func(tok string) error { return ev.data(tokenChunk(tok)) })
	if err != nil {
		if !ev.started {
			s.openaiFail(w, r, err)
			return
		}
		if !errors.Is(err, errClientGone) {
			status, msg := s.statusOf(err)
			s.logFailure(r, status, err)
			typ := "server_error"
			if status < 500 {
				typ = "invalid_request_error"
			}
			_ = ev.data(map[string]any{"error": openaiError{Message: msg, Type: typ}})
		}
		return
	}
	if err := ev.data(finalChunk(a)); err != nil {
		return
	}
	if so != nil && so.IncludeUsage {
		_ = ev.data(usageChunk(a))
	}
	_ = ev.data("[DONE]")
}
