package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/kserve"
	"github.com/kfllm/kfllm/internal/langsmith"
)

// Limits on what the API may send back, so that a misbehaving API cannot make
// the UI server buffer without bound.
const (
	maxAPIErrorBody = 64 << 10 // an error or non-streaming JSON body
	maxAPIJSONBody  = 4 << 20  // a non-streaming prediction body
	maxSSELine      = 1 << 20  // one line of the API's event stream
	maxAnswerBytes  = 4 << 20  // the whole streamed answer
)

// APIError is a non-2xx answer from the serving API, or an error event in its
// stream. Message is the API's own "error" text (KServe's {"error": "..."}).
type APIError struct {
	Status     int           // HTTP status; 0 for an error event inside a stream
	Message    string        // the API's error text, possibly empty
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return "api stream error: " + e.Message
	}
	return fmt.Sprintf("api status %d: %s", e.Status, e.Message)
}

// ErrAPITimeout means the API did not finish within Options.Timeout.
var ErrAPITimeout = errors.New("api timeout")

// ErrAPIUnreachable means no HTTP exchange with the API took place
// (connection refused, DNS failure, reset before a response).
var ErrAPIUnreachable = errors.New("api unreachable")

// ErrAPIProtocol means the API answered 2xx with something that does not
// follow the serving contract (bad JSON, a stream that ends without "done").
var ErrAPIProtocol = errors.New("api protocol")

// apiClient calls the serving API. It sends nothing from the browser's
// request but the fields it validated: no cookies, no headers.
type apiClient struct {
	base      *url.URL
	model     string
	http      *http.Client
	userAgent string
}

func (c *apiClient) predictURL() string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/models/" + c.model + ":predict"
	u.RawPath = ""
	return u.String()
}

func (c *apiClient) feedbackURL() string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/feedback"
	u.RawPath = ""
	return u.String()
}

// generate asks the API for an answer as an event stream and calls onToken
// for each token as it arrives. It returns the final "done" event. An API
// that answers with plain JSON instead of a stream (a KServe V1 server
// without streaming) is accepted too: the whole prediction is one token.
//
// user, when not empty, is the signed-in user's id: it goes to the API as
// LangSmith baggage metadata (user_id), which the API's trace carries.
func (c *apiClient) generate(ctx context.Context, in kserve.Instance, p kserve.Parameters, user string, onToken func(string) error) (kserve.StreamEvent, error) {
	body, err := json.Marshal(kserve.PredictRequest{Instances: []kserve.Instance{in}, Parameters: p})
	if err != nil {
		return kserve.StreamEvent{}, fmt.Errorf("encode predict request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.predictURL(), bytes.NewReader(body))
	if err != nil {
		return kserve.StreamEvent{}, fmt.Errorf("predict request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", c.userAgent)
	if user != "" {
		b, err := langsmith.Baggage(map[string]any{"user_id": user})
		if err != nil {
			return kserve.StreamEvent{}, fmt.Errorf("predict request: %w", err)
		}
		req.Header.Set(langsmith.BaggageHeader, b)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return kserve.StreamEvent{}, classify(ctx, fmt.Errorf("predict: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return kserve.StreamEvent{}, readAPIError(resp)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" {
		done, err := readStream(resp.Body, onToken)
		if err != nil {
			return kserve.StreamEvent{}, classify(ctx, err)
		}
		if done.RunID == "" {
			done.RunID = resp.Header.Get("X-Run-Id")
		}
		return done, nil
	}
	var pr kserve.PredictResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIJSONBody)).Decode(&pr); err != nil {
		return kserve.StreamEvent{}, classify(ctx, fmt.Errorf("%w: decode predict response: %v", ErrAPIProtocol, err))
	}
	if len(pr.Predictions) != 1 {
		return kserve.StreamEvent{}, fmt.Errorf("%w: %d predictions for 1 instance", ErrAPIProtocol, len(pr.Predictions))
	}
	done := kserve.StreamEvent{Done: true, Prediction: pr.Predictions[0], RunID: resp.Header.Get("X-Run-Id")}
	if len(pr.RunIDs) > 0 && pr.RunIDs[0] != "" {
		done.RunID = pr.RunIDs[0]
	}
	if done.Prediction != "" {
		if err := onToken(done.Prediction); err != nil {
			return kserve.StreamEvent{}, err
		}
	}
	return done, nil
}

// readStream reads server-sent events until the "done" event, an "error"
// event or the end of the body. Only data lines matter in this contract;
// event names, ids and comments are skipped, and multi-line data is joined
// with newlines as the SSE specification says.
func readStream(r io.Reader, onToken func(string) error) (kserve.StreamEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var data []string
	var answer strings.Builder
	dispatch := func() (kserve.StreamEvent, bool, error) {
		if len(data) == 0 {
			return kserve.StreamEvent{}, false, nil
		}
		payload := strings.Join(data, "\n")
		data = data[:0]
		var ev kserve.StreamEvent
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			return kserve.StreamEvent{}, false, fmt.Errorf("%w: event is not JSON: %v", ErrAPIProtocol, err)
		}
		switch {
		case ev.Error != "":
			return kserve.StreamEvent{}, false, &APIError{Message: ev.Error}
		case ev.Done:
			if ev.Prediction == "" {
				ev.Prediction = answer.String()
			}
			return ev, true, nil
		case ev.Token != "":
			if answer.Len()+len(ev.Token) > maxAnswerBytes {
				return kserve.StreamEvent{}, false, fmt.Errorf("%w: answer longer than %d bytes", ErrAPIProtocol, maxAnswerBytes)
			}
			answer.WriteString(ev.Token)
			if err := onToken(ev.Token); err != nil {
				return kserve.StreamEvent{}, false, err
			}
		}
		return kserve.StreamEvent{}, false, nil
	}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			ev, done, err := dispatch()
			if err != nil || done {
				return ev, err
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		if field == "data" {
			data = append(data, strings.TrimPrefix(value, " "))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return kserve.StreamEvent{}, fmt.Errorf("%w: an event line over %d bytes", ErrAPIProtocol, maxSSELine)
		}
		return kserve.StreamEvent{}, fmt.Errorf("read api stream: %w", err)
	}
	// A final event without its blank line still counts.
	if ev, done, err := dispatch(); err != nil || done {
		return ev, err
	}
	return kserve.StreamEvent{}, fmt.Errorf("%w: the stream ended before the answer was done", ErrAPIProtocol)
}

// feedback sends a thumbs up (score 1) or down (score 0) for a run.
func (c *apiClient) feedback(ctx context.Context, fb kserve.FeedbackRequest) error {
	body, err := json.Marshal(fb)
	if err != nil {
		return fmt.Errorf("encode feedback: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.feedbackURL(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("feedback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return classify(ctx, fmt.Errorf("feedback: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readAPIError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAPIErrorBody))
	return nil
}

// readAPIError turns a non-2xx response into an *APIError, reading the
// KServe {"error": "..."} body when there is one and plain text otherwise
// (Istio's "RBAC: access denied" is plain text).
func readAPIError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			if d := time.Until(t); d > 0 {
				e.RetryAfter = d
			}
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAPIErrorBody))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	return e
}

// classify marks an error from the HTTP exchange as a timeout when the
// context's deadline passed, and as unreachable when no response came.
func classify(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrAPITimeout, err)
	}
	if ctx.Err() != nil {
		return err // the browser went away; nobody reads the message
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %w", ErrAPIUnreachable, err)
	}
	return err
}
