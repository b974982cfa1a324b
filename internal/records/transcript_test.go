package records

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

var updateRecords = flag.Bool("update-records", false, "rewrite the records golden files in testdata")

// TestHubFetchTranscript pins the exact requests a hf:// fetch makes,
// faults included: the revision lookup, the tree listing (retried after a
// 500, then its second page by the Link header), the data file (429 with
// Retry-After, then dropped mid-body, then resumed with Range), and where
// the token went. Run with -update-records to rewrite the golden file.
func TestHubFetchTranscript(t *testing.T) {
	s := hubtest.New(t)
	s.SetTreePageSize(2)
	r := s.AddRepo("dataset", "o/qa")
	r.SetPrivate(true)
	r.Commit("main", hubtest.Change{Add: map[string]hubtest.File{
		"README.md": {Data: []byte("# qa\n")},
		// Stored in LFS: the Hub answers with a redirect to its CDN.
		"data/train.jsonl":      {Data: readFixture(t, "squad.jsonl"), LFS: true},
		"data/validation.jsonl": {Data: []byte(`{"context":"c","question":"q","answer":"a"}` + "\n")},
	}})
	isFile := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/resolve/") }
	s.AddFault(hubtest.Fault{Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/tree/") }, Status: 500})
	s.AddFault(hubtest.Fault{Match: isFile, Status: 429, Header: http.Header{"Retry-After": {"0"}}})
	s.AddFault(hubtest.Fault{Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/repos/") }, DropAfter: 500})
	_, err := Fetch(context.Background(), FetchOptions{
		Source: "hf://datasets/o/qa", OutputDir: filepath.Join(t.TempDir(), "out"), Hub: hubClient(s, s.Token), MaxBadRows: mustLimit(t, "3"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, q := range s.Requests() {
		auth := "-"
		if a := q.Header.Get("Authorization"); a == "Bearer "+s.Token {
			auth = "token"
		} else if a != "" {
			auth = "other"
		}
		target := q.RawPath
		if q.Host == hubtest.CDNHost {
			target += "?X-Amz-Signature=…" // the signed query, as the Hub's redirect gave it
		} else if q.RawQuery != "" {
			target += "?" + q.RawQuery
		}
		fmt.Fprintf(&b, "%s %s %s auth=%s range=%s accept-encoding=%s\n", q.Method, q.Host, target, auth,
			orDash(q.Header.Get("Range")), orDash(q.Header.Get("Accept-Encoding")))
	}
	golden := filepath.Join("testdata", "hub_fetch.transcript")
	if *updateRecords {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-records to create it)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("requests differ from %s (-want +got):\n%s", golden, diff)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
