package langsmith_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/langsmith"
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
