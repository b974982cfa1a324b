package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kfllm/kfllm/internal/kserve"
)

const testModel = "llm-api"

// startUI runs a UI server on a loopback listener in front of api and
// returns its base URL. The server stops when the test ends.
func startUI(t testing.TB, api *standinAPI, mod func(*Options)) string {
	t.Helper()
	opts := Options{APIURL: api.srv.URL, ModelName: testModel}
	if mod != nil {
		mod(&opts)
	}
	return startUIWith(t, opts)
}

func startUIWith(t testing.TB, opts Options) string {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// generate posts body to /api/generate and returns the response and, for a
// stream, its decoded events.
func generate(t *testing.T, base, body string) (*http.Response, []kserve.StreamEvent) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/generate", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/generate: %v", err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	var events []kserve.StreamEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev kserve.StreamEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			events = append(events, ev)
		}
	}
	return resp, events
}

func errorBody(t *testing.T, resp *http.Response, raw []byte) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error body %q (status %d): %v", raw, resp.StatusCode, err)
	}
	return e.Error
}

func postJSON(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestGenerateStreamsTokensAndDone(t *testing.T) {
	api := newStandinAPI(t, testModel, "Graub", "ünden", ",", " in the Swiss Alps.")
	ui := startUI(t, api, nil)

	resp, events := generate(t, ui, `{"context":"The Rhine begins in Graubünden.","question":"Where does the Rhine begin?"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(events) != 5 {
		t.Fatalf("got %d events, want 4 tokens and done: %+v", len(events), events)
	}
	var got strings.Builder
	for _, ev := range events[:4] {
		got.WriteString(ev.Token)
	}
	if got.String() != "Graubünden, in the Swiss Alps." {
		t.Errorf("tokens = %q", got.String())
	}
	done := events[4]
	if !done.Done || done.Prediction != "Graubünden, in the Swiss Alps." || done.RunID != standinRunID {
		t.Errorf("done event = %+v", done)
	}
	if done.TokensIn == nil || *done.TokensIn != 10 || done.TokensOut == nil || *done.TokensOut != 4 {
		t.Errorf("token counts in done = %+v", done)
	}
	if done.FinishReason != "stop" {
		t.Errorf("finish_reason %q, want the API's stop", done.FinishReason)
	}
	if done.LatencyMS == nil || done.TotalMS == nil || *done.TotalMS < *done.LatencyMS {
		t.Errorf("latency %v, total %v: want both, total >= latency", done.LatencyMS, done.TotalMS)
	}

	// What reached the API: the contract's body, the defaults, a stream request.
	req, hdr, n := api.lastPredict()
	if n != 1 {
		t.Fatalf("API called %d times", n)
	}
	want := kserve.PredictRequest{
		Instances:  []kserve.Instance{{Context: "The Rhine begins in Graubünden.", Question: "Where does the Rhine begin?"}},
		Parameters: kserve.Parameters{MaxNewTokens: ptr(128), Temperature: ptr(0.2)},
	}
	if b1, b2 := mustJSON(req), mustJSON(want); b1 != b2 {
		t.Errorf("API got %s, want %s", b1, b2)
	}
	if hdr.Get("Accept") != "text/event-stream" {
		t.Errorf("Accept = %q", hdr.Get("Accept"))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestGenerateParametersPassedOn(t *testing.T) {
	api := newStandinAPI(t, testModel, "ok")
	ui := startUI(t, api, nil)
	resp, _ := generate(t, ui, `{"context":"","question":"hi","max_new_tokens":7,"temperature":0}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req, _, _ := api.lastPredict()
	if got, want := mustJSON(req.Parameters), `{"max_new_tokens":7,"temperature":0}`; got != want {
		t.Errorf("parameters = %+v", req.Parameters)
	}
}

func TestGenerateFromNonStreamingAPI(t *testing.T) {
	api := newStandinAPI(t, testModel, "Basel", " and Rotterdam")
	api.set(func(b *behaviour) { b.noStream = true })
	ui := startUI(t, api, nil)
	resp, events := generate(t, ui, `{"context":"c","question":"q"}`)
	if resp.StatusCode != http.StatusOK || len(events) != 2 {
		t.Fatalf("status %d, events %+v", resp.StatusCode, events)
	}
	if events[0].Token != "Basel and Rotterdam" || !events[1].Done || events[1].RunID != standinRunID {
		t.Errorf("events = %+v", events)
	}
	if events[1].TokensOut != nil || events[1].TotalMS == nil {
		t.Errorf("a JSON answer has no token counts but has the UI's own latency: %+v", events[1])
	}
}

// TestGenerateAPIErrors checks that each way the API can fail reaches the
// browser as a status and a sentence a person understands.
func TestGenerateAPIErrors(t *testing.T) {
	cases := []struct {
		name       string
		b          behaviour
		model      string
		timeout    time.Duration
		wantStatus int
		wantText   string
	}{
		{name: "not ready", b: behaviour{status: 503, errMsg: "Model with name llm-api is not ready."},
			wantStatus: 503, wantText: "The model is still loading. Try again in a minute."},
		{name: "not ready with Retry-After", b: behaviour{status: 503, errMsg: "Model with name llm-api is not ready.", retryAfter: "5"},
			wantStatus: 503, wantText: "The model is still loading. Try again in a minute."},
		{name: "queue full 503", b: behaviour{status: 503, errMsg: "queue full", retryAfter: "7"},
			wantStatus: 503, wantText: "The model is busy answering other questions. Try again in 7 seconds."},
		{name: "queue full 429", b: behaviour{status: 429, errMsg: "too many requests", retryAfter: "1"},
			wantStatus: 429, wantText: "The model is busy answering other questions. Try again in 1 second."},
		{name: "wrong model name", model: "other-model",
			wantStatus: 502, wantText: `The API has no model named "other-model". The UI's MODEL_NAME setting may not match the deployed model.`},
		// The API's 400 and 413 are about what the person typed: they stay
		// 400 and 413, not a gateway failure (issue #21).
		{name: "bad body", b: behaviour{status: 400, errMsg: "context too long for the model: 9000 tokens > 2048"},
			wantStatus: 400, wantText: "The API could not accept this request: context too long for the model: 9000 tokens > 2048."},
		{name: "body too large", b: behaviour{status: 413, errMsg: "request body too large"},
			wantStatus: 413, wantText: "The context and question are too long for the API. Shorten the context and try again."},
		{name: "server error", b: behaviour{status: 500, errMsg: "CUDA out of memory"},
			wantStatus: 502, wantText: "The model failed while answering (API error 500): CUDA out of memory."},
		{name: "istio denied", b: behaviour{status: 403, errMsg: "RBAC: access denied", plainError: true},
			wantStatus: 502, wantText: "The API refused the UI's request (access denied). Its access policy may not admit this UI."},
		{name: "timeout", b: behaviour{hang: true}, timeout: 300 * time.Millisecond,
			wantStatus: 504, wantText: "The model took too long to answer (no answer within 300ms). Try again, perhaps with a shorter context or fewer new tokens."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newStandinAPI(t, testModel, "never", "sent")
			api.set(func(b *behaviour) { tokens := b.tokens; *b = tc.b; b.tokens = tokens; b.runID = standinRunID })
			ui := startUI(t, api, func(o *Options) {
				if tc.model != "" {
					o.ModelName = tc.model
				}
				o.Timeout = tc.timeout
			})
			resp, raw := postJSON(t, ui+"/api/generate", `{"context":"c","question":"q"}`)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, raw)
			}
			if got := errorBody(t, resp, raw); got != tc.wantText {
				t.Errorf("error text\n got %q\nwant %q", got, tc.wantText)
			}
		})
	}
}

func TestGenerateAPIUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ui := startUIWith(t, Options{APIURL: "http://" + addr, ModelName: testModel})
	resp, raw := postJSON(t, ui+"/api/generate", `{"context":"c","question":"q"}`)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d", resp.StatusCode)
	}
	if got := errorBody(t, resp, raw); !strings.HasPrefix(got, "Could not reach the model API.") {
		t.Errorf("error text %q", got)
	}
	if strings.Contains(string(raw), addr) {
		t.Errorf("the API's address reached the browser: %s", raw)
	}
}

func TestGenerateErrorsMidStream(t *testing.T) {
	cases := []struct {
		name string
		b    behaviour
		want string
	}{
		{"error event", behaviour{midStreamError: "generation failed: NaN in logits"},
			"The model stopped while answering: generation failed: NaN in logits."},
		{"stream cut", behaviour{noDone: true},
			"The model API sent an answer this page cannot read. Try again; if it keeps happening, the API and UI versions may not match."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newStandinAPI(t, testModel)
			api.set(func(b *behaviour) { *b = tc.b; b.tokens = []string{"The", " Rhine"}; b.runID = standinRunID })
			ui := startUI(t, api, nil)
			resp, events := generate(t, ui, `{"context":"c","question":"q"}`)
			if resp.StatusCode != http.StatusOK || len(events) != 3 {
				t.Fatalf("status %d, events %+v", resp.StatusCode, events)
			}
			if events[0].Token != "The" || events[1].Token != " Rhine" || events[2].Error != tc.want {
				t.Errorf("events = %+v, want the two tokens then error %q", events, tc.want)
			}
		})
	}
}

func TestGenerateTimeoutMidStream(t *testing.T) {
	api := newStandinAPI(t, testModel, "slow", " answer", " never", " ends")
	api.set(func(b *behaviour) { b.tokenDelay = 150 * time.Millisecond })
	ui := startUI(t, api, func(o *Options) { o.Timeout = 400 * time.Millisecond })
	resp, events := generate(t, ui, `{"context":"c","question":"q"}`)
	if resp.StatusCode != http.StatusOK || len(events) < 2 {
		t.Fatalf("status %d, events %+v", resp.StatusCode, events)
	}
	last := events[len(events)-1]
	if !strings.HasPrefix(last.Error, "The model took too long to answer (no answer within 400ms).") {
		t.Errorf("last event %+v, want the timeout message", last)
	}
	select {
	case <-api.canceled:
	case <-time.After(5 * time.Second):
		t.Error("the API request was not canceled after the timeout")
	}
}

func TestGenerateRefusesBadRequests(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, func(o *Options) { o.MaxBodyBytes = 1024; o.MaxNewTokens = 256 })
	cases := []struct {
		name, contentType, body string
		wantStatus              int
		wantText                string
	}{
		{"empty question", "application/json", `{"context":"c","question":"   "}`, 400, "Please type a question."},
		{"unknown field", "application/json", `{"context":"c","question":"q","max_tokens":5}`, 400, `The request could not be read: json: unknown field "max_tokens".`},
		{"two values", "application/json", `{"question":"q"}{"question":"r"}`, 400, "The request could not be read: extra data after the JSON object."},
		{"too large", "application/json", `{"context":"` + strings.Repeat("x", 2000) + `","question":"q"}`, 413,
			"The context and question are too long for one request (the limit is 1 KiB in all). Shorten the context and try again."},
		{"long question", "application/json", `{"question":"` + strings.Repeat("é", 2001) + `"}`, 413, ""},
		{"not json", "text/plain", `question=q`, 415, "Send the request as JSON (Content-Type: application/json)."},
		{"max tokens", "application/json", `{"question":"q","max_new_tokens":257}`, 400, "Max new tokens must be between 1 and 256."},
		{"zero tokens", "application/json", `{"question":"q","max_new_tokens":0}`, 400, "Max new tokens must be between 1 and 256."},
		{"temperature", "application/json", `{"question":"q","temperature":2.5}`, 400, "Temperature must be between 0 and 2."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(ui+"/api/generate", tc.contentType, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, raw)
			}
			if got := errorBody(t, resp, raw); tc.wantText != "" && got != tc.wantText {
				t.Errorf("error text\n got %q\nwant %q", got, tc.wantText)
			}
		})
	}
	if _, _, n := api.lastPredict(); n != 0 {
		t.Errorf("the API was called %d times for refused requests", n)
	}
}

func TestGenerateQuestionLimit(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	resp, raw := postJSON(t, ui+"/api/generate", `{"question":"`+strings.Repeat("é", 2001)+`"}`)
	if resp.StatusCode != 400 || errorBody(t, resp, raw) != "The question is too long (2001 characters; the limit is 2000)." {
		t.Errorf("status %d, body %s", resp.StatusCode, raw)
	}
}

// TestStreamOutlivesReadTimeout: the http.Server's timeouts bound reading
// the request, not the answer that streams back (a WriteTimeout or an
// http.TimeoutHandler would cut it, and fail this test).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	api := newStandinAPI(t, testModel, "a", "b", "c", "d")
	api.set(func(b *behaviour) { b.tokenDelay = 150 * time.Millisecond })
	ui := startUI(t, api, func(o *Options) { o.ReadTimeout = 200 * time.Millisecond })
	resp, events := generate(t, ui, `{"question":"q"}`)
	if resp.StatusCode != 200 || len(events) != 5 || !events[4].Done {
		t.Fatalf("status %d, events %+v", resp.StatusCode, events)
	}
}

func TestKeepAliveWhileModelIsSilent(t *testing.T) {
	api := newStandinAPI(t, testModel, "late")
	api.set(func(b *behaviour) { b.tokenDelay = 300 * time.Millisecond })
	ui := startUI(t, api, func(o *Options) { o.KeepAlive = 50 * time.Millisecond })
	req, _ := http.NewRequest(http.MethodPost, ui+"/api/generate", strings.NewReader(`{"question":"q"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(raw), ": waiting for the model\n\n") || !strings.Contains(string(raw), `"done":true`) {
		t.Errorf("stream = %q, want keep-alive comments before the answer", raw)
	}
}

func TestBrowserGoneCancelsAPIRequest(t *testing.T) {
	api := newStandinAPI(t, testModel, "a", "b", "c", "d", "e", "f")
	api.set(func(b *behaviour) { b.tokenDelay = 200 * time.Millisecond })
	ui := startUI(t, api, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ui+"/api/generate", strings.NewReader(`{"question":"q"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_, _ = resp.Body.Read(buf) // the first token arrived
	cancel()
	resp.Body.Close()
	select {
	case <-api.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the API kept generating after the browser went away")
	}
}

func TestFeedback(t *testing.T) {
	api := newStandinAPI(t, testModel)
	ui := startUI(t, api, nil)
	resp, raw := postJSON(t, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":1,"comment":" clear answer "}`)
	if resp.StatusCode != 200 || strings.TrimSpace(string(raw)) != `{"ok":true}` {
		t.Fatalf("status %d, body %s", resp.StatusCode, raw)
	}
	resp, _ = postJSON(t, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := api.feedbackCalls()
	want := []kserve.FeedbackRequest{{RunID: standinRunID, Score: ptr(1.0), Comment: "clear answer"}, {RunID: standinRunID, Score: ptr(0.0)}}
	if mustJSON(got) != mustJSON(want) {
		t.Errorf("API got feedback %+v, want %+v", got, want)
	}
}

func TestFeedbackRefusesBadRequests(t *testing.T) {
	api := newStandinAPI(t, testModel)
	ui := startUI(t, api, nil)
	cases := []struct{ name, body, want string }{
		{"no run id", `{"score":1}`, "This answer has no valid run id, so feedback cannot be recorded."},
		{"odd run id", `{"run_id":"../../v1/models","score":1}`, "This answer has no valid run id, so feedback cannot be recorded."},
		// Ids the old pattern let through to the API, which answered 400,
		// which the page showed as a 502 (issue #21).
		{"opaque run id", `{"run_id":"abc","score":1}`, "This answer has no valid run id, so feedback cannot be recorded."},
		{"run id with colon", `{"run_id":"run:1.2-3","score":1}`, "This answer has no valid run id, so feedback cannot be recorded."},
		{"no score", `{"run_id":"` + standinRunID + `"}`, "Feedback must be a thumbs up (score 1) or a thumbs down (score 0)."},
		{"score 5", `{"run_id":"` + standinRunID + `","score":5}`, "Feedback must be a thumbs up (score 1) or a thumbs down (score 0)."},
		{"long comment", `{"run_id":"` + standinRunID + `","score":1,"comment":"` + strings.Repeat("a", 1001) + `"}`, "The comment is too long (the limit is 1000 characters)."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := postJSON(t, ui+"/api/feedback", tc.body)
			if resp.StatusCode != 400 || errorBody(t, resp, raw) != tc.want {
				t.Errorf("status %d, body %s; want 400 %q", resp.StatusCode, raw, tc.want)
			}
		})
	}
	if n := len(api.feedbackCalls()); n != 0 {
		t.Errorf("the API got %d refused feedbacks", n)
	}
}

func TestFeedbackAPIFailure(t *testing.T) {
	api := newStandinAPI(t, testModel)
	api.set(func(b *behaviour) { b.feedbackStatus = 503 })
	ui := startUI(t, api, nil)
	resp, raw := postJSON(t, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":1}`)
	if resp.StatusCode != 502 || errorBody(t, resp, raw) != "Your feedback was not saved (API error 503): LangSmith is unavailable." {
		t.Errorf("status %d, body %s", resp.StatusCode, raw)
	}
}

// A run id in another UUID form ({braced}, urn:uuid:, upper case) names the
// same run; the API and LangSmith know it by the canonical form only.
func TestFeedbackForwardsCanonicalRunID(t *testing.T) {
	api := newStandinAPI(t, testModel)
	ui := startUI(t, api, nil)
	forms := []string{"{" + standinRunID + "}", "urn:uuid:" + standinRunID, strings.ToUpper(standinRunID)}
	for _, f := range forms {
		resp, raw := postJSON(t, ui+"/api/feedback", `{"run_id":"`+f+`","score":1}`)
		if resp.StatusCode != 200 {
			t.Fatalf("run id %q: status %d, body %s", f, resp.StatusCode, raw)
		}
	}
	for i, fb := range api.feedbackCalls() {
		if fb.RunID != standinRunID {
			t.Errorf("run id %q reached the API as %q, want %q", forms[i], fb.RunID, standinRunID)
		}
	}
}

// The API's 400 to feedback is about the request, not a broken gateway.
func TestFeedbackAPIRefusal(t *testing.T) {
	api := newStandinAPI(t, testModel)
	api.set(func(b *behaviour) { b.feedbackStatus = 400 })
	ui := startUI(t, api, nil)
	resp, raw := postJSON(t, ui+"/api/feedback", `{"run_id":"`+standinRunID+`","score":1}`)
	if resp.StatusCode != 400 || errorBody(t, resp, raw) != "Your feedback was not saved: the API could not accept it: LangSmith is unavailable." {
		t.Errorf("status %d, body %s", resp.StatusCode, raw)
	}
}

// FuzzCheckFeedback: whatever the browser sends as a feedback body, the UI
// either refuses it with 400 or forwards a canonical UUID run id, a score of
// 0 or 1 and a comment within the limit; it never panics.
func FuzzCheckFeedback(f *testing.F) {
	f.Add(standinRunID, 1, "good")
	f.Add("{"+standinRunID+"}", 0, "")
	f.Add("urn:uuid:"+standinRunID, 1, "  spaced  ")
	f.Add(strings.ReplaceAll(standinRunID, "-", ""), 1, "")
	f.Add("abc", 1, "")
	f.Add("../../v1/models", 5, strings.Repeat("é", 1001))
	canonical := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	f.Fuzz(func(t *testing.T, runID string, score int, comment string) {
		fb, err := checkFeedback(feedbackBody{RunID: runID, Score: &score, Comment: comment})
		if err != nil {
			var br *badRequest
			if !errors.As(err, &br) || br.status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		if !canonical.MatchString(fb.RunID) || fb.Score == nil || (*fb.Score != 0 && *fb.Score != 1) ||
			utf8.RuneCountInString(fb.Comment) > maxCommentChars {
			t.Fatalf("forwarded %+v", fb)
		}
	})
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	for _, path := range []string{"/", "/static/app.js", "/static/style.css", "/healthz", "/nope"} {
		resp, err := http.Get(ui + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q allows unsafe sources", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
	resp, raw := postJSON(t, ui+"/api/generate", `{"question":"q"}`)
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("the stream has no CSP header")
	}
	if c := resp.Header.Get("Set-Cookie"); c != "" || strings.Contains(string(raw), "api-session") {
		t.Errorf("the API's cookie reached the browser: %q", c)
	}
}

// TestPageLoadsOnlyEmbeddedAssets: everything the page loads comes from this
// server (no CDN), and each of it is served.
func TestPageLoadsOnlyEmbeddedAssets(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	resp, err := http.Get(ui + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page content type %q", resp.Header.Get("Content-Type"))
	}
	if strings.Contains(string(page), api.srv.URL) || strings.Contains(string(page), strings.TrimPrefix(api.srv.URL, "http://")) {
		t.Error("the page carries the API's address")
	}
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), " style=") || strings.Contains(string(page), " on") && regexp.MustCompile(` on[a-z]+=`).Match(page) {
		t.Error("the page has inline script, style or event handlers")
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	assets := 0
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "#") {
			continue
		}
		if !strings.HasPrefix(ref, "/static/") {
			t.Errorf("the page loads %q, which is not an embedded asset", ref)
			continue
		}
		assets++
		r, err := http.Get(ui + ref)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		ext := ref[strings.LastIndex(ref, "."):]
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), types[ext]) {
			t.Errorf("%s: status %d, type %q", ref, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	if assets < 3 {
		t.Errorf("found %d asset references in the page, want the script, the style sheet and the icon", assets)
	}
	if r, _ := http.Get(ui + "/static/"); r.StatusCode != 404 {
		t.Errorf("GET /static/ = %d, want 404 (no directory listing)", r.StatusCode)
	}
}

func TestPageShowsModelNameEscaped(t *testing.T) {
	// A model name cannot hold markup (New refuses it), and the template
	// escapes anyway; this checks the refusal.
	if _, err := New(Options{APIURL: "http://api", ModelName: `<b>x</b>`}); err == nil {
		t.Error("New accepted a model name with markup")
	}
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	req, _ := http.NewRequest(http.MethodPost, ui+"/api/generate", strings.NewReader(`{"question":"q"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if _, _, n := api.lastPredict(); n != 0 {
		t.Error("a cross-site request reached the API")
	}
}

func TestBrowserHeadersNotForwarded(t *testing.T) {
	api := newStandinAPI(t, testModel, "x")
	ui := startUI(t, api, nil)
	req, _ := http.NewRequest(http.MethodPost, ui+"/api/generate", strings.NewReader(`{"question":"q"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", "session=browser-secret")
	req.Header.Set("Authorization", "Bearer browser-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, hdr, _ := api.lastPredict()
	for k, v := range hdr {
		if strings.Contains(strings.Join(v, " "), "browser-secret") {
			t.Errorf("header %s from the browser reached the API", k)
		}
	}
}

func TestHealthz(t *testing.T) {
	api := newStandinAPI(t, testModel)
	ui := startUI(t, api, nil)
	resp, err := http.Get(ui + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(raw)) != `{"status":"ok"}` {
		t.Errorf("status %d, body %s", resp.StatusCode, raw)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{APIURL: "", ModelName: "m"},
		{APIURL: "llm-api:8080", ModelName: "m"},
		{APIURL: "ftp://api", ModelName: "m"},
		{APIURL: "http://user:pw@api", ModelName: "m"},
		{APIURL: "http://api", ModelName: ""},
		{APIURL: "http://api", ModelName: "a/b"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	_, err := New(Options{APIURL: "http://user:secret-pw@api?x=1", ModelName: "m"})
	if err == nil || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("error %v: want a refusal that does not repeat the password", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	api := newStandinAPI(t, testModel)
	srv, err := New(Options{APIURL: api.srv.URL, ModelName: testModel})
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still listening after shutdown")
	}
}

var _ error = (*APIError)(nil)

func TestHumanErrorFallbacks(t *testing.T) {
	status, msg := humanError(errors.New("read: connection reset by peer"), time.Minute, "m")
	if status != 502 || msg != "The connection to the model broke while it was answering. Try again." {
		t.Errorf("got %d %q", status, msg)
	}
	_, msg = humanError(&APIError{Status: 500, Message: strings.Repeat("trace line\n", 100)}, time.Minute, "m")
	if len([]rune(msg)) > maxQuoted+80 || strings.Contains(msg, "\n") {
		t.Errorf("a long API message is not trimmed to one bounded line: %d runes", len([]rune(msg)))
	}
}

func ptr[T any](v T) *T { return &v }
