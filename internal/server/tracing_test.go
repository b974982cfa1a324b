package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
)

// Every instance becomes a trace shaped like LangChain's prompt | llm |
// parser, checked by the local LangSmith stand-in.
func TestTracesHaveTheSequenceShape(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	m := e.post("/v1/models/llm:predict", `{"instances":[{"context":"ctx one","question":"q one"},{"question":"q two"}],
		"parameters":{"max_new_tokens":20,"temperature":0.5}}`).json(t)
	ids := m["run_ids"].([]any)
	if err := e.stop(); err != nil { // flushes the tracer
		t.Fatal(err)
	}
	if p := e.ls.Problems(); len(p) > 0 {
		t.Fatalf("LangSmith payload problems: %v", p)
	}
	runs := e.ls.Runs()
	if len(runs) != 8 {
		t.Fatalf("%d runs, want 8", len(runs))
	}
	byTrace := map[string][]langsmithtest.Run{}
	for _, r := range runs {
		byTrace[r.TraceID] = append(byTrace[r.TraceID], r)
	}
	for i, id := range ids {
		tr := byTrace[id.(string)]
		if len(tr) != 4 {
			t.Fatalf("trace %s has %d runs", id, len(tr))
		}
		root, prompt, llm, parser := tr[0], tr[1], tr[2], tr[3]
		if root.ID != id || root.RunType != "chain" || root.Name != "RunnableSequence" || root.SessionName != "kfllm-test" {
			t.Errorf("root %+v", root)
		}
		if prompt.RunType != "prompt" || llm.RunType != "llm" || parser.RunType != "parser" || llm.Name != "TinyLM" ||
			parser.Name != "StrOutputParser" || prompt.Name != "PromptTemplate" {
			t.Errorf("children %s/%s %s/%s %s/%s", prompt.Name, prompt.RunType, llm.Name, llm.RunType, parser.Name, parser.RunType)
		}
		for _, c := range tr[1:] {
			if c.ParentRunID != root.ID || !strings.HasPrefix(c.DottedOrder, root.DottedOrder+".") {
				t.Errorf("child %s not under root: parent %s dotted %s", c.Name, c.ParentRunID, c.DottedOrder)
			}
		}
		q := []string{"q one", "q two"}[i]
		rendered, _ := prompt.Outputs["output"].(string)
		if root.Inputs["question"] != q || !strings.Contains(rendered, "Question: "+q+"\nAnswer:") {
			t.Errorf("prompt run inputs %v outputs %v", prompt.Inputs, prompt.Outputs)
		}
		want := strings.ToUpper(q)
		if root.Outputs["output"] != want || parser.Outputs["output"] != want || parser.Inputs["input"] != " "+want {
			t.Errorf("outputs: root %v parser %v <- %v", root.Outputs, parser.Outputs, parser.Inputs)
		}
		gens := llm.Outputs["generations"].([]any)[0].([]any)[0].(map[string]any)
		usage := llm.Outputs["usage_metadata"].(map[string]any)
		md := llm.Metadata()
		if gens["text"] != " "+want || usage["output_tokens"].(float64) != float64(len(want)+1) ||
			md["tokens_out"].(float64) != float64(len(want)+1) || md["tokens_in"].(float64) < 50 ||
			md["ls_model_name"] != "kfllm/tiny" || md["model_revision"] != "abc123" || md["ls_temperature"] != 0.5 ||
			md["tokens_per_second"] == nil || md["latency_ms"] == nil {
			t.Errorf("llm run outputs %v metadata %v", llm.Outputs, md)
		}
		if root.Metadata()["model_revision"] != "abc123" || root.Metadata()["model_name"] != "llm" {
			t.Errorf("root metadata %v", root.Metadata())
		}
	}
}

func TestFailedInstanceIsTracedWithItsError(t *testing.T) {
	e := start(t, &schedulertest.Engine{PanicOn: "poison", Answer: upperAnswer}, setup{tracing: true})
	r := e.post("/v1/models/llm:predict", `{"instances":["poison"]}`)
	if r.status != 500 || r.header.Get("X-Run-Id") == "" {
		t.Fatalf("%d %s (X-Run-Id %q)", r.status, r.body, r.header.Get("X-Run-Id"))
	}
	e.stop()
	runs := e.ls.Runs()
	if len(runs) != 3 || !strings.Contains(runs[0].Error, "engine panic") || !strings.Contains(runs[2].Error, "engine panic") ||
		runs[2].RunType != "llm" || runs[0].ID != r.header.Get("X-Run-Id") {
		t.Errorf("runs %+v", runs)
	}
}

func TestFeedback(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	r := e.post("/v1/models/llm:predict", `{"instances":["good answer?"]}`)
	id := r.header.Get("X-Run-Id")
	ok := e.post("/v1/feedback", `{"run_id":"`+id+`","score":1,"comment":"spot on"}`)
	if ok.status != 202 || strings.TrimSpace(ok.String()) != `{"ok":true}` {
		t.Fatalf("feedback: %d %s", ok.status, ok.body)
	}
	expectError(t, e.post("/v1/feedback", `{"run_id":"`+id+`","score":0.5}`), 400, `"score" must be 0 or 1`)
	expectError(t, e.post("/v1/feedback", `{"run_id":"`+id+`"}`), 400, `"score" must be 0 or 1`)
	expectError(t, e.post("/v1/feedback", `{"run_id":"nope","score":1}`), 400, `"run_id"`)
	expectError(t, e.post("/v1/feedback", `{"run_id":"`+id+`","score":1,"extra":1}`), 400, "unknown field")
	e.stop()
	fb := e.ls.FeedbackItems()
	if len(fb) != 1 || fb[0].RunID != id || *fb[0].Score != 1 || fb[0].Comment != "spot on" || fb[0].Key != "user_score" {
		t.Errorf("feedback at LangSmith: %+v", fb)
	}
	// Without tracing, feedback has nowhere to go.
	off := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{})
	expectError(t, off.post("/v1/feedback", `{"run_id":"`+id+`","score":1}`), 503, "not enabled")
}

// A LangSmith that hangs must not slow requests down.
func TestLangSmithOutageDoesNotSlowRequests(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	e.ls.Block()
	defer e.ls.Unblock()
	begin := time.Now()
	for range 20 {
		if r := e.post("/v1/models/llm:predict", `{"instances":["q"]}`); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("20 requests took %v with LangSmith down", d)
	}
}

// The UI passes the signed-in user's id as LangSmith baggage
// (langsmith.Baggage); it lands in the trace's root metadata, and the
// server's own metadata cannot be overridden by it.
func TestBaggageMetadataReachesTheTrace(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	bag, err := langsmith.Baggage(map[string]any{"user_id": "alice@example.com", "model_name": "forged"})
	if err != nil {
		t.Fatal(err)
	}
	r := e.post("/v1/models/llm:predict", `{"instances":["who?"]}`, "baggage", bag)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.post("/v1/models/llm:predict", `{"instances":["no baggage"]}`)
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	var roots []map[string]any
	for _, run := range e.ls.Runs() {
		if run.ParentRunID == "" {
			roots = append(roots, run.Metadata())
		}
	}
	if len(roots) != 2 {
		t.Fatalf("%d traces, want 2", len(roots))
	}
	if roots[0]["user_id"] != "alice@example.com" || roots[0]["model_name"] != "llm" {
		t.Errorf("root metadata with baggage: %v", roots[0])
	}
	if _, ok := roots[1]["user_id"]; ok {
		t.Errorf("root metadata without baggage has a user: %v", roots[1])
	}
}

// Feedback is checked as LangSmith would store it: a key of letters,
// digits, '_', '.', '-' up to 64 characters, the run id in canonical form.
func TestFeedbackIsCheckedAndCanonical(t *testing.T) {
	e := start(t, &schedulertest.Engine{Answer: upperAnswer}, setup{tracing: true})
	id := e.post("/v1/models/llm:predict", `{"instances":["q"]}`).header.Get("X-Run-Id")
	expectError(t, e.post("/v1/feedback", `{"run_id":"`+id+`","score":1,"key":"two words"}`), 400, "key")
	expectError(t, e.post("/v1/feedback", `{"run_id":"`+id+`","score":1,"key":"`+strings.Repeat("k", 65)+`"}`), 400, "key")
	if r := e.post("/v1/feedback", `{"run_id":"urn:uuid:`+strings.ToUpper(id)+`","score":0,"key":"correct"}`); r.status != 202 {
		t.Fatalf("feedback with a urn:uuid run id: %d %s", r.status, r.body)
	}
	e.stop()
	fb := e.ls.FeedbackItems()
	if len(fb) != 1 || fb[0].RunID != id || fb[0].Key != "correct" {
		t.Errorf("feedback at LangSmith: %+v", fb)
	}
}
