package langsmith_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
)

// These tests talk to langsmithtest.Server, a local server that follows
// LangSmith's documented ingestion wire format: LangSmith is not reachable here.

func newTracer(t *testing.T, srv *langsmithtest.Server, opts langsmith.TracerOptions) *langsmith.Tracer {
	t.Helper()
	c := langsmith.NewClient(langsmith.Config{Tracing: true, Endpoint: srv.URL, APIKey: "secret-key", Project: "proj"},
		langsmith.ClientOptions{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 10 * time.Millisecond
	}
	return langsmith.NewTracer(c, opts)
}

// sequenceTrace builds a trace shaped like LangChain's prompt | llm | parser.
func sequenceTrace(start time.Time, fail bool) *langsmith.Run {
	root := langsmith.NewTrace("RunnableSequence", langsmith.RunTypeChain, map[string]any{"question": "q"}, start)
	p := root.Child("PromptTemplate", langsmith.RunTypePrompt, map[string]any{"question": "q"}, start)
	p.End(map[string]any{"output": "Question: q"}, nil, start)
	l := root.Child("tiny", langsmith.RunTypeLLM, map[string]any{"prompts": []string{"Question: q"}}, start)
	l.SetMetadata("tokens_out", 3)
	if fail {
		l.End(nil, errors.New("boom"), start.Add(time.Millisecond))
		root.End(nil, errors.New("boom"), start.Add(time.Millisecond))
		return root
	}
	l.End(map[string]any{"generations": []any{}}, nil, start.Add(time.Millisecond))
	o := root.Child("StrOutputParser", langsmith.RunTypeParser, map[string]any{"input": " a"}, start.Add(time.Millisecond))
	o.End(map[string]any{"output": "a"}, nil, start.Add(time.Millisecond))
	root.End(map[string]any{"output": "a"}, nil, start.Add(2*time.Millisecond))
	return root
}

func TestTracerMultipart(t *testing.T) {
	srv := langsmithtest.New()
	srv.APIKey = "secret-key"
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	start := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tr.Submit(sequenceTrace(start, false))
	tr.Submit(sequenceTrace(start, true))
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := srv.Problems(); len(p) > 0 {
		t.Fatalf("payload problems: %v", p)
	}
	runs := srv.Runs()
	if len(runs) != 7 {
		t.Fatalf("got %d runs, want 7", len(runs))
	}
	if srv.Requests("/runs/batch") != 0 || srv.Requests("/runs/multipart") == 0 {
		t.Errorf("requests: multipart %d, batch %d", srv.Requests("/runs/multipart"), srv.Requests("/runs/batch"))
	}
	root := runs[0]
	if root.Name != "RunnableSequence" || root.RunType != "chain" || root.SessionName != "proj" ||
		root.Outputs["output"] != "a" || root.Inputs["question"] != "q" {
		t.Errorf("root run = %+v", root)
	}
	if !strings.HasPrefix(root.DottedOrder, "20260102T030405000006Z") {
		t.Errorf("dotted_order %q does not start with the SDK's time stamp", root.DottedOrder)
	}
	var types []string
	for _, r := range runs[1:4] {
		types = append(types, r.RunType)
		if r.ParentRunID != root.ID || r.TraceID != root.ID {
			t.Errorf("child %s: parent %s trace %s, want %s", r.Name, r.ParentRunID, r.TraceID, root.ID)
		}
	}
	if got := strings.Join(types, ","); got != "prompt,llm,parser" {
		t.Errorf("child run types %s", got)
	}
	// Children sort by dotted_order in execution order even with equal start times.
	if !(runs[1].DottedOrder < runs[2].DottedOrder && runs[2].DottedOrder < runs[3].DottedOrder) {
		t.Errorf("dotted orders out of order: %s %s %s", runs[1].DottedOrder, runs[2].DottedOrder, runs[3].DottedOrder)
	}
	if runs[4].Error != "boom" || runs[6].Error != "boom" {
		t.Errorf("errors not recorded: root %q llm %q", runs[4].Error, runs[6].Error)
	}
	if s := tr.Stats(); s.RunsSent != 7 || s.RunsDropped != 0 || s.RunsFailed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestTracerFallsBackToBatch(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	srv.NoMultipart()
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	tr.Submit(sequenceTrace(time.Now(), false))
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(srv.Runs()) != 4 || srv.Requests("/runs/batch") != 1 || len(srv.Problems()) > 0 {
		t.Fatalf("runs %d, batch requests %d, problems %v", len(srv.Runs()), srv.Requests("/runs/batch"), srv.Problems())
	}
}

func TestTracerRetries(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	srv.Fail(func(path string, n int) int {
		if n <= 2 {
			return []int{http.StatusTooManyRequests, http.StatusBadGateway}[n-1]
		}
		return 0
	})
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	tr.Submit(sequenceTrace(time.Now(), false))
	tr.Close(context.Background())
	if got := srv.Requests("/runs/multipart"); got != 3 {
		t.Errorf("multipart requests = %d, want 3 (429, 502, ok)", got)
	}
	if s := tr.Stats(); s.RunsSent != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestTracerConflictIsDoneAndBadRequestIsNotRetried(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	codes := map[int]int{1: http.StatusConflict, 2: http.StatusBadRequest}
	srv.Fail(func(path string, n int) int { return codes[n] })
	tr := newTracer(t, srv, langsmith.TracerOptions{BatchSize: 4, FlushInterval: time.Hour})
	tr.Submit(sequenceTrace(time.Now(), false)) // 4 runs: one full batch -> 409
	tr.Submit(sequenceTrace(time.Now(), false)) // next batch -> 400
	tr.Close(context.Background())
	s := tr.Stats()
	if s.RunsSent != 4 || s.RunsFailed != 4 || srv.Requests("/runs/multipart") != 2 {
		t.Errorf("stats %+v after %d requests; want 4 sent (409), 4 failed (400, no retry)", s, srv.Requests("/runs/multipart"))
	}
}

// An outage (a LangSmith that never answers) must not block Submit; the
// queue stays bounded and overflow is counted.
func TestTracerOutageDropsWithoutBlocking(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	srv.Block()
	defer srv.Unblock()
	tr := newTracer(t, srv, langsmith.TracerOptions{QueueSize: 5, BatchSize: 1})
	begin := time.Now()
	accepted := 0
	for range 100 {
		if tr.Submit(sequenceTrace(time.Now(), false)) {
			accepted++
		}
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("100 submits took %v while LangSmith hung", d)
	}
	s := tr.Stats()
	if accepted > 6 || s.RunsDropped != int64(4*(100-accepted)) {
		t.Errorf("accepted %d, stats %+v", accepted, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tr.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close during outage = %v, want deadline exceeded", err)
	}
	if tr.Submit(sequenceTrace(time.Now(), false)) {
		t.Error("Submit after Close accepted")
	}
}

func TestFeedback(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{FlushInterval: time.Hour})
	root := sequenceTrace(time.Now(), false)
	tr.Submit(root)
	tr.Feedback(langsmith.NewFeedback(root.ID, "user_score", 1, "good"))
	tr.Close(context.Background())
	fbs := srv.FeedbackItems()
	if len(fbs) != 1 || fbs[0].RunID != root.ID || fbs[0].Key != "user_score" || fbs[0].Score == nil ||
		*fbs[0].Score != 1 || fbs[0].Comment != "good" || fbs[0].Source.Type != "api" || fbs[0].ID == "" {
		t.Fatalf("feedback %+v", fbs)
	}
	// The run went out before its feedback, though the batch was not full.
	if len(srv.Runs()) != 4 {
		t.Errorf("runs %d", len(srv.Runs()))
	}
}

func TestNilTracerIsOff(t *testing.T) {
	var tr *langsmith.Tracer
	if tr.Enabled() || tr.Submit(sequenceTrace(time.Now(), false)) || tr.Feedback(langsmith.Feedback{}) {
		t.Error("nil tracer accepted work")
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Error(err)
	}
}
