package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
	"github.com/kfllm/kfllm/internal/remote"
	"github.com/kfllm/kfllm/internal/server"
)

// Local servers speak each backend's wire format (the Hugging Face
// text-generation API / TGI, and the OpenAI chat completions API with SSE
// streaming): the hosted services are not reachable from the test machines.

const template = "Answer the question using the context.\n\nContext: {context}\nQuestion: {question}\nAnswer:"

// upstream is a scriptable fake of both APIs.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []map[string]any
	auth     []string
	down     atomic.Bool
	status   atomic.Int32 // answer generations with this status and an error body
	delay    atomic.Int64 // ns before answering a generation
	chunkGap atomic.Int64 // ns between streamed chunks
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(u.handle))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last() map[string]any {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.payloads) == 0 {
		return nil
	}
	return u.payloads[len(u.payloads)-1]
}

func (u *upstream) handle(w http.ResponseWriter, r *http.Request) {
	if u.down.Load() {
		http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
		return
	}
	if r.Method == http.MethodGet {
		switch r.URL.Path {
		case "/health", "/v1/models":
			w.Write([]byte(`{"object":"list","data":[]}`))
		case "/models/owner/name": // the serverless API's model status
			w.Write([]byte(`{"loaded":true,"state":"Loadable"}`))
		default:
			http.NotFound(w, r)
		}
		return
	}
	var payload map[string]any
	json.NewDecoder(r.Body).Decode(&payload)
	u.mu.Lock()
	u.payloads = append(u.payloads, payload)
	u.auth = append(u.auth, r.Header.Get("Authorization"))
	u.mu.Unlock()
	if d := time.Duration(u.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if st := int(u.status.Load()); st != 0 {
		w.WriteHeader(st)
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			fmt.Fprintf(w, `{"error":{"message":"upstream says no (%d)","type":"invalid_request_error"}}`, st)
		} else {
			fmt.Fprintf(w, `{"error":"Model is overloaded (%d)"}`, st)
		}
		return
	}
	switch {
	case r.URL.Path == "/v1/chat/completions":
		msgs := payload["messages"].([]any)
		prompt := msgs[len(msgs)-1].(map[string]any)["content"].(string)
		answer := " answer to " + strings.ToUpper(prompt[strings.LastIndex(prompt, "Question: ")+10:strings.LastIndex(prompt, "\n")])
		if stream, _ := payload["stream"].(bool); stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, word := range strings.SplitAfter(answer, " ") {
				fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
				w.(http.Flusher).Flush()
				time.Sleep(time.Duration(u.chunkGap.Load()))
			}
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":5,\"total_tokens\":45}}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"id": "c1", "object": "chat.completion", "model": payload["model"],
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": answer}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}})
	default: // text-generation: /models/OWNER/NAME (serverless) or / (TGI, Inference Endpoint)
		prompt, _ := payload["inputs"].(string)
		json.NewEncoder(w).Encode([]map[string]string{{"generated_text": " hf says " + strings.ToUpper(prompt[strings.LastIndex(prompt, "Question: ")+10:strings.LastIndex(prompt, "\n")])}})
	}
}

type env struct {
	url string
	ls  *langsmithtest.Server
	srv *server.Server
}

func start(t *testing.T, o remote.Options, timeout time.Duration) *env {
	t.Helper()
	ls := langsmithtest.New()
	t.Cleanup(ls.Close)
	tracer := langsmith.NewTracer(langsmith.NewClient(langsmith.Config{Endpoint: ls.URL, Project: "remote"}, langsmith.ClientOptions{}),
		langsmith.TracerOptions{FlushInterval: 5 * time.Millisecond})
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Options{ModelName: "llm", Template: template, Tracer: tracer, RequestTimeout: timeout,
		Logger: o.Logger, Load: func(ctx context.Context) (*server.Backend, error) { return remote.Load(ctx, o) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{url: "http://" + ln.Addr().String(), ls: ls, srv: srv}
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) post(t *testing.T, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) status(t *testing.T, path string) int {
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const predictBody = `{"instances":[{"context":"c","question":"where?"}],"parameters":{"max_new_tokens":20}}`

func TestHuggingFaceServerless(t *testing.T) {
	up := newUpstream(t)
	// The serverless API's base is fixed; point it at the fake by a
	// transport that keeps the path (/models/OWNER/NAME).
	client := &http.Client{Transport: redirect(up.URL)}
	e := start(t, remote.Options{Kind: remote.HuggingFace, Model: "owner/name", Token: "hf_secret", HTTPClient: client}, 5*time.Second)
	code, _, body := e.post(t, "/v1/models/llm:predict", predictBody)
	if code != 200 || !strings.Contains(body, `"predictions":["hf says WHERE?"]`) {
		t.Fatalf("%d %s", code, body)
	}
	p := up.last()
	params := p["parameters"].(map[string]any)
	if !strings.HasSuffix(p["inputs"].(string), "Question: where?\nAnswer:") || params["max_new_tokens"] != 20.0 ||
		params["return_full_text"] != false || params["do_sample"] != false || params["temperature"] != nil || params["max_length"] != nil {
		t.Errorf("payload %v", p)
	}
	if up.auth[0] != "Bearer hf_secret" {
		t.Errorf("auth %q", up.auth[0])
	}
	// Sampling parameters map onto the API's names.
	e.post(t, "/v1/models/llm:predict", `{"instances":["q?"],"parameters":{"temperature":0.7,"top_p":0.9,"top_k":5,"repetition_penalty":1.2,"seed":3}}`)
	params = up.last()["parameters"].(map[string]any)
	if params["temperature"] != 0.7 || params["do_sample"] != true || params["top_p"] != 0.9 || params["top_k"] != 5.0 ||
		params["repetition_penalty"] != 1.2 || params["seed"] != 3.0 {
		t.Errorf("sampling payload %v", params)
	}
	// Stop strings cannot be sent through langchaingo's huggingface client.
	code, _, body = e.post(t, "/v1/models/llm:predict", `{"instances":["q"],"parameters":{"stop":["\n"]}}`)
	if code != 400 || !strings.Contains(body, "huggingface backend does not support stop") {
		t.Errorf("stop: %d %s", code, body)
	}
}

// redirect sends every request to base, keeping the path.
func redirect(base string) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host, r2.Host = "http", strings.TrimPrefix(base, "http://"), ""
		return http.DefaultTransport.RoundTrip(r2)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHuggingFaceEndpointErrorsAndTimeouts(t *testing.T) {
	up := newUpstream(t)
	e := start(t, remote.Options{Kind: remote.HuggingFace, URL: up.URL, Model: "owner/name"}, 300*time.Millisecond)
	if code, _, body := e.post(t, "/v1/models/llm:predict", predictBody); code != 200 || !strings.Contains(body, "hf says WHERE?") {
		t.Fatalf("TGI endpoint: %d %s", code, body)
	}
	up.status.Store(503)
	code, _, body := e.post(t, "/v1/models/llm:predict", predictBody)
	if code != 502 || !strings.Contains(body, "upstream huggingface answered 503: Model is overloaded (503)") {
		t.Errorf("upstream 503: %d %s", code, body)
	}
	up.status.Store(422)
	if code, _, body := e.post(t, "/v1/models/llm:predict", predictBody); code != 502 || !strings.Contains(body, "422") {
		t.Errorf("upstream 422: %d %s", code, body)
	}
	up.status.Store(0)
	up.delay.Store(int64(2 * time.Second))
	if code, _, body := e.post(t, "/v1/models/llm:predict", predictBody); code != 504 {
		t.Errorf("slow upstream: %d %s", code, body)
	}
	up.mu.Lock()
	n := len(up.payloads)
	up.mu.Unlock()
	if n != 4 {
		t.Errorf("%d generation requests upstream, want 4 (no retries of a non-idempotent POST)", n)
	}
}

func TestOpenAI(t *testing.T) {
	up := newUpstream(t)
	e := start(t, remote.Options{Kind: remote.OpenAI, URL: up.URL + "/v1", Model: "served-model", Token: "sk-secret"}, 5*time.Second)
	code, hdr, body := e.post(t, "/v1/models/llm:predict", predictBody)
	if code != 200 || !strings.Contains(body, `"predictions":["answer to WHERE?"]`) {
		t.Fatalf("%d %s", code, body)
	}
	p := up.last()
	msgs := p["messages"].([]any)
	if p["model"] != "served-model" || p["max_tokens"] != 20.0 || p["temperature"] != 0.0 || len(msgs) != 1 ||
		!strings.HasSuffix(msgs[0].(map[string]any)["content"].(string), "Question: where?\nAnswer:") || up.auth[0] != "Bearer sk-secret" {
		t.Errorf("payload %v auth %q", p, up.auth[0])
	}
	e.post(t, "/v1/models/llm:predict", `{"instances":["q"],"parameters":{"stop":["\n"],"seed":9,"temperature":0.5}}`)
	if p := up.last(); fmt.Sprint(p["stop"]) != "[\n]" || p["seed"] != 9.0 || p["temperature"] != 0.5 {
		t.Errorf("stop/seed payload %v", p)
	}
	code, _, body = e.post(t, "/v1/models/llm:predict", `{"instances":["q"],"parameters":{"top_p":0.5,"top_k":3}}`)
	if code != 400 || !strings.Contains(body, "openai backend does not support top_p, top_k") {
		t.Errorf("unsupported: %d %s", code, body)
	}
	// The trace names the remote model and provider, with its token usage.
	runID := hdr.Get("X-Run-Id")
	deadline := time.Now().Add(5 * time.Second)
	var llm *langsmithtest.Run
	for llm == nil && time.Now().Before(deadline) {
		for _, r := range e.ls.Runs() {
			if r.TraceID == runID && r.RunType == "llm" {
				llm = &r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if llm == nil || llm.Name != "openai:served-model" || llm.Metadata()["ls_provider"] != "openai" || llm.Metadata()["tokens_out"] != 5.0 {
		t.Errorf("llm run %+v", llm)
	}
	// Upstream errors carry the upstream's message.
	up.status.Store(400)
	if code, _, body := e.post(t, "/v1/models/llm:predict", predictBody); code != 502 || !strings.Contains(body, "upstream says no (400)") {
		t.Errorf("upstream 400: %d %s", code, body)
	}
}

func TestOpenAIStreamingAndSlowStream(t *testing.T) {
	up := newUpstream(t)
	up.chunkGap.Store(int64(30 * time.Millisecond))
	e := start(t, remote.Options{Kind: remote.OpenAI, URL: up.URL + "/v1", Model: "m"}, 5*time.Second)
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/models/llm:predict", strings.NewReader(predictBody))
	req.Header.Set("Accept", "text/event-stream")
	begin := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	var firstAt time.Duration
	buf := make([]byte, 4096)
	var all strings.Builder
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && firstAt == 0 {
			firstAt = time.Since(begin)
		}
		all.Write(buf[:n])
		if err != nil {
			break
		}
	}
	total := time.Since(begin)
	for _, l := range strings.Split(all.String(), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			events = append(events, d)
		}
	}
	if len(events) < 4 || !strings.Contains(events[len(events)-1], `"prediction":"answer to WHERE?"`) {
		t.Fatalf("events %v", events)
	}
	if firstAt > total/2 {
		t.Errorf("first bytes after %v of %v: not streamed", firstAt, total)
	}
	// A stream slower than the request timeout ends with an error event.
	up.chunkGap.Store(int64(400 * time.Millisecond))
	e2 := start(t, remote.Options{Kind: remote.OpenAI, URL: up.URL + "/v1", Model: "m"}, 300*time.Millisecond)
	_, _, body := e2.post(t, "/v1/models/llm:predict", predictBody, "Accept", "text/event-stream")
	if !strings.Contains(body, `"error"`) || strings.Contains(body, `"done":true`) {
		t.Errorf("slow stream: %s", body)
	}
	// OpenAI-compatible routes of our server stream through the remote backend too.
	up.chunkGap.Store(0)
	_, _, body = e.post(t, "/openai/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"why?"}],"stream":true}`)
	if !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") || !strings.Contains(body, "WHY?") {
		t.Errorf("chat stream: %s", body)
	}
}

func TestReadinessFollowsUpstream(t *testing.T) {
	up := newUpstream(t)
	up.down.Store(true)
	e := start(t, remote.Options{Kind: remote.OpenAI, URL: up.URL + "/v1", Model: "m", ProbeInterval: 20 * time.Millisecond}, time.Second)
	for _, p := range []string{"/v1/models/llm", "/v2/health/ready", "/v2/models/llm/ready"} {
		if s := e.status(t, p); s != 503 {
			t.Errorf("%s with the upstream down: %d", p, s)
		}
	}
	up.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for e.status(t, "/v1/models/llm") != 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := e.status(t, "/v1/models/llm"); s != 200 {
		t.Fatalf("after the upstream came back: %d", s)
	}
	up.down.Store(true)
	deadline = time.Now().Add(5 * time.Second)
	for e.status(t, "/v1/models/llm") != 503 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := e.status(t, "/v1/models/llm"); s != 503 {
		t.Errorf("after the upstream went away: %d", s)
	}
	// An unreachable upstream (nothing listening) is not ready either.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	e2 := start(t, remote.Options{Kind: remote.HuggingFace, URL: "http://" + addr, Model: "m"}, time.Second)
	if s := e2.status(t, "/v2/health/ready"); s != 503 {
		t.Errorf("unreachable upstream: ready %d", s)
	}
	// Generation against it is a 502, not a 500.
	up.down.Store(false)
	code, _, body := e2.post(t, "/v1/models/llm:predict", predictBody)
	if code != 503 && code != 502 {
		t.Errorf("unreachable upstream predict: %d %s", code, body)
	}
}
