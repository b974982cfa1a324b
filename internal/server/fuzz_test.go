package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	"github.com/kfllm/kfllm/internal/server"
)

// FuzzDecode sends arbitrary bodies to every POST route: whatever the
// bytes, the answer is a JSON object with a 200, 400 or 413, never a 500 or
// a panic. Run longer with: go test -fuzz FuzzDecode ./internal/server
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"instances":[{"context":"c","question":"q"}],"parameters":{"max_new_tokens":3}}`,
		`{"instances":["q"],"parameters":{"stop":["a","b"],"temperature":0.5,"top_p":0.9,"seed":1}}`,
		`{"instances":{}}`, `{"instances":[1,2]}`, `[]`, `null`, `{"instances":null}`, ``, `{`,
		`{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":["q"]}]}`,
		`{"inputs":[{"name":"question","shape":[1,1],"datatype":"BYTES","data":[["q"]]}]}`,
		`{"model":"llm","prompt":"x","max_tokens":2}`, `{"model":"llm","prompt":["x","y"],"max_tokens":2}`,
		`{"model":"llm","messages":[{"role":"user","content":"q"}],"max_tokens":2}`,
		`{"run_id":"01a21cd8-58a3-7e1b-b67d-1b6d23141b20","score":1}`,
		"{\"instances\":[\"\xff\xfe\"]}",
	} {
		f.Add(seed)
	}
	eng := &schedulertest.Engine{Answer: func(string) string { return " ok" }}
	srv, err := server.New(server.Options{
		ModelName: "llm", Template: designTemplate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Defaults: server.Defaults{MaxNewTokens: 4},
		Load: func(context.Context) (*server.Backend, error) {
			sch := scheduler.New(eng, schedulertest.ByteTokenizer{}, scheduler.Options{EOS: []int{schedulertest.EOS}, MaxNewTokens: 4, QueueSize: 1024})
			return server.NewLocalBackend(sch, server.ModelInfo{}), nil
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Load(context.Background()); err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	routes := []string{"/v1/models/llm:predict", "/v2/models/llm/infer", "/openai/v1/completions", "/openai/v1/chat/completions", "/v1/feedback"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range routes {
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, route, strings.NewReader(body)))
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s %q: no answer in 10 s", route, body)
			}
			switch rec.Code {
			case 200, 400, 413, 503: // 503: feedback without tracing
			case 404: // OpenAI routes: the body names another model
				if !strings.HasPrefix(route, "/openai/") {
					t.Fatalf("%s %q: 404 %s", route, body, rec.Body)
				}
			default:
				t.Fatalf("%s %q: status %d %s", route, body, rec.Code, rec.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s %q: body is not a JSON object: %q", route, body, rec.Body)
			}
			if _, ok := m["error"]; rec.Code != 200 && !ok {
				t.Fatalf("%s %q: %d without an error field: %s", route, body, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzParams sends every combination of generation parameters to the V1
// and OpenAI routes: the answer is a 200 or a 400, never a 5xx, and what a
// 200 passes down to the engine is inside the sampler's domain (finite,
// temperature >= 0, top_p in (0, 1], top_k >= 0, repetition_penalty > 0,
// 1 <= max_new_tokens <= the cap), where internal/model's FuzzSampler
// shows that no value gives NaN or garbage. Numbers are sent as written
// here, so that 1e-45, 1e400 and -0 arrive as JSON has them.
// Run longer with: go test -fuzz FuzzParams ./internal/server
func FuzzParams(f *testing.F) {
	for _, s := range [][6]string{
		{"16", "0.7", "0.9", "40", "1.2", "7"},
		{"1", "1e-45", "1", "0", "1e-300", "0"},
		{"3", "5e-324", "1e-300", "1", "5e-324", "-1"},
		{"2", "1e400", "0.5", "2", "1e400", "1"},
		{"2", "-0", "0", "-1", "0", "1e30"},
		{"99999999999", "1e-400", "1.0000000000000002", "9223372036854775807", "1e308", "9223372036854775807"},
		{"0", "-1e-300", "-0", "1.5", "-1", "x"},
		{"2", "null", "null", "null", "null", "null"},
		{`"2"`, `"0.5"`, "true", "[]", "{}", `"seed"`},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], true)
	}
	const capTokens = 8
	var mu sync.Mutex
	var got []scheduler.Sampling
	eng := &schedulertest.Engine{Answer: func(string) string { return " ok" }, OnSequence: func(_ string, sp scheduler.Sampling) {
		mu.Lock()
		got = append(got, sp)
		mu.Unlock()
	}}
	srv, err := server.New(server.Options{
		ModelName: "llm", Template: designTemplate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Load: func(context.Context) (*server.Backend, error) {
			sch := scheduler.New(eng, schedulertest.ByteTokenizer{}, scheduler.Options{EOS: []int{schedulertest.EOS}, MaxNewTokens: capTokens})
			return server.NewLocalBackend(sch, server.ModelInfo{}), nil
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Load(context.Background()); err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, maxNew, temp, topP, topK, penalty, seed string, sample bool) {
		v1 := fmt.Sprintf(`{"instances":["q"],"parameters":{"max_new_tokens":%s,"temperature":%s,"top_p":%s,"top_k":%s,"repetition_penalty":%s,"seed":%s,"do_sample":%t}}`,
			maxNew, temp, topP, topK, penalty, seed, sample)
		openai := fmt.Sprintf(`{"model":"llm","prompt":"q","max_tokens":%s,"temperature":%s,"top_p":%s,"top_k":%s,"repetition_penalty":%s,"seed":%s}`,
			maxNew, temp, topP, topK, penalty, seed)
		for _, c := range []struct{ route, body string }{{"/v1/models/llm:predict", v1}, {"/openai/v1/completions", openai}} {
			if !json.Valid([]byte(c.body)) {
				continue // the decoding fuzz covers broken JSON
			}
			mu.Lock()
			got = got[:0]
			mu.Unlock()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, c.route, strings.NewReader(c.body)))
			if rec.Code != 200 && rec.Code != 400 {
				t.Fatalf("%s %s: status %d %s", c.route, c.body, rec.Code, rec.Body)
			}
			if rec.Code != 200 {
				continue
			}
			mu.Lock()
			sps := slices.Clone(got)
			mu.Unlock()
			if len(sps) != 1 {
				t.Fatalf("%s %s: 200 after %d sequences", c.route, c.body, len(sps))
			}
			sp := sps[0]
			finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
			if !finite(sp.Temperature) || sp.Temperature < 0 ||
				!finite(sp.TopP) || sp.TopP < 0 || sp.TopP > 1 || sp.TopK < 0 ||
				!finite(sp.RepetitionPenalty) || sp.RepetitionPenalty < 0 ||
				sp.MaxNewTokens < 1 || sp.MaxNewTokens > capTokens {
				t.Fatalf("%s %s: engine got %+v", c.route, c.body, sp)
			}
		}
	})
}
