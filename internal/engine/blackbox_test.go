package engine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// The black-box suite: the serving stack over HTTP on loopback, on a REAL
// tiny model (a random 2-layer Llama saved and loaded through
// internal/model, with a byte-level BPE tokenizer trained by
// internal/tokenizer), with traces going to a local LangSmith stand-in.

var corpus = []string{
	"Answer the question using the context.", "Context: Paris is the capital of France.",
	"Question: What is the capital of France?", "Answer: Paris", "The quick brown fox jumps over the lazy dog.",
	"Kubeflow runs pipelines; KServe serves models; LangSmith traces them.",
}

// writeTinyModel saves a tokenizer and a random tiny Llama into dir.
func writeTinyModel(t testing.TB, dir string, maxPositions int) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.TrainBPE(corpus, 320)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	cfg := &model.Config{Architecture: model.ArchLlama, VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64,
		NumLayers: 2, NumHeads: 4, NumKVHeads: 2, MaxPositions: maxPositions, RopeTheta: 10000, RMSNormEps: 1e-5,
		BOS: []int{eos}, EOS: []int{eos}, Pad: -1}
	m, err := model.NewRandom(cfg, 7, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return tok
}

type stack struct {
	t    *testing.T
	url  string
	ls   *langsmithtest.Server
	tok  *tokenizer.Tokenizer
	stop func() error
}

func startStack(t *testing.T, gate chan struct{}) *stack {
	t.Helper()
	dir := t.TempDir()
	tok := writeTinyModel(t, dir, 256)
	ls := langsmithtest.New()
	t.Cleanup(ls.Close)
	tracer := langsmith.NewTracer(langsmith.NewClient(langsmith.Config{Tracing: true, Endpoint: ls.URL, Project: "blackbox"},
		langsmith.ClientOptions{Backoff: time.Millisecond}), langsmith.TracerOptions{FlushInterval: 5 * time.Millisecond})
	srv, err := server.New(server.Options{
		ModelName: "tiny", Template: prompt.Template, Tracer: tracer,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxBodyBytes:   4096,
		Defaults:       server.Defaults{MaxNewTokens: 16},
		RequestTimeout: time.Minute,
		Load: func(ctx context.Context) (*server.Backend, error) {
			if gate != nil {
				<-gate
			}
			return engine.Load(ctx, engine.Options{ModelDir: dir, Device: "cpu", DType: "float32",
				Scheduler: scheduler.Options{MaxBatch: 8, MaxNewTokens: 32}})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	s := &stack{t: t, url: "http://" + ln.Addr().String(), ls: ls, tok: tok, stop: func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}}
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *stack) waitReady() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatal("not ready in 60 s")
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("%d %q is not a JSON object", r.status, r.body)
	}
	return m
}

func (s *stack) call(method, path, body string, hdr ...string) reply {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func sseData(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func predict(t *testing.T, s *stack, body string) ([]string, []string) {
	t.Helper()
	r := s.call("POST", "/v1/models/tiny:predict", body)
	if r.status != 200 {
		t.Fatalf("predict: %d %s", r.status, r.body)
	}
	var out struct{ Predictions, RunIDs []string }
	var raw struct {
		Predictions []string `json:"predictions"`
		RunIDs      []string `json:"run_ids"`
	}
	json.Unmarshal([]byte(r.body), &raw)
	out.Predictions, out.RunIDs = raw.Predictions, raw.RunIDs
	return out.Predictions, out.RunIDs
}

func TestBlackBox(t *testing.T) {
	gate := make(chan struct{})
	s := startStack(t, gate)

	// Loading: alive at once, the model not ready.
	if r := s.call("GET", "/", ""); r.status != 200 || strings.TrimSpace(r.body) != `{"status":"alive"}` {
		t.Fatalf("liveness while loading: %d %s", r.status, r.body)
	}
	if r := s.call("POST", "/v1/models/tiny:predict", `{"instances":["q"]}`); r.status != 503 ||
		r.obj(t)["error"] != "Model with name tiny is not ready." || r.header.Get("Retry-After") == "" {
		t.Fatalf("predict while loading: %d %s", r.status, r.body)
	}
	close(gate)
	s.waitReady()

	t.Run("metadata routes", func(t *testing.T) {
		for path, want := range map[string]string{
			"/v1/models": `{"models":["tiny"]}`, "/v1/models/tiny": `{"name":"tiny","ready":true}`,
			"/v2/health/live": `{"live":true}`, "/v2/models/tiny/ready": `{"name":"tiny","ready":true}`,
		} {
			if r := s.call("GET", path, ""); r.status != 200 || strings.TrimSpace(r.body) != want {
				t.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
		}
		if r := s.call("GET", "/v2/models/tiny", ""); r.status != 200 || !strings.Contains(r.body, `"BYTES"`) {
			t.Errorf("V2 metadata: %d %s", r.status, r.body)
		}
		if r := s.call("GET", "/openai/v1/models", ""); r.status != 200 || !strings.Contains(r.body, `"id":"tiny"`) {
			t.Errorf("OpenAI models: %d %s", r.status, r.body)
		}
	})

	a := `{"context":"Paris is the capital of France.","question":"What is the capital of France?"}`
	b := `{"context":"The fox is quick.","question":"Who is lazy?"}`
	t.Run("greedy answers do not depend on the batch", func(t *testing.T) {
		alone, _ := predict(t, s, `{"instances":[`+a+`],"parameters":{"max_new_tokens":12}}`)
		both, ids := predict(t, s, `{"instances":[`+b+`,`+a+`,`+b+`],"parameters":{"max_new_tokens":12}}`)
		if len(both) != 3 || both[1] != alone[0] || both[0] != both[2] || len(ids) != 3 {
			t.Errorf("alone %q, batched %q", alone, both)
		}
		if alone[0] == "" {
			t.Error("empty prediction")
		}
		// Seeded sampling repeats itself.
		p := `{"instances":[` + a + `],"parameters":{"max_new_tokens":12,"temperature":1.0,"top_p":0.9,"seed":42}}`
		x, _ := predict(t, s, p)
		y, _ := predict(t, s, p)
		if x[0] != y[0] {
			t.Errorf("same seed, different samples: %q %q", x[0], y[0])
		}
	})

	t.Run("streaming V1", func(t *testing.T) {
		r := s.call("POST", "/v1/models/tiny:predict", `{"instances":[`+a+`],"parameters":{"max_new_tokens":10}}`, "Accept", "text/event-stream")
		ev := sseData(r.body)
		if r.status != 200 || len(ev) < 2 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var text strings.Builder
		for _, e := range ev[:len(ev)-1] {
			var tok struct{ Token string }
			json.Unmarshal([]byte(e), &tok)
			text.WriteString(tok.Token)
		}
		var done struct {
			Done       bool
			Prediction string
			RunID      string `json:"run_id"`
			TokensIn   int    `json:"tokens_in"`
			TokensOut  int    `json:"tokens_out"`
		}
		json.Unmarshal([]byte(ev[len(ev)-1]), &done)
		ids, _ := s.tok.Encode(prompt.Render("Paris is the capital of France.", "What is the capital of France?"), true)
		if !done.Done || done.Prediction != strings.TrimSpace(text.String()) || done.TokensIn != len(ids) ||
			done.TokensOut < 1 || done.TokensOut > 10 || done.RunID != r.header.Get("X-Run-Id") {
			t.Errorf("done %+v (streamed %q, prompt tokens %d)", done, text.String(), len(ids))
		}
	})

	t.Run("V2 infer", func(t *testing.T) {
		r := s.call("POST", "/v2/models/tiny/infer", `{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":["What is the capital of France?"]},
			{"name":"context","shape":[1],"datatype":"BYTES","data":["Paris is the capital of France."]}],"parameters":{"max_new_tokens":12}}`)
		alone, _ := predict(t, s, `{"instances":[`+a+`],"parameters":{"max_new_tokens":12}}`)
		out := r.obj(t)["outputs"].([]any)[0].(map[string]any)
		if r.status != 200 || fmt.Sprint(out["data"]) != fmt.Sprint(alone) {
			t.Errorf("V2 %d %s, V1 %q", r.status, r.body, alone)
		}
	})

	t.Run("OpenAI", func(t *testing.T) {
		r := s.call("POST", "/openai/v1/completions", `{"model":"tiny","prompt":"The quick brown","max_tokens":5}`)
		m := r.obj(t)
		if r.status != 200 || m["usage"].(map[string]any)["completion_tokens"].(float64) > 5 {
			t.Errorf("completions: %d %s", r.status, r.body)
		}
		r = s.call("POST", "/openai/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"Who?"}],"max_tokens":5,"stream":true}`)
		ev := sseData(r.body)
		if r.status != 200 || len(ev) < 2 || ev[len(ev)-1] != "[DONE]" {
			t.Errorf("chat stream: %d %s", r.status, r.body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			method, path, body string
			status             int
			msg                string
		}{
			{"GET", "/v1/models/other", "", 404, "Model with name other does not exist."},
			{"POST", "/v1/models/other:predict", `{"instances":["q"]}`, 404, "Model with name other does not exist."},
			{"POST", "/v1/models/tiny:predict", `{"instances":`, 400, "Unrecognized request format"},
			{"POST", "/v1/models/tiny:predict", `{"instances":{"question":"q"}}`, 400, `Expected "instances" to be a list`},
			{"POST", "/v1/models/tiny:predict", `{"instances":["q"],"parameters":{"temp":1}}`, 400, "unknown parameter"},
			{"POST", "/v1/models/tiny:predict", `{"instances":["` + strings.Repeat("x", 5000) + `"]}`, 413, "larger than 4096"},
			{"POST", "/v1/models/tiny:predict", `{"instances":["` + strings.Repeat("qz ", 300) + `"]}`, 400, "too long"},
			{"POST", "/v2/models/tiny/infer", `{"inputs":[{"name":"question","shape":[1],"datatype":"INT32","data":[1]}]}`, 400, "BYTES"},
			{"POST", "/v1/feedback", `{"run_id":"x","score":1}`, 400, "run_id"},
		}
		for _, c := range cases {
			r := s.call(c.method, c.path, c.body)
			if r.status != c.status || !strings.Contains(fmt.Sprint(r.obj(t)["error"]), c.msg) {
				t.Errorf("%s %s: %d %s, want %d %q", c.method, c.path, r.status, r.body, c.status, c.msg)
			}
		}
	})

	t.Run("concurrent clients share decoding steps", func(t *testing.T) {
		before := metric(t, s, "kfllm_decode_steps_total")
		tokBefore := metric(t, s, "kfllm_generated_tokens_total")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				predict(t, s, fmt.Sprintf(`{"instances":[{"question":"question %d?"}],"parameters":{"max_new_tokens":24}}`, i))
			}()
		}
		wg.Wait()
		steps := metric(t, s, "kfllm_decode_steps_total") - before
		toks := metric(t, s, "kfllm_generated_tokens_total") - tokBefore
		t.Logf("%v tokens in %v decode steps", toks, steps)
		if toks < 8 || steps >= toks-8 { // without batching: toks-8 steps (the first token of each comes from prefill)
			t.Errorf("%v tokens in %v decode steps: not batched", toks, steps)
		}
	})

	// Feedback, then shutdown flushes the traces.
	_, ids := predict(t, s, `{"instances":[`+a+`],"parameters":{"max_new_tokens":6}}`)
	if r := s.call("POST", "/v1/feedback", `{"run_id":"`+ids[0]+`","score":0,"comment":"wrong"}`); r.status != 202 {
		t.Fatalf("feedback: %d %s", r.status, r.body)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if p := s.ls.Problems(); len(p) > 0 {
		t.Fatalf("trace payload problems: %v", p)
	}
	runs := s.ls.Runs()
	var trace []langsmithtest.Run
	for _, r := range runs {
		if r.TraceID == ids[0] {
			trace = append(trace, r)
		}
	}
	types := []string{}
	for _, r := range trace {
		types = append(types, r.RunType)
	}
	if !slices.Equal(types, []string{"chain", "prompt", "llm", "parser"}) {
		t.Fatalf("trace %s run types %v", ids[0], types)
	}
	md := trace[2].Metadata()
	if md["tokens_out"].(float64) < 1 || md["tokens_out"].(float64) > 6 || md["tokens_per_second"].(float64) <= 0 {
		t.Errorf("llm metadata %v", md)
	}
	if fb := s.ls.FeedbackItems(); len(fb) != 1 || fb[0].RunID != ids[0] || *fb[0].Score != 0 {
		t.Errorf("feedback %+v", fb)
	}
}

func metric(t *testing.T, s *stack, name string) float64 {
	t.Helper()
	r := s.call("GET", "/metrics", "")
	for _, line := range strings.Split(r.body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			var v float64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}
