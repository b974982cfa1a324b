package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/huggingface"
	"github.com/tmc/langchaingo/llms/openai"

	"github.com/kfllm/kfllm/internal/server"
)

// Backend kinds.
const (
	HuggingFace = "huggingface"
	OpenAI      = "openai"
)

// DefaultHuggingFaceURL is the serverless Inference API.
const DefaultHuggingFaceURL = "https://api-inference.huggingface.co"

// Options configure a remote backend.
type Options struct {
	// Kind is HuggingFace or OpenAI.
	Kind string
	// URL: for huggingface, a TGI server or Inference Endpoint URL (empty:
	// the serverless API with Model); for openai, the /v1 base URL.
	URL string
	// Model is the model id (MODEL_ID): the Hub repo, or the served model name.
	Model string
	// Token authenticates: HF_TOKEN, or the OpenAI-compatible API key. Never logged.
	Token string
	// ProbeInterval is the readiness probe's period (default 15 s).
	ProbeInterval time.Duration
	// HTTPClient is the base client (default: 10 s dial/header timeouts, no
	// overall timeout: the request's context bounds a generation).
	HTTPClient *http.Client
	// Logger gets readiness changes.
	Logger *slog.Logger
}

// Load builds the backend and probes the upstream once; a backend that
// cannot be reached loads anyway, not ready, and turns ready when the probe
// succeeds.
func Load(ctx context.Context, o Options) (*server.Backend, error) {
	if o.Model == "" {
		return nil, errors.New("remote backend: a model id (MODEL_ID) is required")
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	base := o.HTTPClient
	if base == nil {
		base = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			ResponseHeaderTimeout: 5 * time.Minute,
			MaxIdleConnsPerHost:   64,
		}}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr := &transport{base: rt, kind: o.Kind}
	client := &http.Client{Transport: tr}
	a := &adapter{kind: o.Kind, model: o.Model}
	var probeURL string
	switch o.Kind {
	case HuggingFace:
		opts := []huggingface.Option{huggingface.WithModel(o.Model), huggingface.WithHTTPClient(client),
			huggingface.WithToken(tokenOr(o.Token))}
		if o.URL != "" {
			u, err := url.Parse(o.URL)
			if err != nil || u.Scheme == "" || u.Host == "" {
				return nil, fmt.Errorf("huggingface backend: bad URL %q", o.URL)
			}
			tr.endpoint = u
			probeURL = strings.TrimRight(o.URL, "/") + "/health"
		} else {
			opts = append(opts, huggingface.WithURL(DefaultHuggingFaceURL))
			probeURL = DefaultHuggingFaceURL + "/models/" + o.Model
		}
		llm, err := huggingface.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("huggingface backend: %w", err)
		}
		a.llm = llm
	case OpenAI:
		if o.URL == "" {
			return nil, errors.New("openai backend: the /v1 base URL (--backend-url) is required")
		}
		llm, err := openai.New(openai.WithBaseURL(strings.TrimRight(o.URL, "/")), openai.WithModel(o.Model),
			openai.WithToken(tokenOr(o.Token)), openai.WithHTTPClient(client))
		if err != nil {
			return nil, fmt.Errorf("openai backend: %w", err)
		}
		a.llm = llm
		probeURL = strings.TrimRight(o.URL, "/") + "/models"
	default:
		return nil, fmt.Errorf("unknown backend %q (local, huggingface or openai)", o.Kind)
	}
	p := &prober{url: probeURL, token: o.Token, client: &http.Client{Transport: rt, Timeout: 10 * time.Second},
		log: o.Logger, kind: o.Kind}
	p.probe(ctx)
	stop := p.loop(o.ProbeInterval)
	return &server.Backend{
		LLM:   a,
		Info:  server.ModelInfo{ID: o.Model, Provider: o.Kind, LLMName: o.Kind + ":" + o.Model},
		Ready: func(context.Context) bool { return p.ready.Load() },
		Close: func(context.Context) error { stop(); return nil },
	}, nil
}

// tokenOr gives langchaingo's clients a placeholder when there is no token:
// both refuse an empty one, and local servers need none.
func tokenOr(t string) string {
	if t == "" {
		return "none"
	}
	return t
}

// adapter checks parameters against what the backend's client can send,
// maps them, and turns transport failures into *server.UpstreamError.
type adapter struct {
	kind, model string
	llm         llms.Model
}

var _ llms.Model = (*adapter)(nil)

func (a *adapter) Call(ctx context.Context, prompt string, options ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, a, prompt, options...)
}

func (a *adapter) GenerateContent(ctx context.Context, messages []llms.MessageContent, options ...llms.CallOption) (*llms.ContentResponse, error) {
	var o llms.CallOptions
	for _, opt := range options {
		opt(&o)
	}
	var unsupported []string
	var mapped []llms.CallOption
	switch a.kind {
	case HuggingFace:
		if len(o.StopWords) > 0 {
			unsupported = append(unsupported, "stop")
		}
		// langchaingo sends max_length; the transport renames it max_new_tokens.
		mapped = []llms.CallOption{llms.WithMaxLength(o.MaxTokens), llms.WithTemperature(o.Temperature),
			llms.WithTopP(o.TopP), llms.WithTopK(o.TopK), llms.WithRepetitionPenalty(o.RepetitionPenalty), llms.WithSeed(o.Seed)}
	case OpenAI:
		if o.TopP != 0 {
			unsupported = append(unsupported, "top_p")
		}
		if o.TopK != 0 {
			unsupported = append(unsupported, "top_k")
		}
		if o.RepetitionPenalty != 0 {
			unsupported = append(unsupported, "repetition_penalty")
		}
		mapped = []llms.CallOption{llms.WithMaxTokens(o.MaxTokens), openai.WithLegacyMaxTokensField(),
			llms.WithTemperature(o.Temperature), llms.WithSeed(o.Seed), llms.WithStopWords(o.StopWords)}
		if o.StreamingFunc != nil {
			mapped = append(mapped, llms.WithStreamingFunc(o.StreamingFunc))
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%w: the %s backend does not support %s", server.ErrInvalidParam, a.kind, strings.Join(unsupported, ", "))
	}
	rec := &record{}
	resp, err := a.llm.GenerateContent(context.WithValue(ctx, recordKey{}, rec), messages, mapped...)
	if err != nil {
		if ue := rec.get(); ue != nil {
			return nil, ue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &server.UpstreamError{Provider: a.kind, Message: err.Error()}
	}
	// langchaingo's OpenAI client ends a stream cut by the deadline without
	// an error; the text is then truncated, so it is a timeout.
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &server.UpstreamError{Provider: a.kind, Timeout: true, Message: "the answer did not finish in time"}
		}
		return nil, err
	}
	if resp == nil || len(resp.Choices) == 0 {
		return nil, &server.UpstreamError{Provider: a.kind, Status: http.StatusOK, Message: "no choices in the answer"}
	}
	if a.kind == HuggingFace {
		c := resp.Choices[0]
		// An upstream that ignores return_full_text echoes the prompt.
		if p := promptText(messages); p != "" {
			c.Content = strings.TrimPrefix(c.Content, p)
		}
		// langchaingo's huggingface client does not stream: the text comes at once.
		if o.StreamingFunc != nil && c.Content != "" {
			if err := o.StreamingFunc(ctx, []byte(c.Content)); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

func promptText(messages []llms.MessageContent) string {
	if len(messages) == 0 || len(messages[0].Parts) == 0 {
		return ""
	}
	t, _ := messages[0].Parts[0].(llms.TextContent)
	return t.Text
}

// record carries the upstream failure of one call from the transport.
type record struct {
	mu  sync.Mutex
	err *server.UpstreamError
}

type recordKey struct{}

func (r *record) set(e *server.UpstreamError) { r.mu.Lock(); r.err = e; r.mu.Unlock() }
func (r *record) get() *server.UpstreamError  { r.mu.Lock(); defer r.mu.Unlock(); return r.err }

// transport records failures and, for huggingface, shapes the request.
type transport struct {
	base     http.RoundTripper
	kind     string
	endpoint *url.URL // huggingface: POST here instead of {base}/models/MODEL
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(recordKey{}).(*record)
	if t.kind == HuggingFace && req.Method == http.MethodPost && req.Body != nil {
		nreq, err := t.shapeHF(req)
		if err != nil {
			return nil, err
		}
		req = nreq
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		ue := &server.UpstreamError{Provider: t.kind, Message: err.Error()}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			ue.Timeout = true
		}
		if rec != nil && !errors.Is(err, context.Canceled) {
			rec.set(ue)
		}
		return nil, err
	}
	if resp.StatusCode >= 400 && rec != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		rec.set(&server.UpstreamError{Provider: t.kind, Status: resp.StatusCode, Message: upstreamMessage(body)})
	}
	return resp, nil
}

// shapeHF rewrites langchaingo's text-generation payload as the API
// documents it: max_length -> max_new_tokens, return_full_text=false, and
// greedy decoding as do_sample=false without a temperature (TGI refuses 0).
func (t *transport) shapeHF(req *http.Request) (*http.Request, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var payload map[string]any
	if err := json.Unmarshal(body, &payload); err == nil {
		params, _ := payload["parameters"].(map[string]any)
		if params == nil {
			params = map[string]any{}
		}
		if v, ok := params["max_length"]; ok {
			params["max_new_tokens"] = v
			delete(params, "max_length")
		}
		if temp, _ := params["temperature"].(float64); temp <= 0 {
			delete(params, "temperature")
			params["do_sample"] = false
		} else {
			params["do_sample"] = true
		}
		params["return_full_text"] = false
		payload["parameters"] = params
		if body, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	nreq := req.Clone(req.Context())
	if t.endpoint != nil {
		nreq.URL = t.endpoint
		nreq.Host = ""
	}
	nreq.Body = io.NopCloser(bytes.NewReader(body))
	nreq.ContentLength = int64(len(body))
	nreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nreq, nil
}

// upstreamMessage pulls the message out of the error bodies TGI, the HF
// API and OpenAI-compatible servers send: {"error": "..."},
// {"error": {"message": "..."}}, {"message": "..."}, {"detail": "..."}.
func upstreamMessage(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		switch e := m["error"].(type) {
		case string:
			return e
		case map[string]any:
			if s, ok := e["message"].(string); ok {
				return s
			}
		}
		for _, k := range []string{"message", "detail"} {
			if s, ok := m[k].(string); ok {
				return s
			}
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return s
}

// prober keeps the upstream's readiness.
type prober struct {
	url, token, kind string
	client           *http.Client
	log              *slog.Logger
	ready            atomic.Bool
	probed           bool // only the probing goroutine (or Load before it starts) touches it
}

// probe asks the upstream once: 2xx (and 405, a reachable server without
// GET on that path) is ready; no answer, 5xx, 401, 403 or 404 is not.
func (p *prober) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, why := false, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err == nil {
		if p.token != "" {
			req.Header.Set("Authorization", "Bearer "+p.token)
		}
		var resp *http.Response
		if resp, err = p.client.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			ok = resp.StatusCode < 300 || resp.StatusCode == http.StatusMethodNotAllowed
			why = resp.Status
		}
	}
	if err != nil {
		why = err.Error()
	}
	if prev := p.ready.Swap(ok); prev != ok || !p.probed {
		p.log.Info("upstream readiness", "backend", p.kind, "url", p.url, "ready", ok, "status", why)
	}
	p.probed = true
}

func (p *prober) loop(every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.probe(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}
