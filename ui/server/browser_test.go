package server

// Tests in a real browser: Debian's chromium, headless, driven over the
// DevTools protocol by chromedp. They fill the form, click Generate Response,
// read the streamed answer from a UI server on loopback, which calls the
// stand-in API of standin_test.go (serving's contract; see there why it is a
// stand-in). Install the browser with scripts/setup-browser.sh (make setup);
// without it these tests skip, except under CI=true, where they fail.
//
// go test ./ui/server -run TestScreenshots -update rewrites docs/ui-*.png.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/kfllm/kfllm/internal/kserve"
)

var update = flag.Bool("update", false, "rewrite the screenshots docs/ui-desktop.png and docs/ui-phone.png")

// chromiumPath is the browser the tests drive: $KFLLM_CHROMIUM, else
// Debian's /usr/bin/chromium.
func chromiumPath() string {
	if p := os.Getenv("KFLLM_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// sharedBrowser starts one headless chromium for the package's tests, with a
// fresh profile directory and the flags that keep it off the network (on
// this closed network, without them Chromium hangs on its background
// fetches).
func sharedBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no browser at %s: run scripts/setup-browser.sh (make setup) or set KFLLM_CHROMIUM", path)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "kfllm-ui-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.UserDataDir(dir),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-default-apps", true),
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.WindowSize(1280, 800),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		browser.cancel = func() { cancelCtx(); cancelAlloc(); os.RemoveAll(dir) }
		start, cancelStart := context.WithTimeout(ctx, 60*time.Second)
		defer cancelStart()
		// Starting with a timeout context would tie the browser's life to
		// it, so start on ctx and watch the clock separately.
		done := make(chan error, 1)
		go func() { done <- chromedp.Do(ctx) }()
		select {
		case browser.err = <-done:
		case <-start.Done():
			browser.err = fmt.Errorf("chromium did not start within 60s")
		}
		browser.ctx = ctx
	})
	if browser.err != nil {
		t.Fatalf("start chromium %s: %v", path, browser.err)
	}
	return browser.ctx
}

// tab is one browser tab, with what its page wrote to the console and the
// dialogs it tried to open.
type tab struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
}

// viewport sizes of the tests: a laptop and a phone (iPhone 12-15 width).
var (
	desktop = [2]int64{1280, 800}
	phone   = [2]int64{390, 844}
)

func openTab(t *testing.T, size [2]int64) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedBrowser(t))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatalf("open tab: %v", err)
	}
	tb := &tab{t: t, ctx: ctx}
	console := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, ev.Message)
			tb.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if size == phone {
		opts = append(opts, chromedp.EmulateMobile)
	}
	tb.do(chromedp.EmulateViewport(size[0], size[1], opts...))
	return tb
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until a JavaScript expression is true in the page.
func (tb *tab) waitFor(expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		tb.t.Fatalf("waiting for %s: %v\nstatus %q, error %q, answer %q", expr, err,
			eval[string](tb, `document.getElementById('status').textContent`),
			eval[string](tb, `document.getElementById('error').textContent`),
			eval[string](tb, `document.getElementById('answer').textContent`))
	}
}

func text(tb *tab, id string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`document.getElementById(%q).textContent`, id))
}

func visible(tb *tab, id string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && e.getClientRects().length > 0; })()`, id))
}

// problems are the page's uncaught exceptions and its console and browser-log
// errors, including Content-Security-Policy violations. Failed HTTP requests
// (network entries) are expected in the error tests and left out.
func (tb *tab) problems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if (m.IsException() || m.Type == chromedp.ConsoleError) && m.Source != "network" {
			out = append(out, m.String())
		}
	}
	return out
}

func (tb *tab) checkClean() {
	tb.t.Helper()
	if p := tb.problems(); len(p) > 0 {
		tb.t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.dialogs) > 0 {
		tb.t.Errorf("the page opened dialogs: %q", tb.dialogs)
	}
}

// answerDone is true once the page shows the statistics of a finished answer.
const answerDone = `!document.getElementById('stats').hidden && document.getElementById('answer').getAttribute('aria-busy') === 'false'`

// errorShown is true once the page shows an error and is no longer busy.
const errorShown = `!document.getElementById('error').hidden && document.getElementById('generate').getAttribute('aria-disabled') === 'false'`

var rhine = []string{"The Rhine", " begins in", " the Swiss Alps,", " in the canton", " of Graubünden."}

func TestBrowserAsksAndStreamsTheAnswer(t *testing.T) {
	api := newStandinAPI(t, testModel, rhine...)
	api.set(func(b *behaviour) { b.tokenDelay = 120 * time.Millisecond })
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)

	tb.do(chromedp.Navigate(ui + "/"))
	if got := text(tb, "model-name"); got != testModel {
		t.Errorf("the page names model %q, want %q", got, testModel)
	}
	if visible(tb, "answer") || !visible(tb, "placeholder") {
		t.Error("before any question the answer area should show its placeholder, not an answer")
	}
	// One click fills in a sample a new user can try.
	tb.do(chromedp.Click(chromedp.ID("sample")))
	ctxText := eval[string](tb, `document.getElementById('context').value`)
	question := eval[string](tb, `document.getElementById('question').value`)
	if !strings.Contains(ctxText, "Rhine") || question != "Where does the Rhine begin?" {
		t.Fatalf("the sample button filled context %q and question %q", ctxText, question)
	}
	// Record every state of the answer as it changes, to see it stream.
	eval[chromedp.Void](tb, `window.__seen = []; new MutationObserver(() => window.__seen.push(document.getElementById('answer').textContent))
		.observe(document.getElementById('answer'), {subtree: true, childList: true, characterData: true}); 0`)
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(`document.getElementById('generate').textContent === 'Generating…'`)
	tb.waitFor(answerDone)

	want := strings.Join(rhine, "")
	if got := text(tb, "answer"); got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	seen := eval[[]string](tb, `window.__seen`)
	partial := map[string]bool{}
	for _, s := range seen {
		if s != "" && s != want && strings.HasPrefix(want, s) {
			partial[s] = true
		}
	}
	if len(partial) < 3 {
		t.Errorf("saw %d partial answers (%q), want the answer to appear token by token", len(partial), seen)
	}
	if got := text(tb, "tokens-out"); got != "5" {
		t.Errorf("tokens out %q, want 5", got)
	}
	wantIn := len(strings.Fields(ctxText + " " + question))
	if got := text(tb, "tokens-in"); got != fmt.Sprint(wantIn) {
		t.Errorf("tokens in %q, want %d", got, wantIn)
	}
	if lat := text(tb, "latency"); !(strings.HasSuffix(lat, " ms") || strings.HasSuffix(lat, " s")) {
		t.Errorf("latency %q, want a time", lat)
	}
	if visible(tb, "placeholder") {
		t.Error("the placeholder still shows beside the answer")
	}
	if got := text(tb, "status"); got != "Done." {
		t.Errorf("status %q", got)
	}
	if !visible(tb, "feedback") {
		t.Error("no thumbs up/down after an answer with a run id")
	}
	req, _, _ := api.lastPredict()
	if req.Instances[0].Context != ctxText || req.Instances[0].Question != question {
		t.Errorf("the API got %+v, want the form's fields", req.Instances[0])
	}
	tb.checkClean()
}

func TestBrowserKeyboardOnly(t *testing.T) {
	api := newStandinAPI(t, testModel, "Basel", ".")
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui + "/"))

	// Type the context, Tab to the question, type it, press Enter.
	tb.do(chromedp.Focus(chromedp.ID("context")), chromedp.KeyEvent("The Rhine turns north at Basel."), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](tb, `document.activeElement.id`); id != "question" {
		t.Fatalf("Tab from the context went to %q, want the question", id)
	}
	tb.do(chromedp.KeyEvent("Where does the Rhine turn north?"), chromedp.KeyEvent(kb.Enter))
	tb.waitFor(answerDone)
	if got := text(tb, "answer"); got != "Basel." {
		t.Errorf("answer %q", got)
	}

	// Tab from the question reaches Generate Response (past the settings);
	// Enter on the button asks again, Space too.
	tb.do(chromedp.Focus(chromedp.ID("question")), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](tb, `document.activeElement.id`); id != "generate" {
		t.Fatalf("two Tabs from the question went to %q, want the Generate Response button", id)
	}
	tb.do(chromedp.KeyEvent(kb.Enter))
	waitAsked(t, api, 2, "Enter on the button")
	tb.waitFor(answerDone)
	tb.do(chromedp.KeyEvent(" "))
	waitAsked(t, api, 3, "Space on the button")
	tb.waitFor(answerDone)
	// Ctrl+Enter in the context asks too.
	tb.do(chromedp.Focus(chromedp.ID("context")), chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	waitAsked(t, api, 4, "Ctrl+Enter in the context")
	tb.waitFor(answerDone)
	// The settings open and change by keyboard: Tab to Settings, Enter opens
	// it, Tab to Max new tokens, replace 128 with 1, Enter asks.
	tb.do(chromedp.Focus(chromedp.ID("question")), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](tb, `document.activeElement.id`); id != "max-new-tokens" {
		t.Fatalf("Tab, Enter, Tab from the question went to %q, want the opened settings' max new tokens", id)
	}
	tb.do(chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)), chromedp.KeyEvent("1"), chromedp.KeyEvent(kb.Enter))
	tb.waitFor(`document.getElementById('status').textContent.startsWith('Done:')`)
	if got, want := text(tb, "status"), "Done: the answer stopped at the max new tokens limit."; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	if got := text(tb, "answer"); got != "Basel" {
		t.Errorf("answer %q, want the one token", got)
	}
	if req, _, _ := api.lastPredict(); req.Parameters.MaxNewTokens == nil || *req.Parameters.MaxNewTokens != 1 {
		t.Errorf("the API got max_new_tokens %v, want 1", req.Parameters.MaxNewTokens)
	}
	tb.checkClean()
}

// waitAsked waits until the API has been asked n times in all.
func waitAsked(t *testing.T, api *standinAPI, n int, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, _, got := api.lastPredict(); got >= n {
			if got > n {
				t.Fatalf("after %s the API was asked %d times, want %d", what, got, n)
			}
			return
		}
	}
	t.Fatalf("%s did not ask the API (want request %d)", what, n)
}

// TestBrowserShowsAPIErrors: when the API fails or is too slow, the person
// reads what happened in plain words, and the page is ready for another try.
func TestBrowserShowsAPIErrors(t *testing.T) {
	cases := []struct {
		name    string
		b       behaviour
		timeout time.Duration
		want    string
	}{
		{"model loading", behaviour{status: 503, errMsg: "Model with name llm-api is not ready."}, 0,
			"The model is still loading. Try again in a minute."},
		{"timeout", behaviour{hang: true}, 500 * time.Millisecond,
			"The model took too long to answer (no answer within 500ms). Try again, perhaps with a shorter context or fewer new tokens."},
		{"broke mid-answer", behaviour{tokens: []string{"The Rhine", " begins"}, midStreamError: "worker crashed"}, 0,
			"The model stopped while answering: worker crashed."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newStandinAPI(t, testModel)
			api.set(func(b *behaviour) { *b = tc.b; b.runID = standinRunID })
			ui := startUI(t, api, func(o *Options) { o.Timeout = tc.timeout })
			tb := openTab(t, desktop)
			tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
			tb.waitFor(errorShown)
			if got := text(tb, "error"); got != tc.want {
				t.Errorf("error\n got %q\nwant %q", got, tc.want)
			}
			if role := eval[string](tb, `document.getElementById('error').getAttribute('role')`); role != "alert" {
				t.Errorf("the error has role %q, want alert (read out by screen readers)", role)
			}
			if visible(tb, "stats") || visible(tb, "feedback") {
				t.Error("a failed answer shows statistics or feedback buttons")
			}
			if got, want := text(tb, "answer"), strings.Join(tc.b.tokens, ""); got != want {
				t.Errorf("answer %q, want the part that arrived, %q", got, want)
			}
			if got := text(tb, "generate"); got != "Generate Response" {
				t.Errorf("button reads %q after the error", got)
			}
			tb.checkClean()
		})
	}
}

// TestBrowserStopsAnAnswer: Escape (or the Stop button) ends an answer in
// flight, and the UI server stops the model's work.
func TestBrowserStopsAnAnswer(t *testing.T) {
	api := newStandinAPI(t, testModel, "one", " two", " three", " four", " five", " six")
	api.set(func(b *behaviour) { b.tokenDelay = 250 * time.Millisecond })
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(`document.getElementById('answer').textContent.length > 0 && !document.getElementById('stop').hidden`)
	tb.do(chromedp.KeyEvent(kb.Escape))
	tb.waitFor(`document.getElementById('status').textContent === 'Stopped.'`)
	select {
	case <-api.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the API kept generating after the person pressed Escape")
	}
	if visible(tb, "stop") || visible(tb, "error") {
		t.Error("after stopping, the Stop button or an error still shows")
	}
	if got := text(tb, "answer"); got == "" || got == "one two three four five six" {
		t.Errorf("answer %q, want the part written before Escape", got)
	}
	tb.checkClean()
}

// TestBrowserRendersModelOutputAsText: a model that answers with markup gets
// it shown as literal text; nothing of it becomes an element or runs.
func TestBrowserRendersModelOutputAsText(t *testing.T) {
	payload := []string{`<img src=x `, `onerror="alert('xss-answer')">`, ` and <script>alert('xss-script')</script>`, `<b>bold?</b>`}
	api := newStandinAPI(t, testModel, payload...)
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone)
	want := strings.Join(payload, "")
	if got := text(tb, "answer"); got != want {
		t.Errorf("answer %q, want the literal text %q", got, want)
	}
	if n := eval[int](tb, `document.querySelectorAll('#answer *').length`); n != 0 {
		t.Errorf("the answer made %d elements", n)
	}
	if n := eval[int](tb, `document.querySelectorAll('img[src="x"], b').length`); n != 0 {
		t.Errorf("the page holds %d elements from the model's output", n)
	}

	// The same for an error text that carries markup.
	api.set(func(b *behaviour) { b.status = 500; b.errMsg = `<img src=x onerror="alert('xss-error')">` })
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(errorShown)
	if got := text(tb, "error"); got != `The model failed while answering (API error 500): <img src=x onerror="alert('xss-error')">.` {
		t.Errorf("error %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('#error *, img[src="x"]').length`); n != 0 {
		t.Errorf("the error text made %d elements", n)
	}
	time.Sleep(200 * time.Millisecond) // an onerror handler would have run by now
	tb.checkClean()                    // includes: no alert dialog opened
}

// TestBrowserCSPBlocksInlineScript checks the Content-Security-Policy in the
// browser itself: a script element with inline code, added to the page, does
// not run.
func TestBrowserCSPBlocksInlineScript(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui + "/"))
	eval[chromedp.Void](tb, `window.__violations = 0;
		document.addEventListener('securitypolicyviolation', () => window.__violations++);
		const s = document.createElement('script'); s.textContent = 'window.__inlineRan = true'; document.body.appendChild(s); 0`)
	tb.waitFor(`window.__violations > 0`)
	if ran := eval[bool](tb, `window.__inlineRan === true`); ran {
		t.Error("an inline script ran despite the Content-Security-Policy")
	}
	if p := tb.problems(); len(p) == 0 || !strings.Contains(strings.Join(p, " "), "Content Security Policy") {
		t.Errorf("the browser did not report the CSP violation (problems %q): the test's detector would miss one", p)
	}
}

func TestBrowserSendsFeedback(t *testing.T) {
	api := newStandinAPI(t, testModel, rhine...)
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone)

	tb.do(chromedp.Click(chromedp.ID("thumbs-up")))
	tb.waitFor(`document.getElementById('feedback-status').textContent === 'Thanks, your feedback was recorded.'`)
	if p := eval[string](tb, `document.getElementById('thumbs-up').getAttribute('aria-pressed')`); p != "true" {
		t.Errorf("thumbs up aria-pressed = %q", p)
	}
	// Changing one's mind sends the other score; a failure says so and
	// leaves the earlier choice shown.
	tb.do(chromedp.Click(chromedp.ID("thumbs-down")))
	tb.waitFor(`document.getElementById('thumbs-down').getAttribute('aria-pressed') === 'true' && document.getElementById('feedback-status').textContent.startsWith('Thanks')`)
	api.set(func(b *behaviour) { b.feedbackStatus = 503 })
	tb.do(chromedp.Click(chromedp.ID("thumbs-up")))
	tb.waitFor(`document.getElementById('feedback-status').textContent.startsWith('Your feedback was not saved')`)
	if p := eval[string](tb, `document.getElementById('thumbs-down').getAttribute('aria-pressed')`); p != "true" {
		t.Errorf("after a failed change, thumbs down aria-pressed = %q, want true", p)
	}
	got := api.feedbackCalls()
	want := []kserve.FeedbackRequest{{RunID: standinRunID, Score: ptr(1.0)}, {RunID: standinRunID, Score: ptr(0.0)}, {RunID: standinRunID, Score: ptr(1.0)}}
	if mustJSON(got) != mustJSON(want) {
		t.Errorf("the API got feedback %+v, want %+v", got, want)
	}
	tb.checkClean()
}

// TestBrowserAccessibleOnPhone: at phone width nothing scrolls sideways, the
// controls are labelled and large enough to tap.
func TestBrowserAccessibleOnPhone(t *testing.T) {
	long := strings.Repeat("Rhine", 40) // one long word must wrap, not widen the page
	api := newStandinAPI(t, testModel, "The Rhine begins in Graubünden. ", long)
	ui := startUI(t, api, nil)
	tb := openTab(t, phone)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone)
	api.set(func(b *behaviour) { b.status = 503; b.errMsg = "x"; b.retryAfter = "30" })

	if w := eval[[]int](tb, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] || w[1] != 390 {
		t.Errorf("page width %d at a viewport of %d: the page scrolls sideways", w[0], w[1])
	}
	unlabelled := eval[[]string](tb, `[...document.querySelectorAll('input, textarea, select')].filter(e => e.labels.length === 0).map(e => e.id)`)
	if len(unlabelled) > 0 {
		t.Errorf("fields without a label: %q", unlabelled)
	}
	nameless := eval[[]string](tb, `[...document.querySelectorAll('button')].filter(b => (b.getAttribute('aria-label') || b.textContent).trim() === '').map(b => b.id)`)
	if len(nameless) > 0 {
		t.Errorf("buttons without an accessible name: %q", nameless)
	}
	small := eval[[]string](tb, `[...document.querySelectorAll('button, summary')].filter(b => b.getClientRects().length && b.getBoundingClientRect().height < 40).map(b => b.id || b.tagName)`)
	if len(small) > 0 {
		t.Errorf("controls smaller than 40px to tap: %q", small)
	}
	tb.checkClean()
}

// lowContrast lists the page's visible text whose colour on its background
// has a contrast ratio under WCAG AA: 4.5:1, or 3:1 for large text.
const lowContrast = `(() => {
	const lum = (c) => {
		const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
			v /= 255;
			return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
		});
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const opaque = (c) => { const m = c.match(/[\d.]+/g); return m && (m.length < 4 || Number(m[3]) === 1); };
	const background = (el) => {
		for (; el; el = el.parentElement) {
			const bg = getComputedStyle(el).backgroundColor;
			if (opaque(bg)) return bg;
		}
		return 'rgb(255, 255, 255)';
	};
	const out = [];
	for (const el of document.querySelectorAll('body *')) {
		const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.data.trim() !== '');
		if (!own || el.getClientRects().length === 0) continue;
		const st = getComputedStyle(el);
		if (st.visibility === 'hidden') continue;
		const a = lum(st.color), b = lum(background(el));
		const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
		const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
		if (ratio < need) out.push((el.id || el.tagName) + ' ' + ratio.toFixed(2) + ':1 "' + el.textContent.trim().slice(0, 30) + '"');
	}
	return out;
})()`

// TestBrowserTextContrast checks every visible text's contrast, in the
// answered state and the error state, and while an answer is being written.
func TestBrowserTextContrast(t *testing.T) {
	api := newStandinAPI(t, testModel, rhine...)
	api.set(func(b *behaviour) { b.tokenDelay = 200 * time.Millisecond })
	ui := startUI(t, api, nil)
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")))
	check := func(state string) {
		t.Helper()
		if low := eval[[]string](tb, lowContrast); len(low) > 0 {
			t.Errorf("%s: text below WCAG AA contrast: %q", state, low)
		}
	}
	check("start")
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(`document.getElementById('generate').textContent === 'Generating…'`)
	check("generating")
	tb.waitFor(answerDone)
	tb.do(chromedp.Click(chromedp.ID("thumbs-up")))
	tb.waitFor(`document.getElementById('feedback-status').textContent.startsWith('Thanks')`)
	check("answered")
	api.set(func(b *behaviour) { b.status = 500; b.errMsg = "boom" })
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(errorShown)
	check("error")
	tb.checkClean()
}

// TestScreenshots takes the README's pictures of the page at desktop and
// phone widths, after a sample question was answered and rated. With
// -update it writes them to docs/; otherwise it only checks they can be made.
func TestScreenshots(t *testing.T) {
	for _, shot := range []struct {
		name string
		size [2]int64
	}{{"ui-desktop.png", desktop}, {"ui-phone.png", phone}} {
		t.Run(shot.name, func(t *testing.T) {
			api := newStandinAPI(t, "qa-smollm2", rhine...)
			ui := startUI(t, api, func(o *Options) { o.ModelName = "qa-smollm2" })
			tb := openTab(t, shot.size)
			tb.do(chromedp.Navigate(ui+"/"), chromedp.Click(chromedp.ID("sample")), chromedp.Click(chromedp.ID("generate")))
			tb.waitFor(answerDone)
			// Fixed numbers, so that a new picture differs only where the page does.
			eval[chromedp.Void](tb, `document.getElementById('latency').textContent = '842 ms';
				document.getElementById('tokens-in').textContent = '96'; 0`)
			tb.do(chromedp.Click(chromedp.ID("thumbs-up")))
			tb.waitFor(`document.getElementById('feedback-status').textContent.startsWith('Thanks')`)
			eval[chromedp.Void](tb, `document.activeElement.blur(); window.scrollTo(0, 0); 0`)
			ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
			defer cancel()
			buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			img, err := png.Decode(bytes.NewReader(buf))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if b := img.Bounds(); int64(b.Dx()) != shot.size[0] || int64(b.Dy()) != shot.size[1] {
				t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), shot.size[0], shot.size[1])
			}
			if *update {
				path := filepath.Join("..", "..", "docs", shot.name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path+".tmp", buf, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".tmp", path); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s (%d bytes)", path, len(buf))
			}
			tb.checkClean()
		})
	}
}

// TestBrowserTokenCapAndRateLimit: the form never offers more new tokens
// than the API allows (serving's cap, 512), a larger number typed in is
// refused with a sentence, and a person over the rate limit reads when to
// try again.
func TestBrowserTokenCapAndRateLimit(t *testing.T) {
	api := newStandinAPI(t, testModel, "Basel", ".")
	ui := startUI(t, api, func(o *Options) { o.RatePerClient, o.RateBurst = 0.01, 2 })
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(ui + "/"))
	if got := eval[string](tb, `document.getElementById('max-new-tokens').max`); got != "512" {
		t.Errorf("the form offers up to %q new tokens, want 512 (the API's cap)", got)
	}
	tb.do(chromedp.Click(chromedp.ID("sample")))
	eval[chromedp.Void](tb, `document.getElementById('max-new-tokens').value = '1024'; 0`)
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(errorShown)
	if got := text(tb, "error"); got != "Max new tokens must be between 1 and 512." {
		t.Errorf("error %q", got)
	}
	if _, _, n := api.lastPredict(); n != 0 {
		t.Error("the API was asked for 1024 tokens")
	}
	// That request took the first token of a burst of 2; this one the second.
	eval[chromedp.Void](tb, `document.getElementById('max-new-tokens').value = '16'; 0`)
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(answerDone)
	tb.do(chromedp.Click(chromedp.ID("generate")))
	tb.waitFor(errorShown)
	if got := text(tb, "error"); !strings.HasPrefix(got, "Too many requests from your address. Try again in ") {
		t.Errorf("error %q, want the rate limit's sentence", got)
	}
}
