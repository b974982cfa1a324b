package langsmith_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/langsmith"
	"github.com/kfllm/kfllm/internal/langsmith/langsmithtest"
)

func TestBaggageRoundTrip(t *testing.T) {
	md := map[string]any{"user_id": "alice@example.com", "odd": `a,b;c="d" é`}
	h, err := langsmith.Baggage(md)
	if err != nil {
		t.Fatal(err)
	}
	// A baggage value may not hold these outside percent-encoding.
	if v := strings.TrimPrefix(h, "langsmith-metadata="); strings.ContainsAny(v, ",; \"\\") {
		t.Errorf("baggage %q holds a delimiter", h)
	}
	got := langsmith.MetadataFromBaggage("other=1, " + h + ";prop=x")
	if got["user_id"] != "alice@example.com" || got["odd"] != md["odd"] {
		t.Errorf("round trip: %v", got)
	}
}

// What the LangSmith SDK (Python) writes: urllib.parse.quote of the JSON.
func TestBaggageFromSDK(t *testing.T) {
	sdk := "langsmith-metadata=" + url.PathEscape(`{"user_id": "bob"}`) + ",langsmith-project=p"
	if got := langsmith.MetadataFromBaggage(sdk); got["user_id"] != "bob" {
		t.Errorf("metadata %v", got)
	}
	for _, bad := range []string{"", "langsmith-metadata=%zz", "langsmith-metadata=notjson", "langsmith-metadata=" + strings.Repeat("a", 9000)} {
		if got := langsmith.MetadataFromBaggage(bad); got != nil {
			t.Errorf("MetadataFromBaggage(%.30q) = %v, want nil", bad, got)
		}
	}
}

// What a server does with the UI's header: the user id ends up in the
// trace's metadata in what LangSmith receives.
func TestBaggageReachesTheTrace(t *testing.T) {
	srv := langsmithtest.New()
	defer srv.Close()
	tr := newTracer(t, srv, langsmith.TracerOptions{})
	b, err := langsmith.Baggage(map[string]any{"user_id": "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(langsmith.BaggageHeader, b)
	ctx := langsmith.ContextWithBaggage(context.Background(), h)
	root := sequenceTrace(time.Now(), false)
	root.AddMetadata(langsmith.MetadataFromContext(ctx))
	tr.Submit(root)
	tr.Close(context.Background())
	runs := srv.Runs()
	if len(runs) == 0 || runs[0].Metadata()["user_id"] != "alice@example.com" {
		t.Fatalf("root run metadata %v", runs)
	}
	if md := langsmith.MetadataFromContext(langsmith.ContextWithBaggage(context.Background(), http.Header{})); md != nil {
		t.Errorf("metadata from no header: %v", md)
	}
}
