package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kfllm/kfllm/internal/kserve"
)

// standinAPI is a local stand-in for the serving API, for the error paths
// and timings a real model cannot be made to produce on demand. It speaks
// EXACTLY the contract of internal/server (see its doc.go):
//
//   - POST /v1/models/{MODEL_NAME}:predict with
//     {"instances":[{"context","question"}],"parameters":{"max_new_tokens","temperature"}}
//     -> 200 {"predictions":["answer"],"run_ids":["<uuid>"]} and header X-Run-Id;
//     errors {"error":"..."} with 400 (bad body), 404 ("Model with name X does
//     not exist."), 503 ("Model with name X is not ready."), 429/503 with
//     Retry-After when the queue is full, 500.
//   - The same URL with "Accept: text/event-stream" answers SSE:
//     data: {"token":"..."} events, then data: {"done":true,"prediction",
//     "run_id","tokens_in","tokens_out","latency_ms"} (serving adds
//     "finish_reason": "stop"|"length"; so does this stand-in); an error mid-stream is
//     data: {"error":"..."}.
//   - POST /v1/feedback {"run_id","score":1|0,"comment"} -> 202 {"ok":true};
//     400 when run_id is not a UUID.
//
// What it answers is set per test through the fields below.
type standinAPI struct {
	model    string
	srv      *httptest.Server
	canceled chan struct{} // closed when a predict request's context ends before it finished
	once     sync.Once

	mu        sync.Mutex
	b         behaviour
	predicts  []kserve.PredictRequest
	headers   []http.Header
	feedbacks []kserve.FeedbackRequest
}

// behaviour is what the stand-in answers.
type behaviour struct {
	tokens         []string      // the answer, token by token
	tokenDelay     time.Duration // pause before each token
	status         int           // non-zero: answer predict with this status and {"error": errMsg}
	errMsg         string        // the error text for status, or of a plain-text body when plainError
	plainError     bool          // send errMsg as text/plain (as Istio's "RBAC: access denied")
	retryAfter     string        // Retry-After header with status
	hang           bool          // send nothing until the request is canceled
	midStreamError string        // after the tokens, send {"error": midStreamError} instead of done
	noDone         bool          // after the tokens, close the stream without done
	noStream       bool          // answer JSON even when asked for a stream
	runID          string
	feedbackStatus int // non-zero: answer feedback with this status
}

const standinRunID = "0b3f6c5e-2a7d-4c1e-9f4a-8d2b6e1c7a90"

func newStandinAPI(t testing.TB, model string, tokens ...string) *standinAPI {
	t.Helper()
	a := &standinAPI{model: model, b: behaviour{tokens: tokens, runID: standinRunID}, canceled: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/models/{target}", a.predict)
	mux.HandleFunc("POST /v1/feedback", a.feedback)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *standinAPI) set(f func(b *behaviour)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.b)
}

func (a *standinAPI) lastPredict() (kserve.PredictRequest, http.Header, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.predicts) == 0 {
		return kserve.PredictRequest{}, nil, 0
	}
	return a.predicts[len(a.predicts)-1], a.headers[len(a.headers)-1], len(a.predicts)
}

func (a *standinAPI) feedbackCalls() []kserve.FeedbackRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]kserve.FeedbackRequest(nil), a.feedbacks...)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (a *standinAPI) predict(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("target"), ":predict")
	if !ok {
		http.NotFound(w, r)
		return
	}
	var req kserve.PredictRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Instances) == 0 {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("invalid request body: %v", err))
		return
	}
	a.mu.Lock()
	a.predicts = append(a.predicts, req)
	a.headers = append(a.headers, r.Header.Clone())
	cfg := a.b
	a.mu.Unlock()

	if name != a.model {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model with name %s does not exist.", name))
		return
	}
	if cfg.hang {
		<-r.Context().Done()
		a.once.Do(func() { close(a.canceled) })
		return
	}
	if cfg.status != 0 {
		if cfg.retryAfter != "" {
			w.Header().Set("Retry-After", cfg.retryAfter)
		}
		if cfg.plainError {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(cfg.status)
			fmt.Fprint(w, cfg.errMsg)
			return
		}
		apiError(w, cfg.status, cfg.errMsg)
		return
	}
	start := time.Now()
	finish := "stop"
	if n := req.Parameters.MaxNewTokens; n != nil && *n > 0 && *n < len(cfg.tokens) {
		n := *n
		cfg.tokens, finish = cfg.tokens[:n], "length"
	}
	answer := strings.Join(cfg.tokens, "")
	w.Header().Set("X-Run-Id", cfg.runID)
	w.Header().Set("Set-Cookie", "api-session=internal") // must not reach the browser
	if cfg.noStream || r.Header.Get("Accept") != "text/event-stream" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(kserve.PredictResponse{Predictions: []string{answer}, RunIDs: []string{cfg.runID}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		_ = rc.Flush()
	}
	for _, tok := range cfg.tokens {
		select {
		case <-time.After(cfg.tokenDelay):
		case <-r.Context().Done():
			a.once.Do(func() { close(a.canceled) })
			return
		}
		send(map[string]string{"token": tok})
	}
	switch {
	case cfg.midStreamError != "":
		send(map[string]string{"error": cfg.midStreamError})
	case cfg.noDone:
	default:
		in := req.Instances[0]
		send(map[string]any{
			"done": true, "prediction": answer, "run_id": cfg.runID,
			"tokens_in":     len(strings.Fields(in.Context + " " + in.Question)),
			"tokens_out":    len(cfg.tokens),
			"latency_ms":    time.Since(start).Milliseconds(),
			"finish_reason": finish,
		})
	}
}

func (a *standinAPI) feedback(w http.ResponseWriter, r *http.Request) {
	var fb kserve.FeedbackRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fb); err != nil {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("invalid feedback: %v", err))
		return
	}
	// internal/server refuses a run id that is not a UUID (uuid.Parse).
	if _, err := uuid.Parse(fb.RunID); err != nil {
		apiError(w, http.StatusBadRequest, fmt.Sprintf(`"run_id" must be a run id (a UUID), got %q`, fb.RunID))
		return
	}
	a.mu.Lock()
	a.feedbacks = append(a.feedbacks, fb)
	status := a.b.feedbackStatus
	a.mu.Unlock()
	if status != 0 {
		apiError(w, status, "LangSmith is unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprint(w, `{"ok":true}`)
}
