package langsmith_test

import (
	"context"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
)

// These tests talk to langsmithtest.Server, a local stand-in that follows
// LangSmith's documented wire format (POST /runs/multipart, /runs/batch,
// /feedback): LangSmith itself is not reachable from the test machines.

const canonicalID = "0b3f6c5e-2a7d-4c1e-9f4a-8d2b6e1c7a90"

// Every form uuid.Parse accepts names the same run, and the run was created
// under the canonical form: that is the form that must reach LangSmith.
func TestFeedbackRunIDIsForwardedCanonical(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	forms := []string{
		canonicalID,
		strings.ToUpper(canonicalID),
		"{" + canonicalID + "}",
		"urn:uuid:" + canonicalID,
		strings.ReplaceAll(canonicalID, "-", ""),
	}
	for _, f := range forms {
		if !tr.Feedback(langsmith.NewFeedback(f, "user_score", 1, "")) {
			t.Fatalf("feedback for %q refused", f)
		}
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	fbs := srv.FeedbackItems()
	if len(fbs) != len(forms) {
		t.Fatalf("got %d feedback items, want %d", len(fbs), len(forms))
	}
	for i, fb := range fbs {
		if fb.RunID != canonicalID {
			t.Errorf("run id %q reached LangSmith as %q, want %q", forms[i], fb.RunID, canonicalID)
		}
	}
}

func TestParseFeedback(t *testing.T) {
	long := strings.Repeat("k", langsmith.MaxFeedbackKeyLen+1)
	cases := []struct {
		name, runID, key, comment string
		score                     float64
		ok                        bool
	}{
		{"plain", canonicalID, "user_score", "fine", 1, true},
		{"braced", "{" + canonicalID + "}", "user_score", "", 0, true},
		{"key at limit", canonicalID, long[1:], "", 1, true},
		{"key too long", canonicalID, long, "", 1, false},
		{"empty key", canonicalID, "", "", 1, false},
		{"key with space", canonicalID, "user score", "", 1, false},
		{"key with slash", canonicalID, "../feedback", "", 1, false},
		{"key with newline", canonicalID, "a\nb", "", 1, false},
		{"not a uuid", "abc", "user_score", "", 1, false},
		{"path in run id", "../../runs", "user_score", "", 1, false},
		{"NaN score", canonicalID, "user_score", "", math.NaN(), false},
		{"long comment", canonicalID, "user_score", strings.Repeat("x", langsmith.MaxFeedbackCommentBytes+1), 1, false},
		{"bad utf-8 comment", canonicalID, "user_score", "\xff", 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb, err := langsmith.ParseFeedback(tc.runID, tc.key, tc.score, tc.comment)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseFeedback = %+v, %v; want ok=%v", fb, err, tc.ok)
			}
			if err != nil && !errors.Is(err, langsmith.ErrInvalidFeedback) {
				t.Errorf("error %v does not wrap ErrInvalidFeedback", err)
			}
			if err == nil && fb.RunID != canonicalID {
				t.Errorf("run id %q, want %q", fb.RunID, canonicalID)
			}
		})
	}
}

func TestTracerRefusesMalformedFeedback(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	bad := []langsmith.Feedback{
		langsmith.NewFeedback("not-a-run", "user_score", 1, ""),
		langsmith.NewFeedback(canonicalID, strings.Repeat("k", 10_000), 1, ""),
		langsmith.NewFeedback(canonicalID, "key\nwith newline", 1, ""),
	}
	for _, fb := range bad {
		if tr.Feedback(fb) {
			t.Errorf("Tracer.Feedback accepted run %q key %q", fb.RunID, langsmith.Clip(fb.Key))
		}
	}
	tr.Close(context.Background())
	if n := len(srv.FeedbackItems()); n != 0 {
		t.Errorf("LangSmith got %d malformed feedback items", n)
	}
	if s := tr.Stats(); s.FeedbackInvalid != int64(len(bad)) {
		t.Errorf("stats %+v, want FeedbackInvalid %d", s, len(bad))
	}
}

var canonicalRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// FuzzParseFeedback: whatever a client sends, ParseFeedback either refuses
// it with ErrInvalidFeedback or returns feedback whose run id is canonical,
// whose key is a short name and whose comment fits; it never panics.
func FuzzParseFeedback(f *testing.F) {
	f.Add(canonicalID, "user_score", "good")
	f.Add("{"+canonicalID+"}", "correctness", "")
	f.Add("urn:uuid:"+canonicalID, "a.b-c_d", "")
	f.Add(strings.ReplaceAll(canonicalID, "-", ""), "k", "")
	f.Add(strings.ToUpper(canonicalID), strings.Repeat("k", 65), "")
	f.Add("urn:uuid:{"+canonicalID+"}", "", "\xff")
	f.Add("abc", "../x", "c")
	f.Fuzz(func(t *testing.T, runID, key, comment string) {
		fb, err := langsmith.ParseFeedback(runID, key, 1, comment)
		if err != nil {
			if !errors.Is(err, langsmith.ErrInvalidFeedback) {
				t.Fatalf("error %v does not wrap ErrInvalidFeedback", err)
			}
			return
		}
		if !canonicalRE.MatchString(fb.RunID) {
			t.Fatalf("run id %q accepted as %q, not canonical", runID, fb.RunID)
		}
		if again, err := langsmith.ParseRunID(fb.RunID); err != nil || again != fb.RunID {
			t.Fatalf("canonical run id %q does not parse to itself: %q, %v", fb.RunID, again, err)
		}
		if fb.Key != key || len(key) == 0 || len(key) > langsmith.MaxFeedbackKeyLen ||
			strings.ContainsAny(key, " \t\r\n/\\\"'{}<>") {
			t.Fatalf("key %q accepted", key)
		}
		if len(comment) > langsmith.MaxFeedbackCommentBytes || !utf8.ValidString(comment) {
			t.Fatalf("comment of %d bytes accepted", len(comment))
		}
	})
}

// A flood of feedback against a hung /feedback must not take traces'
// places: they have their own queue, feedback beyond its bound is dropped
// and counted.
func TestFeedbackFloodDoesNotCrowdOutTraces(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	srv.Block("/feedback")
	defer srv.Unblock()
	tr := newTracer(t, srv, langsmith.TracerOptions{FeedbackQueueSize: 10, FlushTimeout: 200 * time.Millisecond})
	root := sequenceTrace(time.Now(), false)
	tr.Submit(root)
	for range 5000 {
		tr.Feedback(langsmith.NewFeedback(root.ID, "user_score", 1, ""))
	}
	const traces = 200
	accepted := 0
	for range traces {
		if tr.Submit(sequenceTrace(time.Now(), false)) {
			accepted++
		}
	}
	if accepted != traces {
		t.Errorf("%d of %d traces accepted after a feedback flood", accepted, traces)
	}
	// The traces leave while feedback hangs.
	deadline := time.Now().Add(2 * time.Minute) // a guard on a loaded machine, not a timing
	for len(srv.Runs()) < 4*(traces+1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(srv.Runs()); got != 4*(traces+1) {
		t.Errorf("LangSmith got %d runs while /feedback hung, want %d", got, 4*(traces+1))
	}
	err := tr.Close(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with /feedback hung = %v, want the flush deadline", err)
	}
	s := tr.Stats()
	if s.RunsDropped != 0 || s.FeedbackDropped < 5000-11 || s.FeedbackSent != 0 ||
		s.FeedbackDropped+s.FeedbackFailed != 5000 {
		t.Errorf("stats %+v: want no run dropped, feedback beyond its queue dropped, the rest failed", s)
	}
}

// Close ends within TracerOptions.FlushTimeout even when the caller's
// context has no deadline (serving passes its own 60 s shutdown context;
// Kubernetes kills the pod 30 s after SIGTERM by default).
func TestCloseEndsWithinFlushTimeout(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	srv.Block()
	defer srv.Unblock()
	tr := newTracer(t, srv, langsmith.TracerOptions{FlushTimeout: 300 * time.Millisecond})
	for range 10 {
		tr.Submit(sequenceTrace(time.Now(), false))
	}
	tr.Feedback(langsmith.NewFeedback(canonicalID, "user_score", 0, ""))
	done := make(chan error, 1)
	go func() { done <- tr.Close(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want deadline exceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end 20 s after a 300 ms flush timeout")
	}
	if s := tr.Stats(); s.RunsFailed != 40 || s.FeedbackFailed != 1 || s.RunsSent != 0 {
		t.Errorf("stats %+v: want all 40 runs and the feedback counted as failed", s)
	}
}

// Feedback still goes out after the trace it judges, though the two queues
// are separate and the batch is not full.
func TestFeedbackWaitsForItsTrace(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{FlushInterval: time.Hour})
	root := sequenceTrace(time.Now(), false)
	tr.Submit(root)
	tr.Feedback(langsmith.NewFeedback(root.ID, "user_score", 1, ""))
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.FeedbackItems()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	runs := len(srv.Runs())
	if len(srv.FeedbackItems()) != 1 || runs != 4 {
		t.Errorf("feedback %d, runs %d when the feedback arrived; want 1 after 4", len(srv.FeedbackItems()), runs)
	}
	tr.Close(context.Background())
}
