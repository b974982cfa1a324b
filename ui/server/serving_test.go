package server

// The UI in front of the real serving HTTP layer, internal/server: its KServe
// V1 routes, SSE streaming, answer parser, LangSmith run ids and feedback are
// the real ones, on loopback. Only the model is scripted
// (internal/scheduler/schedulertest's byte-level engine behind the real
// batching scheduler), so that these tests need no libtorch (ui stays free
// of cgo). The browser flow against a real serving process on a trained
// model is TestBrowserWithServingProcess, which internal/demo's end-to-end
// test runs with KFLLM_SERVING_URL and KFLLM_SERVING_MODEL set.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
	serving "github.com/kfllm/kfllm/internal/server"
)

// designPrompt is docs/design.md §4's template.
const designPrompt = "Answer the question using the context.\n\nContext: {context}\nQuestion: {question}\nAnswer:"

type servingEnv struct {
	url string
	ls  *langsmithtest.Server
}

// startServing runs internal/server on loopback with a scripted model that
// answers answer. While gate is open (not closed) the model is "loading".
func startServing(t *testing.T, answer string, gate chan struct{}) *servingEnv {
	t.Helper()
	ls := langsmithtest.New()
	t.Cleanup(ls.Close)
	tracer := langsmith.NewTracer(
		langsmith.NewClient(langsmith.Config{Tracing: true, Endpoint: ls.URL, Project: "kfllm-ui-test"}, langsmith.ClientOptions{Backoff: time.Millisecond}),
		langsmith.TracerOptions{FlushInterval: 5 * time.Millisecond})
	eng := &schedulertest.Engine{Answer: func(string) string { return answer }, StepDelay: 10 * time.Millisecond}
	load := func(ctx context.Context) (*serving.Backend, error) {
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sch := scheduler.New(eng, schedulertest.ByteTokenizer{}, scheduler.Options{EOS: []int{schedulertest.EOS}})
		return serving.NewLocalBackend(sch, serving.ModelInfo{ID: "kfllm/tiny", LLMName: "TinyLM"}), nil
	}
	srv, err := serving.New(serving.Options{
		ModelName: testModel, Template: designPrompt, Load: load, Tracer: tracer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("serving.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	env := &servingEnv{url: "http://" + ln.Addr().String(), ls: ls}
	if gate == nil {
		env.waitReady(t)
	}
	return env
}

func (e *servingEnv) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(e.url + "/v1/models/" + testModel)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("serving did not become ready")
}

func TestBrowserWithServingLayer(t *testing.T) {
	// A model writes a leading space; serving's parser trims it.
	const answer = " The Rhine begins in the Swiss Alps, in Graubünden."
	gate := make(chan struct{})
	srv := startServing(t, answer, gate)
	ui := startUIWith(t, Options{APIURL: srv.url, ModelName: testModel})
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")))

	// While the model loads, serving answers 503 "not ready" with Retry-After.
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(errorShown)
	if got := text(tb, "error"); got != "The model is still loading. Try again in a minute." {
		t.Errorf("while loading, error %q", got)
	}

	close(gate)
	srv.waitReady(t)
	eval[chromedp.Void](tb, `window.__seen = 0; new MutationObserver(() => window.__seen++)
		.observe(document.getElementById('answer'), {subtree: true, childList: true, characterData: true}); 0`)
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone)
	if got, want := text(tb, "answer"), strings.TrimSpace(answer); got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	if n := eval[int](tb, `window.__seen`); n < 5 {
		t.Errorf("the answer changed %d times, want it to stream in pieces", n)
	}
	if text(tb, "error") != "" && visible(tb, "error") {
		t.Errorf("an error shows beside the answer: %q", text(tb, "error"))
	}
	ctxText := eval[string](tb, `document.getElementById('context').value`)
	question := eval[string](tb, `document.getElementById('question').value`)
	prompt := strings.NewReplacer("{context}", ctxText, "{question}", question).Replace(designPrompt)
	if got := text(tb, "tokens-in"); got != strconv.Itoa(len(prompt)) { // one token a byte
		t.Errorf("tokens in %q, want %d (the prompt's bytes)", got, len(prompt))
	}
	if got, _ := strconv.Atoi(text(tb, "tokens-out")); got < len(answer) {
		t.Errorf("tokens out %q, want at least %d", text(tb, "tokens-out"), len(answer))
	}

	// Thumbs up reaches LangSmith as feedback on this answer's run.
	tb.do(chromedp.Click(chromedp.ID("thumbs-up")))
	tb.waitFor(`document.getElementById('feedback-status').textContent.startsWith('Thanks')`)
	var fb []langsmithtest.Feedback
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(fb) == 0; time.Sleep(10 * time.Millisecond) {
		fb = srv.ls.FeedbackItems()
	}
	if len(fb) != 1 || fb[0].Score == nil || *fb[0].Score != 1 {
		t.Fatalf("LangSmith got feedback %+v, want one with score 1", fb)
	}
	runs := map[string]bool{}
	for _, r := range srv.ls.Runs() {
		runs[r.ID] = true
	}
	if !runs[fb[0].RunID] {
		t.Errorf("feedback names run %s, which is not a traced run (%d runs)", fb[0].RunID, len(runs))
	}
	if p := srv.ls.Problems(); len(p) > 0 {
		t.Errorf("LangSmith stand-in saw malformed payloads: %q", p)
	}
	tb.checkClean()
}

// TestBrowserWithServingProcess runs the browser flow against a serving
// process that is already running (for example `serving --model-name NAME
// --model-dir DIR` on a tiny model), when KFLLM_SERVING_URL and
// KFLLM_SERVING_MODEL name it. Without them it skips: the hermetic tests
// above cover the same flow. internal/demo's end-to-end test (in make test)
// runs it against the serving process and the model its pipeline trained.
func TestBrowserWithServingProcess(t *testing.T) {
	url, model := os.Getenv("KFLLM_SERVING_URL"), os.Getenv("KFLLM_SERVING_MODEL")
	if url == "" || model == "" {
		t.Skip("set KFLLM_SERVING_URL and KFLLM_SERVING_MODEL to test against a running serving process")
	}
	ui := startUIWith(t, Options{APIURL: url, ModelName: model})
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone + ` || !document.getElementById('error').hidden`)
	if visible(tb, "error") {
		t.Fatalf("serving answered with an error: %q", text(tb, "error"))
	}
	if text(tb, "tokens-out") == "—" || text(tb, "latency") == "—" {
		t.Errorf("statistics missing: latency %q, tokens out %q", text(tb, "latency"), text(tb, "tokens-out"))
	}
	t.Logf("answer %q, latency %s, tokens in %s, out %s", text(tb, "answer"), text(tb, "latency"), text(tb, "tokens-in"), text(tb, "tokens-out"))
	tb.checkClean()
}
