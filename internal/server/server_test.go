package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	"github.com/kfllm/kfllm/internal/server"
)

// These tests run the real server on loopback over HTTP, with the real
// scheduler and a scripted engine (internal/scheduler/schedulertest), and a
// local LangSmith stand-in that checks every payload it gets. The black-box
// suite on a real tiny model is in internal/engine.

// designTemplate is docs/design.md §4's prompt.
const designTemplate = "Answer the question using the context.\n\nContext: {context}\nQuestion: {question}\nAnswer:"

const modelName = "llm"

// upperAnswer answers " " + the question in upper case, so that tests see
// the prompt was rendered with the instance's question.
func upperAnswer(p string) string {
	i := strings.Index(p, "Question: ")
	j := strings.LastIndex(p, "\nAnswer:")
	if i < 0 || j < i {
		return " " + p // raw completions
	}
	return " " + strings.ToUpper(p[i+len("Question: "):j])
}

type env struct {
	t      *testing.T
	url    string
	eng    *schedulertest.Engine
	ls     *langsmithtest.Server
	logs   *syncBuffer
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type setup struct {
	sched   scheduler.Options
	opts    func(*server.Options)
	gate    chan struct{} // Load waits for it
	tracing bool
	backend func(ctx context.Context) (*server.Backend, error)
}

func start(t *testing.T, eng *schedulertest.Engine, cfg setup) *env {
	t.Helper()
	e := &env{t: t, eng: eng, logs: &syncBuffer{}, done: make(chan error, 1)}
	var tracer *langsmith.Tracer
	if cfg.tracing {
		e.ls = langsmithtest.New()
		t.Cleanup(e.ls.Close)
		tracer = langsmith.NewTracer(langsmith.NewClient(langsmith.Config{Tracing: true, Endpoint: e.ls.URL, Project: "kfllm-test"},
			langsmith.ClientOptions{Backoff: time.Millisecond}), langsmith.TracerOptions{FlushInterval: 5 * time.Millisecond})
	}
	cfg.sched.EOS = []int{schedulertest.EOS}
	load := cfg.backend
	if load == nil {
		load = func(ctx context.Context) (*server.Backend, error) {
			if cfg.gate != nil {
				select {
				case <-cfg.gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			sch := scheduler.New(eng, schedulertest.ByteTokenizer{}, cfg.sched)
			return server.NewLocalBackend(sch, server.ModelInfo{ID: "kfllm/tiny", Revision: "abc123", LLMName: "TinyLM"}), nil
		}
	}
	opts := server.Options{
		ModelName: modelName, Template: designTemplate, Load: load, Tracer: tracer,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
	if cfg.opts != nil {
		cfg.opts(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { e.stop() })
	if cfg.gate == nil && cfg.backend == nil {
		e.waitReady()
	}
	return e
}

// stop shuts the server down (idempotent) and returns Serve's error.
func (e *env) stop() error {
	e.cancel()
	select {
	case err, ok := <-e.done:
		if ok {
			close(e.done)
		}
		return err
	case <-time.After(30 * time.Second):
		e.t.Fatal("server did not stop")
		return nil
	}
}

func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.url + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatal("model never became ready")
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %q", r.status, r.body)
	}
	return m
}

func (e *env) do(method, path, ctype, body string, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) post(path, body string, header ...string) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, "application/json", body, header...)
}

func (e *env) get(path string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, "", "")
}

func expectError(t *testing.T, r response, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (body %s)", r.status, status, r.body)
		return
	}
	got, _ := r.json(t)["error"].(string)
	if !strings.Contains(got, msg) {
		t.Errorf("error %q, want it to contain %q", got, msg)
	}
}

func TestHealthAndMetadataRoutes(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	checks := []struct{ path, want string }{
		{"/", `{"status":"alive"}`},
		{"/v1/models", `{"models":["llm"]}`},
		{"/v1/models/llm", `{"name":"llm","ready":true}`},
		{"/v2/health/live", `{"live":true}`},
		{"/v2/health/ready", `{"ready":true}`},
		{"/v2/models/llm/ready", `{"name":"llm","ready":true}`},
	}
	for _, c := range checks {
		r := e.get(c.path)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != c.want || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s %q", c.path, r.status, r.body, r.header.Get("Content-Type"))
		}
	}
	md := e.get("/v2/models/llm").json(t)
	if md["name"] != "llm" || fmt.Sprint(md["versions"]) != "[abc123]" || len(md["inputs"].([]any)) != 2 {
		t.Errorf("V2 metadata %v", md)
	}
	models := e.get("/openai/v1/models").json(t)
	if models["object"] != "list" || models["data"].([]any)[0].(map[string]any)["id"] != "llm" {
		t.Errorf("OpenAI models %v", models)
	}
	expectError(t, e.get("/nope"), 404, "Not Found")
	expectError(t, e.do(http.MethodDelete, "/v1/models/llm", "", ""), 405, "Method Not Allowed")
}

func TestNotReadyWhileLoadingThenReady(t *testing.T) {
	gate := make(chan struct{})
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{gate: gate})
	// The server answers at once, before the model is loaded.
	if r := e.get("/"); r.status != 200 {
		t.Fatalf("liveness while loading: %d", r.status)
	}
	const notReady = "Model with name llm is not ready."
	for _, r := range []response{
		e.get("/v1/models/llm"),
		e.post("/v1/models/llm:predict", `{"instances":[{"question":"q"}]}`),
		e.get("/v2/models/llm/ready"),
		e.post("/v2/models/llm/infer", `{"inputs":[]}`),
	} {
		expectError(t, r, 503, notReady)
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if r := e.get("/v2/health/ready"); r.status != 503 || strings.TrimSpace(string(r.body)) != `{"ready":false}` {
		t.Errorf("V2 ready while loading: %d %s", r.status, r.body)
	}
	r := e.post("/openai/v1/completions", `{"model":"llm","prompt":"x"}`)
	if r.status != 503 || !strings.Contains(string(r.body), notReady) {
		t.Errorf("OpenAI while loading: %d %s", r.status, r.body)
	}
	close(gate)
	e.waitReady()
	if r := e.get("/v1/models/llm"); r.status != 200 {
		t.Errorf("after loading: %d %s", r.status, r.body)
	}
}

func TestLoadFailureEndsServe(t *testing.T) {
	boom := errors.New("no such model dir")
	e := start(t, &schedulertest.Engine{}, setup{backend: func(context.Context) (*server.Backend, error) { return nil, boom }})
	select {
	case err := <-e.done:
		close(e.done)
		if !errors.Is(err, boom) {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after a failed load")
	}
}

func TestUnknownModel(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	const msg = "Model with name other does not exist."
	expectError(t, e.get("/v1/models/other"), 404, msg)
	expectError(t, e.post("/v1/models/other:predict", `{"instances":[]}`), 404, msg)
	expectError(t, e.get("/v2/models/other"), 404, msg)
	expectError(t, e.get("/v2/models/other/ready"), 404, msg)
	expectError(t, e.post("/v2/models/other/infer", `{}`), 404, msg)
	r := e.post("/openai/v1/completions", `{"model":"other","prompt":"x"}`)
	if r.status != 404 || r.json(t)["error"].(map[string]any)["code"] != "model_not_found" {
		t.Errorf("OpenAI unknown model: %d %s", r.status, r.body)
	}
}

func TestV1Predict(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	body := `{"instances":[{"context":"Paris is in France.","question":"where is paris?"},{"question":"who?"},"bare question"],
	          "parameters":{"max_new_tokens":64,"temperature":0,"stop":["\n\n"]}}`
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "", "text/plain"} {
		r := e.do(http.MethodPost, "/v1/models/llm:predict", ct, body)
		if r.status != 200 {
			t.Fatalf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
		m := r.json(t)
		preds := fmt.Sprint(m["predictions"])
		if preds != "[WHERE IS PARIS? WHO? BARE QUESTION]" {
			t.Errorf("predictions %s", preds)
		}
		if ids := m["run_ids"].([]any); len(ids) != 3 || ids[0] == ids[1] {
			t.Errorf("run_ids %v", ids)
		}
		if r.header.Get("X-Run-Id") != "" {
			t.Error("X-Run-Id set for a multi-instance request")
		}
	}
	r := e.post("/v1/models/llm:predict", `{"instances":[{"question":"one"}]}`)
	m := r.json(t)
	if r.header.Get("X-Run-Id") == "" || r.header.Get("X-Run-Id") != m["run_ids"].([]any)[0] {
		t.Errorf("X-Run-Id %q, run_ids %v", r.header.Get("X-Run-Id"), m["run_ids"])
	}
	// max_new_tokens is honoured.
	m = e.post("/v1/models/llm:predict", `{"instances":[{"question":"abcdefgh"}],"parameters":{"max_new_tokens":4}}`).json(t)
	if fmt.Sprint(m["predictions"]) != "[ABC]" { // " ABC": 4 tokens, trimmed by the parser
		t.Errorf("4 tokens: %v", m["predictions"])
	}
}

func TestV1BadRequests(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{opts: func(o *server.Options) {
		o.MaxBodyBytes = 2048
		o.MaxInstances = 4
	}})
	cases := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"malformed JSON", `{"instances": [`, 400, "Unrecognized request format"},
		{"not JSON", `hello`, 400, "Unrecognized request format"},
		{"instances not a list", `{"instances": {"question": "q"}}`, 400, `Expected "instances" to be a list`},
		{"instances a string", `{"instances": "q"}`, 400, `Expected "instances" to be a list`},
		{"no instances", `{"parameters": {}}`, 400, `Expected "instances"`},
		{"empty instances", `{"instances": []}`, 400, `"instances" is empty`},
		{"too many instances", `{"instances": ["a","b","c","d","e"]}`, 400, "at most 4"},
		{"instance without question", `{"instances": [{"context": "c"}]}`, 400, `"question" is required`},
		{"instance with unknown field", `{"instances": [{"question": "q", "contxt": "c"}]}`, 400, "unknown field"},
		{"instance of wrong type", `{"instances": [42]}`, 400, "instance 0"},
		{"empty question", `{"instances": [{"question": "  "}]}`, 400, "empty"},
		{"unknown top-level field", `{"instances": ["q"], "params": {}}`, 400, "unknown field"},
		{"unknown parameter", `{"instances": ["q"], "parameters": {"max_new_token": 5}}`, 400, `unknown parameter "max_new_token"`},
		{"negative temperature", `{"instances": ["q"], "parameters": {"temperature": -1}}`, 400, "temperature"},
		{"zero max_new_tokens", `{"instances": ["q"], "parameters": {"max_new_tokens": 0}}`, 400, "at least 1"},
		{"top_p out of range", `{"instances": ["q"], "parameters": {"top_p": 1.5}}`, 400, "top_p"},
		{"bad stop", `{"instances": ["q"], "parameters": {"stop": 5}}`, 400, "stop"},
		{"trailing data", `{"instances": ["q"]} {}`, 400, "trailing data"},
		{"body too large", `{"instances": ["` + strings.Repeat("x", 4096) + `"]}`, 413, "larger than 2048 bytes"},
		{"streaming two instances", `{"instances": ["a", "b"]}`, 400, "one instance at a time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if strings.HasPrefix(c.name, "streaming") {
				hdr = []string{"Accept", "text/event-stream"}
			}
			expectError(t, e.post("/v1/models/llm:predict", c.body, hdr...), c.status, c.msg)
		})
	}
	// A prompt longer than the context is the client's error too.
	e2 := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{sched: scheduler.Options{ContextLength: 64}})
	expectError(t, e2.post("/v1/models/llm:predict", `{"instances":["`+strings.Repeat("q", 100)+`"]}`), 400, "too long")
}

// readSSE returns the data payloads of an event stream.
func readSSE(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		} else if line != "" {
			t.Errorf("unexpected SSE line %q", line)
		}
	}
	return out
}

func TestV1Streaming(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer, StepDelay: time.Millisecond}, setup{})
	r := e.post("/v1/models/llm:predict", `{"instances":[{"context":"c","question":"stream me"}]}`, "Accept", "text/event-stream")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	events := readSSE(t, bytes.NewReader(r.body))
	if len(events) < 3 {
		t.Fatalf("events %v", events)
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var tok struct{ Token string }
		if err := json.Unmarshal([]byte(ev), &tok); err != nil || tok.Token == "" {
			t.Fatalf("token event %q", ev)
		}
		text.WriteString(tok.Token)
	}
	var done struct {
		Done       bool   `json:"done"`
		Prediction string `json:"prediction"`
		RunID      string `json:"run_id"`
		TokensIn   int    `json:"tokens_in"`
		TokensOut  int    `json:"tokens_out"`
		LatencyMS  *int64 `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-1]), &done); err != nil {
		t.Fatal(err)
	}
	if !done.Done || done.Prediction != "STREAM ME" || text.String() != " STREAM ME" || done.RunID == "" ||
		done.RunID != r.header.Get("X-Run-Id") || done.TokensOut != len(" STREAM ME") || done.TokensIn == 0 || done.LatencyMS == nil {
		t.Errorf("done %+v, streamed %q, X-Run-Id %q", done, text.String(), r.header.Get("X-Run-Id"))
	}
}

func TestV2Infer(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	r := e.post("/v2/models/llm/infer", `{"id":"req-1","inputs":[
		{"name":"question","shape":[2],"datatype":"BYTES","data":["first?","second?"]},
		{"name":"context","shape":[2,1],"datatype":"BYTES","data":[["a"],["b"]]}],
		"parameters":{"max_new_tokens":32}}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	out := m["outputs"].([]any)[0].(map[string]any)
	if m["id"] != "req-1" || m["model_name"] != "llm" || out["name"] != "output" || out["datatype"] != "BYTES" ||
		fmt.Sprint(out["shape"]) != "[2]" || fmt.Sprint(out["data"]) != "[FIRST? SECOND?]" ||
		len(m["parameters"].(map[string]any)["run_ids"].([]any)) != 2 {
		t.Errorf("response %s", r.body)
	}
	bad := []struct{ body, msg string }{
		{`{"inputs":[{"name":"question","shape":[1],"datatype":"FP32","data":[1]}]}`, "want BYTES"},
		{`{"inputs":[{"name":"question","shape":[2],"datatype":"BYTES","data":["a"]}]}`, "holds 2 elements"},
		{`{"inputs":[{"name":"context","shape":[1],"datatype":"BYTES","data":["a"]}]}`, `"question" is required`},
		{`{"inputs":[{"name":"q","shape":[1],"datatype":"BYTES","data":["a"]}]}`, "unknown input"},
		{`{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":["a"]},{"name":"context","shape":[2],"datatype":"BYTES","data":["a","b"]}]}`, "differ in length"},
		{`{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":[1]}]}`, "list of strings"},
		{`{"inputs":`, "Unrecognized request format"},
	}
	for _, b := range bad {
		expectError(t, e.post("/v2/models/llm/infer", b.body), 400, b.msg)
	}
}

func TestOpenAICompletions(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: func(p string) string { return " done: " + p }}, setup{})
	r := e.post("/openai/v1/completions", `{"model":"llm","prompt":"Say hi","max_tokens":50}`)
	m := r.json(t)
	choice := m["choices"].([]any)[0].(map[string]any)
	if r.status != 200 || m["object"] != "text_completion" || choice["text"] != " done: Say hi" ||
		choice["finish_reason"] != "stop" || m["usage"].(map[string]any)["prompt_tokens"].(float64) != 6 {
		t.Errorf("%d %s", r.status, r.body)
	}
	m = e.post("/openai/v1/completions", `{"model":"llm","prompt":"Say hi","max_tokens":3}`).json(t)
	if c := m["choices"].([]any)[0].(map[string]any); c["finish_reason"] != "length" || c["text"] != " do" {
		t.Errorf("max_tokens 3: %v", c)
	}
	r = e.post("/openai/v1/completions", `{"model":"llm","prompt":"Stream","stream":true,"stream_options":{"include_usage":true}}`)
	events := readSSE(t, bytes.NewReader(r.body))
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %v", events)
	}
	var text strings.Builder
	var sawFinish, sawUsage bool
	for _, ev := range events[:len(events)-1] {
		var c struct {
			Object  string
			Choices []struct {
				Text         string
				FinishReason *string `json:"finish_reason"`
			}
			Usage map[string]int
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "text_completion" {
			t.Fatalf("chunk %q", ev)
		}
		if c.Usage != nil {
			sawUsage = c.Usage["completion_tokens"] == len(" done: Stream")
			continue
		}
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			sawFinish = *c.Choices[0].FinishReason == "stop"
		}
	}
	if text.String() != " done: Stream" || !sawFinish || !sawUsage {
		t.Errorf("streamed %q finish %v usage %v", text.String(), sawFinish, sawUsage)
	}
	for body, msg := range map[string]string{
		`{"model":"llm","prompt":"x","n":2}`:               `"n" must be 1`,
		`{"model":"llm","prompt":5}`:                       `"prompt" must be`,
		`{"model":"llm","prompt":"x","echo":true}`:         "not supported",
		`{"model":"llm","prompt":"x","temprature":1}`:      "unknown field",
		`{"model":"llm","prompt":["a","b"],"stream":true}`: "one prompt at a time",
	} {
		r := e.post("/openai/v1/completions", body)
		if got, _ := r.json(t)["error"].(map[string]any)["message"].(string); r.status != 400 || !strings.Contains(got, msg) {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}

func TestOpenAIChat(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: func(p string) string { return " [" + p + "]" }}, setup{})
	body := `{"model":"llm","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},
		{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"text","text":"why?"}]}],"max_completion_tokens":200}`
	r := e.post("/openai/v1/chat/completions", body)
	m := r.json(t)
	msg := m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	want := "[Answer the question using the context.\n\nContext: Be brief.\nuser: hi\nassistant: hello\nQuestion: why?\nAnswer:]"
	if r.status != 200 || m["object"] != "chat.completion" || msg["role"] != "assistant" || msg["content"] != want {
		t.Errorf("%d content %q", r.status, msg["content"])
	}
	r = e.post("/openai/v1/chat/completions", strings.Replace(body, `"max_completion_tokens":200`, `"stream":true`, 1))
	events := readSSE(t, bytes.NewReader(r.body))
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("last event %q", events[len(events)-1])
	}
	var text strings.Builder
	for i, ev := range events[:len(events)-1] {
		var c struct {
			Object  string
			Choices []struct {
				Delta        map[string]string
				FinishReason *string `json:"finish_reason"`
			}
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %q", ev)
		}
		if i == 0 && c.Choices[0].Delta["role"] != "assistant" {
			t.Errorf("first delta %v has no role", c.Choices[0].Delta)
		}
		text.WriteString(c.Choices[0].Delta["content"])
	}
	if strings.TrimSpace(text.String()) != want {
		t.Errorf("streamed %q", text.String())
	}
	r = e.post("/openai/v1/chat/completions", `{"model":"llm","messages":[{"role":"assistant","content":"x"}]}`)
	if r.status != 400 {
		t.Errorf("assistant-last conversation: %d", r.status)
	}
}

func TestQueueFullIs503WithRetryAfter(t *testing.T) {
	e := start(t, &schedulertest.Engine{Endless: true, Answer: upperAnswer, StepDelay: time.Millisecond},
		setup{sched: scheduler.Options{MaxBatch: 1, QueueSize: 1, MaxNewTokens: 1 << 20, ContextLength: 1 << 21}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 { // one decoding, one queued
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/v1/models/llm:predict",
				strings.NewReader(`{"instances":["q"],"parameters":{"max_new_tokens":1000000}}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.get("/metrics").String(), "kfllm_queue_depth 1") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r := e.post("/v1/models/llm:predict", `{"instances":["q"]}`)
	expectError(t, r, 503, "queue is full")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	cancel() // the clients go away: their work must stop
	wg.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for e.eng.Live() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if e.eng.Live() != 0 {
		t.Errorf("%d sequences still decoding after their clients left", e.eng.Live())
	}
}

func (r response) String() string { return string(r.body) }

func TestTimeoutIs504(t *testing.T) {
	e := start(t, &schedulertest.Engine{Endless: true, StepDelay: time.Millisecond, Answer: upperAnswer},
		setup{sched: scheduler.Options{MaxNewTokens: 1 << 20, ContextLength: 1 << 21},
			opts: func(o *server.Options) { o.RequestTimeout = 50 * time.Millisecond }})
	expectError(t, e.post("/v1/models/llm:predict", `{"instances":["q"],"parameters":{"max_new_tokens":1000000}}`), 504, "did not finish within 50ms")
}

// panicLLM is an llms.Model that panics, to check the recovery path.
type panicLLM struct{}

func (panicLLM) GenerateContent(context.Context, []llms.MessageContent, ...llms.CallOption) (*llms.ContentResponse, error) {
	panic("model exploded")
}

func (panicLLM) Call(context.Context, string, ...llms.CallOption) (string, error) {
	panic("model exploded")
}

func TestPanicBecomes500LoggedOnce(t *testing.T) {
	e := start(t, nil, setup{backend: func(context.Context) (*server.Backend, error) {
		return &server.Backend{LLM: panicLLM{}}, nil
	}})
	e.waitReady()
	expectError(t, e.post("/v1/models/llm:predict", `{"instances":["q"]}`), 500, "internal server error")
	if n := strings.Count(e.logs.String(), "panic serving request"); n != 1 {
		t.Errorf("panic logged %d times", n)
	}
	if m := e.get("/metrics").String(); !strings.Contains(m, "kfllm_http_panics_total 1") ||
		!strings.Contains(m, `kfllm_http_requests_total{code="500",method="POST",route="/v1/models/{name:[^/:]+}:predict"} 1`) {
		t.Errorf("metrics after a panic:\n%s", grep(m, "kfllm_http"))
	}
	// The server goes on serving.
	if r := e.get("/v1/models/llm"); r.status != 200 {
		t.Errorf("after a panic: %d", r.status)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetrics(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	e.post("/v1/models/llm:predict", `{"instances":["a question"]}`)
	e.post("/v1/models/llm:predict", `{"instances":{}}`)
	m := e.get("/metrics").String()
	for _, want := range []string{
		`kfllm_http_requests_total{code="200",method="POST",route="/v1/models/{name:[^/:]+}:predict"} 1`,
		`kfllm_http_requests_total{code="400",method="POST",route="/v1/models/{name:[^/:]+}:predict"} 1`,
		`kfllm_http_request_duration_seconds_count{code="200",method="POST",route="/v1/models/{name:[^/:]+}:predict"} 1`,
		"kfllm_generated_tokens_total 11",
		"kfllm_queue_depth 0",
		"kfllm_generation_tokens_per_second_count 1",
		"kfllm_langsmith_runs_dropped_total 0",
		"kfllm_langsmith_runs_sent_total",
		"kfllm_model_ready 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: func(string) string { return strings.Repeat("z", 200) }, StepDelay: 2 * time.Millisecond}, setup{})
	res := make(chan response, 1)
	go func() {
		res <- e.post("/v1/models/llm:predict", `{"instances":["q"],"parameters":{"max_new_tokens":500}}`)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.eng.Batches()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := e.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	r := <-res
	if r.status != 200 || len(fmt.Sprint(r.json(t)["predictions"])) != 202 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	if _, err := http.Get(e.url + "/"); err == nil {
		t.Error("server still accepting after shutdown")
	}
}
