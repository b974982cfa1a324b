package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/langsmith"
)

// Limits and defaults of a browser request.
const (
	maxQuestionChars    = 2000
	maxCommentChars     = 1000
	defaultMaxNewTokens = 128
	defaultTemperature  = 0.2
	maxTemperature      = 2.0
)

// generateRequest is the body of POST /api/generate.
type generateRequest struct {
	Context      string   `json:"context"`
	Question     string   `json:"question"`
	MaxNewTokens *int     `json:"max_new_tokens"`
	Temperature  *float64 `json:"temperature"`
}

// feedbackBody is the body of POST /api/feedback.
type feedbackBody struct {
	RunID   string `json:"run_id"`
	Score   *int   `json:"score"`
	Comment string `json:"comment"`
}

// badRequest is a browser request this server refuses, with its reason.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	var req generateRequest
	if err := s.decode(w, r, &req); err != nil {
		writeBadRequest(w, err)
		return
	}
	in, params, err := s.validateGenerate(req)
	if err != nil {
		writeBadRequest(w, err)
		return
	}
	c := clientOf(r.Context())
	release, refused := s.limits.begin(c.addr, time.Now())
	if refused != nil {
		s.metrics.limited.WithLabelValues(string(refused.reason)).Inc()
		writeRefusal(w, refused)
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	start := time.Now()

	type result struct {
		done kserve.StreamEvent
		err  error
	}
	tokens := make(chan string)
	results := make(chan result, 1)
	go func() {
		done, err := s.api.generate(ctx, in, params, c.user, func(tok string) error {
			select {
			case tokens <- tok:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		results <- result{done, err}
	}()

	// The stream starts with the first token (or keep-alive); until then an
	// error is still an ordinary JSON error response with its status.
	out := &sseWriter{w: w, rc: http.NewResponseController(w)}
	keepAlive := time.NewTicker(s.opts.KeepAlive)
	defer keepAlive.Stop()
	nTokens := 0
	for {
		select {
		case tok := <-tokens:
			nTokens++
			if err := out.event(kserve.StreamEvent{Token: tok}); err != nil {
				cancel() // the browser went away: stop the model
			}
		case <-keepAlive.C:
			if err := out.comment("waiting for the model"); err != nil {
				cancel()
			}
		case res := <-results:
			elapsed := time.Since(start)
			if res.err != nil {
				status, msg := humanError(res.err, s.opts.Timeout, s.opts.ModelName)
				if r.Context().Err() != nil {
					s.log.Info("generate canceled by the browser", "ms", elapsed.Milliseconds(), "tokens", nTokens)
					return
				}
				s.log.Warn("generate failed", "status", status, "ms", elapsed.Milliseconds(), "tokens", nTokens, "err", res.err)
				if out.started {
					_ = out.event(kserve.StreamEvent{Error: msg})
				} else {
					writeError(w, status, msg)
				}
				return
			}
			total := elapsed.Milliseconds()
			done := res.done
			done.Token, done.Error, done.TotalMS = "", "", &total
			s.log.Info("generate", "ms", total, "tokens", nTokens, "run_id", done.RunID)
			_ = out.event(done)
			return
		}
	}
}

func (s *Server) validateGenerate(req generateRequest) (kserve.Instance, kserve.Parameters, error) {
	q := strings.TrimSpace(req.Question)
	if q == "" {
		return kserve.Instance{}, kserve.Parameters{}, &badRequest{http.StatusBadRequest, "Please type a question."}
	}
	if n := utf8.RuneCountInString(q); n > maxQuestionChars {
		return kserve.Instance{}, kserve.Parameters{}, &badRequest{http.StatusBadRequest,
			fmt.Sprintf("The question is too long (%d characters; the limit is %d).", n, maxQuestionChars)}
	}
	maxNew, temp := defaultMaxNewTokens, defaultTemperature
	if req.MaxNewTokens != nil {
		if *req.MaxNewTokens < 1 || *req.MaxNewTokens > s.opts.MaxNewTokens {
			return kserve.Instance{}, kserve.Parameters{}, &badRequest{http.StatusBadRequest,
				fmt.Sprintf("Max new tokens must be between 1 and %d.", s.opts.MaxNewTokens)}
		}
		maxNew = *req.MaxNewTokens
	}
	if req.Temperature != nil {
		if !(*req.Temperature >= 0 && *req.Temperature <= maxTemperature) {
			return kserve.Instance{}, kserve.Parameters{}, &badRequest{http.StatusBadRequest,
				fmt.Sprintf("Temperature must be between 0 and %g.", maxTemperature)}
		}
		temp = *req.Temperature
	}
	// Both always sent, a temperature of 0 included.
	p := kserve.Parameters{MaxNewTokens: &maxNew, Temperature: &temp}
	return kserve.Instance{Context: strings.TrimSpace(req.Context), Question: q}, p, nil
}

func (s *Server) handleFeedback(w http.ResponseWriter, r *http.Request) {
	var req feedbackBody
	if err := s.decode(w, r, &req); err != nil {
		writeBadRequest(w, err)
		return
	}
	fb, err := checkFeedback(req)
	if err != nil {
		writeBadRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.FeedbackTimeout)
	defer cancel()
	if err := s.api.feedback(ctx, fb); err != nil {
		status, msg := humanFeedbackError(err)
		s.log.Warn("feedback failed", "status", status, "run_id", fb.RunID, "err", err)
		writeError(w, status, msg)
		return
	}
	s.log.Info("feedback", "run_id", fb.RunID, "score", fb.Score)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// checkFeedback validates a feedback body as the API will, so that what the
// API would refuse is refused here with a 400 and a sentence, and returns
// the request to forward: the run id in canonical form (the API and
// LangSmith know a run by that form only), the comment trimmed.
func checkFeedback(req feedbackBody) (kserve.FeedbackRequest, error) {
	runID, err := langsmith.ParseRunID(req.RunID)
	switch {
	case err != nil:
		return kserve.FeedbackRequest{}, &badRequest{http.StatusBadRequest, "This answer has no valid run id, so feedback cannot be recorded."}
	case req.Score == nil || (*req.Score != 0 && *req.Score != 1):
		return kserve.FeedbackRequest{}, &badRequest{http.StatusBadRequest, "Feedback must be a thumbs up (score 1) or a thumbs down (score 0)."}
	case utf8.RuneCountInString(req.Comment) > maxCommentChars:
		return kserve.FeedbackRequest{}, &badRequest{http.StatusBadRequest, fmt.Sprintf("The comment is too long (the limit is %d characters).", maxCommentChars)}
	}
	score := float64(*req.Score)
	return kserve.FeedbackRequest{RunID: runID, Score: &score, Comment: strings.TrimSpace(req.Comment)}, nil
}

func humanFeedbackError(err error) (int, string) {
	var ae *APIError
	switch {
	case errors.Is(err, ErrAPITimeout):
		return http.StatusGatewayTimeout, "Your feedback was not saved: the API did not answer in time. Try again."
	case errors.Is(err, ErrAPIUnreachable):
		return http.StatusBadGateway, "Your feedback was not saved: could not reach the API. Try again in a minute."
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		return http.StatusBadRequest, "Your feedback was not saved: the API could not accept it" + suffix(quote(ae.Message))
	case errors.As(err, &ae):
		return http.StatusBadGateway, fmt.Sprintf("Your feedback was not saved (API error %d)", ae.Status) + suffix(quote(ae.Message))
	default:
		return http.StatusBadGateway, "Your feedback was not saved. Try again."
	}
}

// decode reads a JSON body strictly: a JSON content type, at most
// MaxBodyBytes, no unknown fields (a typo must not be silently ignored), one
// value.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return &badRequest{http.StatusUnsupportedMediaType, "Send the request as JSON (Content-Type: application/json)."}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"The context and question are too long for one request (the limit is %d KiB in all). Shorten the context and try again.", s.opts.MaxBodyBytes>>10)}
		}
		return &badRequest{http.StatusBadRequest, "The request could not be read: " + quote(err.Error()) + "."}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &badRequest{http.StatusBadRequest, "The request could not be read: extra data after the JSON object."}
	}
	return nil
}

func writeBadRequest(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, br.status, br.msg)
		return
	}
	writeError(w, http.StatusBadRequest, "The request could not be read.")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
