package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/langsmith"
)

// V1 routes, as KServe's Python model server answers them.

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (s *Server) v1Models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]string{"models": s.names()})
}

// model checks the {name} of the route: 404 for another name, 503 while
// loading. It returns nil after writing the error.
func (s *Server) model(w http.ResponseWriter, r *http.Request) *state {
	name := mux.Vars(r)["name"]
	if _, ok := s.served(name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Model with name %s does not exist.", name))
		return nil
	}
	st := s.ready(r.Context())
	if st == nil {
		w.Header().Set("Retry-After", fmt.Sprint(int(max(1, s.opts.RetryAfter.Seconds()))))
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("Model with name %s is not ready.", name))
		return nil
	}
	return st
}

func (s *Server) v1Model(w http.ResponseWriter, r *http.Request) {
	if s.model(w, r) == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": mux.Vars(r)["name"], "ready": true})
}

// v1Request is KServe V1's predict body.
type v1Request struct {
	Instances  json.RawMessage            `json:"instances"`
	Parameters map[string]json.RawMessage `json:"parameters"`
}

// qaInstance is one question for the docs/design.md §4 prompt.
type qaInstance struct {
	Context  *string `json:"context"`
	Question *string `json:"question"`
}

func (s *Server) decodeInstances(raw json.RawMessage) ([]map[string]any, error) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" || trimmed == "null" {
		return nil, badRequestf(`Expected "instances" in the request body`)
	}
	var items []json.RawMessage
	if trimmed[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, badRequestf(`Expected "instances" to be a list`)
	}
	if len(items) == 0 {
		return nil, badRequestf(`"instances" is empty`)
	}
	if len(items) > s.opts.MaxInstances {
		return nil, badRequestf(`%d instances: at most %d per request`, len(items), s.opts.MaxInstances)
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		var q string
		if json.Unmarshal(it, &q) == nil { // a bare string is the question
			out[i] = map[string]any{"context": "", "question": q}
		} else {
			var inst qaInstance
			if err := decodeStrict(it, &inst); err != nil {
				return nil, badRequestf("instance %d: expected a string or {\"context\": str, \"question\": str}: %v", i, err)
			}
			if inst.Question == nil {
				return nil, badRequestf(`instance %d: "question" is required`, i)
			}
			ctx := ""
			if inst.Context != nil {
				ctx = *inst.Context
			}
			out[i] = map[string]any{"context": ctx, "question": *inst.Question}
		}
		if strings.TrimSpace(out[i]["question"].(string)) == "" {
			return nil, badRequestf(`instance %d: "question" is empty`, i)
		}
	}
	return out, nil
}

func wantsSSE(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		for _, part := range strings.Split(a, ",") {
			if strings.EqualFold(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

func (s *Server) v1Predict(w http.ResponseWriter, r *http.Request) {
	st := s.model(w, r)
	if st == nil {
		return
	}
	var req v1Request
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	vars, err := s.decodeInstances(req.Instances)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	params, err := parseParams(req.Parameters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	params.Adapter, _ = s.served(mux.Vars(r)["name"])
	if wantsSSE(r) {
		if len(vars) != 1 {
			s.fail(w, r, badRequestf("streaming answers one instance at a time, got %d", len(vars)))
			return
		}
		s.streamV1(w, r, st, vars[0], params)
		return
	}
	answers, err := s.runAll(r.Context(), st.qa, vars, params)
	if len(answers) == 1 && answers[0].RunID != "" {
		w.Header().Set("X-Run-Id", answers[0].RunID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	preds := make([]string, len(answers))
	ids := make([]string, len(answers))
	for i, a := range answers {
		preds[i], ids[i] = a.Text, a.RunID
	}
	writeJSON(w, http.StatusOK, kserve.PredictResponse{Predictions: preds, RunIDs: ids})
}

// runAll invokes ch once per instance, concurrently (the scheduler batches
// them), under the request timeout. The first error cancels the others.
func (s *Server) runAll(ctx context.Context, ch *chain, vars []map[string]any, p Params) ([]answer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	answers := make([]answer, len(vars))
	errs := make([]error, len(vars))
	var wg sync.WaitGroup
	for i := range vars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = s.invoke(ctx, ch, vars[i], p, nil, nil)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the root cause, not the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return answers, err
		}
		if first == nil {
			first = err
		}
	}
	return answers, first
}

// invoke runs the chain once and records metrics.
func (s *Server) invoke(ctx context.Context, ch *chain, vars map[string]any, p Params, onRun func(string), onText func(string) error) (answer, error) {
	a, err := ch.invoke(ctx, vars, p, onRun, onText)
	if err != nil {
		s.metrics.instances.WithLabelValues("error").Inc()
		return a, err
	}
	s.metrics.observe(a)
	return a, nil
}

// sse writes Server-Sent Events.
type sse struct {
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
}

func newSSE(w http.ResponseWriter) *sse {
	f, _ := w.(http.Flusher)
	return &sse{w: w, flusher: f}
}

func (e *sse) start() {
	if e.started {
		return
	}
	e.started = true
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	e.w.WriteHeader(http.StatusOK)
}

func (e *sse) data(v any) error {
	e.start()
	var payload []byte
	if s, ok := v.(string); ok {
		payload = []byte(s)
	} else {
		var err error
		if payload, err = json.Marshal(v); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", payload); err != nil {
		return fmt.Errorf("%w: %v", errClientGone, err)
	}
	if e.flusher != nil {
		e.flusher.Flush()
	}
	return nil
}

// streamV1 answers one instance as SSE: {"token": ...} events, then
// {"done": true, ...}. An error before the first event is a normal JSON
// error response; after it, an {"error": ...} event.
func (s *Server) streamV1(w http.ResponseWriter, r *http.Request, st *state, vars map[string]any, p Params) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	ev := newSSE(w)
	onRun := func(id string) { w.Header().Set("X-Run-Id", id) }
	a, err := s.invoke(ctx, st.qa, vars, p, onRun, func(tok string) error {
		return ev.data(kserve.StreamEvent{Token: tok})
	})
	if err != nil {
		if !ev.started {
			s.fail(w, r, err)
			return
		}
		status, msg := s.statusOf(err)
		s.logFailure(r, status, err)
		_ = ev.data(kserve.StreamEvent{Error: msg})
		return
	}
	latency := a.Latency.Milliseconds()
	_ = ev.data(kserve.StreamEvent{Done: true, Prediction: a.Text, RunID: a.RunID,
		TokensIn: &a.TokensIn, TokensOut: &a.TokensOut, LatencyMS: &latency, FinishReason: a.FinishReason})
}

// FeedbackKey is the LangSmith feedback key used when the request names none.
const FeedbackKey = "user_score"

func (s *Server) feedback(w http.ResponseWriter, r *http.Request) {
	var req kserve.FeedbackRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Score == nil || (*req.Score != 0 && *req.Score != 1) {
		s.fail(w, r, badRequestf(`"score" must be 0 or 1`))
		return
	}
	key := req.Key
	if key == "" {
		key = FeedbackKey
	}
	if _, err := langsmith.ParseRunID(req.RunID); err != nil {
		s.fail(w, r, badRequestf(`"run_id" must be a run id (a UUID), got %q`, req.RunID))
		return
	}
	fb, err := langsmith.ParseFeedback(req.RunID, key, *req.Score, req.Comment)
	if err != nil {
		s.fail(w, r, badRequestf("%v", err))
		return
	}
	if !s.opts.Tracer.Enabled() {
		s.metrics.feedback.WithLabelValues("disabled").Inc()
		writeError(w, http.StatusServiceUnavailable, "LangSmith tracing is not enabled on this server: feedback has nowhere to go")
		return
	}
	if !s.opts.Tracer.Feedback(fb) {
		s.metrics.feedback.WithLabelValues("dropped").Inc()
		s.fail(w, r, fmt.Errorf("feedback queue is full: %w", errBusy))
		return
	}
	s.metrics.feedback.WithLabelValues("queued").Inc()
	writeJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}
