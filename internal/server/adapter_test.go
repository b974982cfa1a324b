package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	"github.com/kfllm/kfllm/internal/server"
)

// adapterEngine records the adapter each request asks the engine for.
type adapterEngine struct {
	*schedulertest.Engine
	mu   sync.Mutex
	seen []string
}

func (e *adapterEngine) NewSequence(prompt []int, sp scheduler.Sampling) (scheduler.Sequence, error) {
	e.mu.Lock()
	e.seen = append(e.seen, sp.Adapter)
	e.mu.Unlock()
	return e.Engine.NewSequence(prompt, sp)
}

// A LoRA adapter name is a model name on every route: listed, accepted,
// echoed, and passed to the engine as Sampling.Adapter ("" for the base).
func TestAdapterNames(t *testing.T) {
	eng := &adapterEngine{Engine: &schedulertest.Engine{Answer: upperAnswer}}
	e := start(t, nil, setup{
		opts: func(o *server.Options) { o.Adapters = []string{"sql", "poems"} },
		backend: func(context.Context) (*server.Backend, error) {
			sch := scheduler.New(eng, schedulertest.ByteTokenizer{}, scheduler.Options{EOS: []int{schedulertest.EOS}})
			return server.NewLocalBackend(sch, server.ModelInfo{ID: "kfllm/tiny"}), nil
		},
	})
	e.waitReady()
	for _, path := range []string{"/v1/models", "/v2/models"} {
		if r := e.get(path); r.status != 200 || string(r.body) != `{"models":["llm","sql","poems"]}`+"\n" {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	if r := e.get("/openai/v1/models"); !strings.Contains(string(r.body), `"id":"poems"`) {
		t.Errorf("openai models: %s", r.body)
	}
	calls := []struct{ path, body, echo string }{
		{"/v1/models/llm:predict", `{"instances":["q"]}`, ``},
		{"/v1/models/sql:predict", `{"instances":["q"]}`, ``},
		{"/v2/models/poems/infer", `{"inputs":[{"name":"question","shape":[1],"datatype":"BYTES","data":["q"]}]}`, `"model_name":"poems"`},
		{"/openai/v1/completions", `{"model":"sql","prompt":"q"}`, `"model":"sql"`},
		{"/openai/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"q"}]}`, `"model":"llm"`},
	}
	for _, c := range calls {
		if r := e.post(c.path, c.body); r.status != 200 || !strings.Contains(string(r.body), c.echo) {
			t.Errorf("POST %s: %d %s, want %s", c.path, r.status, r.body, c.echo)
		}
	}
	eng.mu.Lock()
	got := strings.Join(eng.seen, ",")
	eng.mu.Unlock()
	if got != ",sql,poems,sql," {
		t.Errorf("adapters the engine was asked for: %q, want \",sql,poems,sql,\"", got)
	}
	if r := e.get("/v1/models/sql"); r.status != 200 || !strings.Contains(string(r.body), `"name":"sql"`) {
		t.Errorf("GET /v1/models/sql: %d %s", r.status, r.body)
	}
	if r := e.post("/v1/models/nope:predict", `{"instances":["q"]}`); r.status != 404 {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}
	for _, bad := range [][]string{{"llm"}, {"a", "a"}, {""}, {"x/y"}} {
		if _, err := server.New(server.Options{ModelName: "llm", Adapters: bad, Template: designTemplate,
			Load: func(context.Context) (*server.Backend, error) { return nil, nil }}); err == nil {
			t.Errorf("adapters %q: no error", bad)
		}
	}
}
