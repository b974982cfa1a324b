package server

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDeployedUI asks one question in a real browser through a UI
// that is already running, with a real model behind it: the UI container of
// make rehearse (internal/rehearse), which sets KFLLM_UI_URL, KFLLM_UI_MODEL,
// KFLLM_UI_CONTEXT and KFLLM_UI_QUESTION. Without KFLLM_UI_URL it skips.
func TestBrowserDeployedUI(t *testing.T) {
	url := os.Getenv("KFLLM_UI_URL")
	if url == "" {
		t.Skip("KFLLM_UI_URL is not set: make rehearse runs this test against its UI container")
	}
	tb := openTab(t, desktop)
	tb.do(chromedp.Navigate(url + "/"))
	if want := os.Getenv("KFLLM_UI_MODEL"); want != "" {
		if got := text(tb, "model-name"); got != want {
			t.Errorf("the page names model %q, want %q", got, want)
		}
	}
	ctxText, question := os.Getenv("KFLLM_UI_CONTEXT"), os.Getenv("KFLLM_UI_QUESTION")
	if ctxText == "" || question == "" {
		tb.do(chromedp.Click(chromedp.ID("sample")))
		ctxText = eval[string](tb, `document.getElementById('context').value`)
		question = eval[string](tb, `document.getElementById('question').value`)
	} else {
		tb.do(chromedp.SetValue(chromedp.ID("context"), ctxText), chromedp.SetValue(chromedp.ID("question"), question))
	}
	tb.do(chromedp.Click(chromedp.ID("generate")))
	// A CPU model answers in seconds, not in the stand-in's milliseconds.
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](answerDone+` || `+errorShown, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("no answer: %v; status %q", err, text(tb, "status"))
	}
	if visible(tb, "error") {
		t.Fatalf("the page shows an error: %q", text(tb, "error"))
	}
	answer := strings.TrimSpace(text(tb, "answer"))
	if answer == "" {
		t.Fatal("the page shows an empty answer")
	}
	if got := text(tb, "status"); got != "Done." {
		t.Errorf("status %q, want Done.", got)
	}
	t.Logf("question %q -> answer %q (tokens out %s, latency %s)", question, answer, text(tb, "tokens-out"), text(tb, "latency"))
	tb.checkClean()
}
