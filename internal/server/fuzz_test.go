package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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
