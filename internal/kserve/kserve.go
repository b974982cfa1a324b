package kserve

// PredictRequest is the body of POST /v1/models/NAME:predict.
type PredictRequest struct {
	Instances  []Instance `json:"instances"`
	Parameters Parameters `json:"parameters"`
}

// Instance is one question about a context (docs/design.md §4). The server
// also takes a bare string as the question.
type Instance struct {
	Context  string `json:"context"`
	Question string `json:"question"`
}

// Parameters are the generation parameters of a predict request; nil means
// the server's default. max_tokens is read as max_new_tokens, and
// do_sample=false as temperature 0.
type Parameters struct {
	MaxNewTokens      *int     `json:"max_new_tokens,omitempty"`
	Temperature       *float64 `json:"temperature,omitempty"`
	TopP              *float64 `json:"top_p,omitempty"`
	TopK              *int     `json:"top_k,omitempty"`
	RepetitionPenalty *float64 `json:"repetition_penalty,omitempty"`
	Seed              *int     `json:"seed,omitempty"`
	// Stop is a string or a list of up to 4 strings on the wire.
	Stop []string `json:"stop,omitempty"`
}

// PredictResponse is the answer to a predict request: one prediction and
// one LangSmith run id per instance (the run id is also the X-Run-Id header
// of a one-instance request).
type PredictResponse struct {
	Predictions []string `json:"predictions"`
	RunIDs      []string `json:"run_ids"`
}

// StreamEvent is the data of one Server-Sent Event of a predict request
// sent with "Accept: text/event-stream": {"token": …} events, then one
// {"done": true, …} or {"error": …}.
type StreamEvent struct {
	Token      string `json:"token,omitempty"`
	Done       bool   `json:"done,omitempty"`
	Prediction string `json:"prediction,omitempty"`
	RunID      string `json:"run_id,omitempty"`
	TokensIn   *int   `json:"tokens_in,omitempty"`
	TokensOut  *int   `json:"tokens_out,omitempty"`
	LatencyMS  *int64 `json:"latency_ms,omitempty"`
	// TotalMS is measured by the UI, which adds it to the events it passes
	// on to the browser; the model server does not send it.
	TotalMS *int64 `json:"total_ms,omitempty"`
	// FinishReason is "stop" (the model ended the answer) or "length" (it
	// reached max_new_tokens).
	FinishReason string `json:"finish_reason,omitempty"`
	Error        string `json:"error,omitempty"`
}

// FeedbackRequest is the body of POST /v1/feedback: a thumbs up (score 1)
// or down (score 0) on a run, sent on to LangSmith under Key
// ("user_score" when empty).
type FeedbackRequest struct {
	RunID   string   `json:"run_id"`
	Score   *float64 `json:"score"`
	Comment string   `json:"comment"`
	Key     string   `json:"key,omitempty"`
}

// Error is KServe's error body, {"error": "…"}, of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
