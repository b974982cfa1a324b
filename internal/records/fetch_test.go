package records

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

// Hub sources are tested against hubtest's fake Hub on loopback, which
// follows the Hub's documented routes; the real Hub is not reachable here.

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func readRecords(t *testing.T, dir string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, RecordsDataFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]string
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("data.jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func hubClient(s *hubtest.Server, token string) *hub.Client {
	return hub.New(hub.Options{Endpoint: s.URL, Token: token, HTTPClient: s.HTTPClient(),
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond})
}

func TestFetchHubRawFilesPinnedToCommit(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "rajpurkar/squad-mini")
	r.SetPrivate(true)
	train := readFixture(t, "squad.parquet")
	sha := r.CommitFiles("main", map[string][]byte{
		"README.md": []byte("---\nconfigs: ...\n---\n"),
		"plain_text/train-00000-of-00001.parquet":      train,
		"plain_text/validation-00000-of-00001.parquet": train[:0:0],
	})
	out := filepath.Join(t.TempDir(), "records")
	meta, err := Fetch(context.Background(), FetchOptions{
		Source: "hf://datasets/rajpurkar/squad-mini", OutputDir: out, Hub: hubClient(s, s.Token), MaxBadRows: mustLimit(t, "50%"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Commit != sha || meta.Revision != "main" || meta.Split != "train" || meta.Format != FormatParquet {
		t.Errorf("metadata = %+v", meta)
	}
	if len(meta.Files) != 1 || meta.Files[0].Path != "plain_text/train-00000-of-00001.parquet" || meta.Files[0].SHA256 != hexSHA(train) {
		t.Errorf("files = %+v", meta.Files)
	}
	if meta.RowsRead != 6 || meta.RowsWritten != 4 || meta.RowsSkipped != 2 || meta.SkippedByReason["missing:answer"] != 1 {
		t.Errorf("counts = %+v", meta)
	}
	recs := readRecords(t, out)
	if len(recs) != 4 || recs[0]["answer"] != "a golden statue of the Virgin Mary" || len(recs[0]) != 3 {
		t.Errorf("records = %v", recs)
	}
	onDisk, err := ReadMetadata(out)
	if err != nil || onDisk.Commit != sha {
		t.Errorf("metadata.json = %+v, %v", onDisk, err)
	}
	// Every download named the commit, and the token never left the Hub's host.
	for _, q := range s.Requests() {
		if strings.Contains(q.Path, "/resolve/") && !strings.Contains(q.Path, "/resolve/"+sha+"/") {
			t.Errorf("unpinned download %s", q.Path)
		}
		if q.Host == hubtest.CDNHost && q.Header.Get("Authorization") != "" {
			t.Errorf("token sent to the CDN: %s", q.Path)
		}
		if q.Host == hubtest.HubHost && q.Header.Get("Authorization") != "Bearer "+s.Token {
			t.Errorf("Hub request without the token: %s", q.Path)
		}
	}
}

func mustLimit(t *testing.T, s string) BadRowLimit {
	l, err := ParseBadRowLimit(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFetchHubSplitAndFaults(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/qa")
	dev := []byte(`{"context":"c1","question":"q1","answer":"a1"}` + "\n" + `{"context":"c2","question":"q2","answer":"a2"}` + "\n")
	r.CommitFiles("main", map[string][]byte{
		"data/train.jsonl": []byte(`{"context":"t","question":"t","answer":"t"}` + "\n"),
		"data/dev.jsonl":   dev,
	})
	tag := r.CommitFiles("main", map[string][]byte{"data/dev.jsonl": append(dev, dev...)})
	r.SetRef("v2", tag)
	// The connection drops in the middle of the file, then the Hub is busy.
	isFile := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/resolve/") }
	s.AddFault(hubtest.Fault{Match: isFile, DropAfter: 30})
	s.AddFault(hubtest.Fault{Match: isFile, Status: 429, Header: http.Header{"Retry-After": {"0"}}})
	s.AddFault(hubtest.Fault{Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/tree/") }, Status: 500})
	out := filepath.Join(t.TempDir(), "records")
	meta, err := Fetch(context.Background(), FetchOptions{
		Source: "hf://datasets/o/qa", Revision: "v2", Split: "validation", OutputDir: out, Hub: hubClient(s, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Commit != tag || meta.Revision != "v2" || meta.RowsWritten != 4 || meta.Files[0].SHA256 != hexSHA(append(dev, dev...)) {
		t.Errorf("metadata = %+v", meta)
	}
	var ranged bool
	for _, q := range s.Requests() {
		if strings.HasPrefix(q.Header.Get("Range"), "bytes=30-") {
			ranged = true
		}
	}
	if !ranged {
		t.Error("no resumed request after the dropped connection")
	}
}

func TestFetchHubParquetConversionFallback(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/scripted")
	r.CommitFiles("main", map[string][]byte{"scripted.py": []byte("# a loading script"), "README.md": []byte("#")})
	pq := readFixture(t, "squad.parquet")
	conv := r.CommitFiles(hubtest.ParquetRef, map[string][]byte{
		"plain_text/partial-train/0000.parquet": pq,
		"plain_text/validation/0000.parquet":    pq,
	})
	out := filepath.Join(t.TempDir(), "records")
	meta, err := Fetch(context.Background(), FetchOptions{
		Source: "hf://datasets/o/scripted", Split: "validation", OutputDir: out, Hub: hubClient(s, ""), MaxBadRows: mustLimit(t, "2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !meta.ParquetConversion || meta.Commit != conv || meta.Revision != hub.ParquetRevision || meta.Subset != "plain_text" ||
		meta.Files[0].Path != "plain_text/validation/0000.parquet" || meta.RowsWritten != 4 {
		t.Errorf("metadata = %+v", meta)
	}
	var sawListing bool
	for _, q := range s.Requests() {
		if q.RawPath == "/api/datasets/o/scripted/parquet" {
			sawListing = true
		}
	}
	if !sawListing {
		t.Error("the parquet listing was not consulted")
	}
	// The train split was too large to convert whole: partial-train.
	meta, err = Fetch(context.Background(), FetchOptions{
		Source: "hf://datasets/o/scripted", OutputDir: filepath.Join(t.TempDir(), "train"), Hub: hubClient(s, ""), MaxBadRows: mustLimit(t, "2"),
	})
	if err != nil || meta.Files[0].Path != "plain_text/partial-train/0000.parquet" || meta.Split != "train" {
		t.Errorf("partial split: %+v, %v", meta, err)
	}
}

func TestFetchFailuresLeaveNothing(t *testing.T) {
	s := hubtest.New(t)
	g := s.AddRepo("dataset", "o/gated")
	g.CommitFiles("main", map[string][]byte{"train.jsonl": []byte(`{"text":"x"}` + "\n")})
	g.SetGated(true, false)
	ok := s.AddRepo("dataset", "o/ok")
	ok.CommitFiles("main", map[string][]byte{"train.jsonl": readFixture(t, "squad.jsonl"), "README.md": []byte("# ok\n")})
	c := hubClient(s, s.Token)
	cases := []struct {
		name string
		opts FetchOptions
		want error
	}{
		{"gated", FetchOptions{Source: "hf://datasets/o/gated"}, hub.ErrGatedRepo},
		{"missing repo", FetchOptions{Source: "hf://datasets/o/none"}, hub.ErrRepoNotFound},
		{"missing revision", FetchOptions{Source: "hf://datasets/o/ok@nope"}, hub.ErrRevisionNotFound},
		{"missing file", FetchOptions{Source: "hf://datasets/o/ok/test.jsonl"}, hub.ErrEntryNotFound},
		{"bad rows", FetchOptions{Source: "hf://datasets/o/ok", MaxBadRows: mustLimit(t, "1")}, ErrTooManyBadRows},
		{"too large", FetchOptions{Source: "hf://datasets/o/ok", MaxBytes: 100}, hub.ErrTooLarge},
		{"no usable rows", FetchOptions{Source: "hf://datasets/o/ok", Fields: map[string]string{"answer": "nope"}, MaxBadRows: mustLimit(t, "none")}, ErrNoRecords},
		{"bad source", FetchOptions{Source: "ftp://x/y"}, ErrSource},
		{"no such format", FetchOptions{Source: "hf://datasets/o/ok", Format: FormatCSV}, ErrSource},
		{"path without data", FetchOptions{Source: "hf://datasets/o/ok/README.md"}, ErrSource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			tc.opts.OutputDir = filepath.Join(parent, "records")
			tc.opts.Hub = c
			_, err := Fetch(context.Background(), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), s.Token) {
				t.Errorf("error leaks the token: %v", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

func TestFetchLocalAndURL(t *testing.T) {
	dir := t.TempDir()
	data := readFixture(t, "flat.csv")
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "train.csv"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "src", "test.csv"), []byte("context,question,answer\nx,y,z\n"), 0o644)
	for _, src := range []string{filepath.Join(dir, "src"), "file://" + filepath.Join(dir, "src", "train.csv")} {
		out := filepath.Join(dir, "out"+filepath.Base(src))
		meta, err := Fetch(context.Background(), FetchOptions{Source: src, OutputDir: out, MaxBadRows: mustLimit(t, "1")})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if meta.RowsWritten != 3 || meta.Files[0].SHA256 != hexSHA(data) || meta.Format != FormatCSV {
			t.Errorf("%s: metadata = %+v", src, meta)
		}
	}
	// An https-style URL on a host other than the Hub's: no token sent.
	s := hubtest.New(t)
	other := newPlainServer(t, map[string][]byte{"/files/alpaca.json": readFixture(t, "alpaca.json")})
	c := hub.New(hub.Options{Endpoint: s.URL, Token: s.Token})
	out := filepath.Join(dir, "url")
	meta, err := Fetch(context.Background(), FetchOptions{Source: other.URL + "/files/alpaca.json?sig=abc", OutputDir: out, Hub: c, MaxBadRows: mustLimit(t, "1")})
	if err != nil {
		t.Fatal(err)
	}
	if meta.RowsWritten != 2 || strings.Contains(meta.Files[0].Path, "sig=") || strings.Contains(meta.Source, "sig=") {
		t.Errorf("metadata = %+v", meta)
	}
	if auth := other.lastAuth(); auth != "" {
		t.Errorf("token sent to a non-Hub host: %q", auth)
	}
}
