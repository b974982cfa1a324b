package langsmith

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"sync/atomic"
	"time"
)

// ClientOptions tune a [Client]. Zero values take the defaults.
type ClientOptions struct {
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// MaxRetries is how many times a request is retried on a network error,
	// 429 or 5xx (default 3; negative: none).
	MaxRetries int
	// Backoff is the first retry's delay, doubled for each retry (default 500 ms).
	// A Retry-After header, when present, wins, up to MaxBackoff.
	Backoff time.Duration
	// MaxBackoff caps one delay (default 10 s).
	MaxBackoff time.Duration
}

// Client speaks LangSmith's run ingestion and feedback API.
type Client struct {
	cfg   Config
	http  *http.Client
	opts  ClientOptions
	batch atomic.Bool // the server lacks /runs/multipart: use /runs/batch
}

// APIError is a response LangSmith refused.
type APIError struct {
	Op     string
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("langsmith %s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// NewClient returns a client for cfg.Endpoint authenticated with cfg.APIKey.
func NewClient(cfg Config, opts ClientOptions) *Client {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	return &Client{cfg: cfg, http: opts.HTTPClient, opts: opts}
}

// IngestRuns creates finished runs (each carrying its outputs or error) in
// one request: POST /runs/multipart, or POST /runs/batch {"post": [...]} once
// the server has answered 404, 405 or 415 to multipart. A 409 (the runs
// exist already, e.g. after a retried request that did arrive) counts as done.
func (c *Client) IngestRuns(ctx context.Context, runs []*Run) error {
	if len(runs) == 0 {
		return nil
	}
	for _, r := range runs {
		if err := r.validate(); err != nil {
			return fmt.Errorf("ingest runs: %w", err)
		}
		if r.SessionName == "" {
			r.SessionName = c.cfg.Project
		}
	}
	if !c.batch.Load() {
		body, ctype, err := multipartRuns(runs)
		if err != nil {
			return fmt.Errorf("ingest runs: %w", err)
		}
		err = c.do(ctx, "ingest runs (multipart)", "/runs/multipart", ctype, body)
		var apiErr *APIError
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound ||
			apiErr.Status == http.StatusMethodNotAllowed || apiErr.Status == http.StatusUnsupportedMediaType) {
			c.batch.Store(true)
		} else {
			return err
		}
	}
	body, err := json.Marshal(map[string]any{"post": runs, "patch": []*Run{}})
	if err != nil {
		return fmt.Errorf("ingest runs: encode batch: %w", err)
	}
	return c.do(ctx, "ingest runs (batch)", "/runs/batch", "application/json", body)
}

// multipartRuns encodes runs as the SDK's multipart ingestion does: part
// post.<id> holds the run without inputs and outputs, which follow in parts
// post.<id>.inputs and post.<id>.outputs.
func multipartRuns(runs []*Run) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part := func(name string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, name))
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(data)))
		pw, err := w.CreatePart(h)
		if err != nil {
			return err
		}
		_, err = pw.Write(data)
		return err
	}
	for _, r := range runs {
		if err := part("post."+r.ID, runHead{r}); err != nil {
			return nil, "", err
		}
		if r.Inputs != nil {
			if err := part("post."+r.ID+".inputs", r.Inputs); err != nil {
				return nil, "", err
			}
		}
		if r.Outputs != nil {
			if err := part("post."+r.ID+".outputs", r.Outputs); err != nil {
				return nil, "", err
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// runHead encodes a run without its inputs and outputs.
type runHead struct{ r *Run }

func (h runHead) MarshalJSON() ([]byte, error) {
	type plain struct {
		ID          string         `json:"id"`
		TraceID     string         `json:"trace_id"`
		ParentRunID string         `json:"parent_run_id,omitempty"`
		DottedOrder string         `json:"dotted_order"`
		Name        string         `json:"name"`
		RunType     string         `json:"run_type"`
		StartTime   time.Time      `json:"start_time"`
		EndTime     *time.Time     `json:"end_time,omitempty"`
		Error       string         `json:"error,omitempty"`
		Extra       map[string]any `json:"extra,omitempty"`
		Tags        []string       `json:"tags,omitempty"`
		SessionName string         `json:"session_name,omitempty"`
	}
	r := h.r
	return json.Marshal(plain{r.ID, r.TraceID, r.ParentRunID, r.DottedOrder, r.Name, r.RunType,
		r.StartTime, r.EndTime, r.Error, r.Extra, r.Tags, r.SessionName})
}

// Feedback is a user's judgement of a run: the UI's thumbs up (1) or down (0).
type Feedback struct {
	ID      string   `json:"id"`
	RunID   string   `json:"run_id"`
	Key     string   `json:"key"`
	Score   *float64 `json:"score,omitempty"`
	Comment string   `json:"comment,omitempty"`
	Source  struct {
		Type string `json:"type"`
	} `json:"feedback_source"`
}

// NewFeedback returns feedback with a fresh id from source "api", its run id
// in canonical form when it is a UUID in any form. It checks nothing else:
// callers that answer a request use [ParseFeedback], which says what is
// wrong; [Tracer.Feedback] refuses what ParseFeedback would.
func NewFeedback(runID, key string, score float64, comment string) Feedback {
	if id, err := ParseRunID(runID); err == nil {
		runID = id
	}
	fb := Feedback{ID: newRunID(), RunID: runID, Key: key, Score: &score, Comment: comment}
	fb.Source.Type = "api"
	return fb
}

// CreateFeedback posts fb to /feedback. A 409 (already recorded) is success.
func (c *Client) CreateFeedback(ctx context.Context, fb Feedback) error {
	body, err := json.Marshal(fb)
	if err != nil {
		return fmt.Errorf("create feedback: %w", err)
	}
	return c.do(ctx, "create feedback", "/feedback", "application/json", body)
}

// do POSTs body, retrying network errors, 429 and 5xx with backoff.
func (c *Client) do(ctx context.Context, op, path, ctype string, body []byte) error {
	delay := c.opts.Backoff
	var last error
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint+path, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("langsmith %s: %w", op, err)
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "kfllm-langsmith/1")
		if c.cfg.APIKey != "" {
			req.Header.Set("x-api-key", c.cfg.APIKey)
		}
		if c.cfg.WorkspaceID != "" {
			req.Header.Set("x-tenant-id", c.cfg.WorkspaceID)
		}
		resp, err := c.http.Do(req)
		wait := delay
		if err != nil {
			last = fmt.Errorf("langsmith %s: %w", op, err)
		} else {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300 || resp.StatusCode == http.StatusConflict:
				return nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				last = &APIError{Op: op, Status: resp.StatusCode, Body: string(bytes.TrimSpace(msg))}
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
					wait = time.Duration(s) * time.Second
				}
			default:
				return &APIError{Op: op, Status: resp.StatusCode, Body: string(bytes.TrimSpace(msg))}
			}
		}
		if attempt >= c.opts.MaxRetries || ctx.Err() != nil {
			return last
		}
		wait = min(wait, c.opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
		delay *= 2
	}
}
