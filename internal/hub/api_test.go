package hub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

// These tests talk to hubtest's fake Hub on loopback, which follows the
// Hub's documented routes and headers; the real Hub is not reachable here.

func hubClient(s *hubtest.Server, token string) *Client {
	return New(Options{Endpoint: s.URL, Token: token, HTTPClient: s.HTTPClient(),
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond})
}

func TestResolveRevisionRequestShape(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "owner/data")
	sha := r.CommitFiles("main", map[string][]byte{"train.jsonl": []byte("{}\n")})
	r.SetRef("refs/pr/1", sha)
	c := hubClient(s, s.Token)
	got, err := c.ResolveRevision(context.Background(), typeDataset, "owner/data", "refs/pr/1")
	if err != nil || got != sha {
		t.Fatalf("ResolveRevision = %q, %v; want %q", got, err, sha)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	q := reqs[0]
	if q.Method != "GET" || q.RawPath != "/api/datasets/owner/data/revision/refs%2Fpr%2F1" || q.Host != hubtest.HubHost {
		t.Errorf("request = %s %s%s", q.Method, q.Host, q.RawPath)
	}
	if q.Header.Get("Authorization") != "Bearer "+s.Token || q.Header.Get("User-Agent") == "" {
		t.Errorf("headers = %v", q.Header)
	}
}

func TestListTreeFollowsLinkPages(t *testing.T) {
	s := hubtest.New(t)
	s.SetTreePageSize(2)
	r := s.AddRepo("model", "owner/m")
	files := map[string][]byte{"config.json": []byte("{}"), "a/b/c.txt": []byte("c"), "a/d.txt": []byte("d"), "model.safetensors": []byte("weights")}
	sha := r.CommitFiles("main", files)
	c := hubClient(s, "")
	entries, err := c.ListTree(context.Background(), typeModel, "owner/m", sha, "", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Type[:1]+":"+e.Path)
		if e.Path == "model.safetensors" && (e.LFS == nil || e.LFS.Size != 7 || e.ETag() != e.LFS.OID) {
			t.Errorf("lfs entry = %+v", e)
		}
		if e.Path == "config.json" && (e.LFS != nil || e.ETag() != hubtest.GitBlobOID([]byte("{}"))) {
			t.Errorf("regular entry = %+v", e)
		}
	}
	want := "d:a d:a/b f:a/b/c.txt f:a/d.txt f:config.json f:model.safetensors"
	if strings.Join(got, " ") != want {
		t.Errorf("entries = %s\nwant      %s", strings.Join(got, " "), want)
	}
	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 pages", len(reqs))
	}
	if reqs[0].RawPath != "/api/models/owner/m/tree/"+sha || reqs[0].RawQuery != "expand=false&recursive=true" {
		t.Errorf("first page request = %s?%s", reqs[0].RawPath, reqs[0].RawQuery)
	}
	if !strings.Contains(reqs[1].RawQuery, "cursor=2") || !strings.Contains(reqs[2].RawQuery, "cursor=4") {
		t.Errorf("page requests = %q, %q", reqs[1].RawQuery, reqs[2].RawQuery)
	}
	for _, q := range reqs {
		if q.Header.Get("Authorization") != "" {
			t.Errorf("anonymous client sent Authorization")
		}
	}
}

func TestListTreeSubdirectoryEscaped(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/d")
	r.CommitFiles("main", map[string][]byte{"data/train/x.csv": []byte("a\n1\n"), "README.md": []byte("#")})
	entries, err := hubClient(s, "").ListTree(context.Background(), typeDataset, "o/d", "main", "data/train", false)
	if err != nil || len(entries) != 1 || entries[0].Path != "data/train/x.csv" {
		t.Fatalf("entries = %+v, %v", entries, err)
	}
	if got := s.Requests()[0].RawPath; got != "/api/datasets/o/d/tree/main/data%2Ftrain" {
		t.Errorf("path = %s", got)
	}
}

func TestListParquet(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("dataset", "o/squad")
	r.CommitFiles("main", map[string][]byte{"README.md": []byte("#")})
	r.CommitFiles(hubtest.ParquetRef, map[string][]byte{
		"plain_text/train/0000.parquet": []byte("PAR1"), "plain_text/train/0001.parquet": []byte("PAR1"),
		"plain_text/validation/0000.parquet": []byte("PAR1"),
	})
	c := hubClient(s, "")
	all, err := c.ListParquet(context.Background(), "o/squad")
	if err != nil {
		t.Fatal(err)
	}
	if len(all["plain_text"]["train"]) != 2 || len(all["plain_text"]["validation"]) != 1 {
		t.Fatalf("listing = %v", all)
	}
	urls, err := c.ListParquetSplit(context.Background(), "o/squad", "plain_text", "validation")
	if err != nil || len(urls) != 1 || urls[0] != s.URL+"/api/datasets/o/squad/parquet/plain_text/validation/0.parquet" {
		t.Fatalf("urls = %v, %v", urls, err)
	}
	if _, err := c.ListParquetSplit(context.Background(), "o/squad", "plain_text", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing split: %v", err)
	}
}

func TestHubErrorsAreClear(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("model", "o/private").SetPrivate(true)
	gated := s.AddRepo("model", "o/gated")
	gated.CommitFiles("main", map[string][]byte{"config.json": []byte("{}")})
	gated.SetGated(true, false)
	ok := s.AddRepo("model", "o/ok")
	sha := ok.CommitFiles("main", map[string][]byte{"config.json": []byte("{}")})
	ctx := context.Background()
	anon, authed := hubClient(s, ""), hubClient(s, s.Token)

	_, err := anon.ResolveRevision(ctx, typeModel, "o/private", "main")
	if !errors.Is(err, ErrRepoNotFound) || !strings.Contains(err.Error(), "set HF_TOKEN") {
		t.Errorf("private, anonymous: %v", err)
	}
	_, err = authed.ResolveRevision(ctx, typeModel, "o/missing", "main")
	if !errors.Is(err, ErrRepoNotFound) {
		t.Errorf("missing: %v", err)
	}
	_, err = authed.ResolveRevision(ctx, typeModel, "o/gated", "main")
	if !errors.Is(err, ErrGatedRepo) || !strings.Contains(err.Error(), "request access") {
		t.Errorf("gated: %v", err)
	}
	_, err = authed.ResolveRevision(ctx, typeModel, "o/ok", "v9")
	if !errors.Is(err, ErrRevisionNotFound) || !strings.Contains(err.Error(), "v9") {
		t.Errorf("revision: %v", err)
	}
	_, err = authed.DownloadFile(ctx, authed.FileURL(typeModel, "o/ok", sha, "nope.bin"), t.TempDir()+"/x", DownloadOptions{})
	if !errors.Is(err, ErrEntryNotFound) {
		t.Errorf("entry: %v", err)
	}
	bad := hubClient(s, "hf_wrong")
	_, err = bad.ResolveRevision(ctx, typeModel, "o/ok", "main")
	var he *Error
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || strings.Contains(err.Error(), "hf_wrong") {
		t.Errorf("bad token: %v", err)
	}
}

func TestNextPageURL(t *testing.T) {
	h := http.Header{"Link": {`<https://hub/api/x?cursor=abc&recursive=true>; rel="next", <https://hub/api/x>; rel="first"`}}
	if got := nextPageURL(h); got != "https://hub/api/x?cursor=abc&recursive=true" {
		t.Errorf("nextPageURL = %q", got)
	}
	if got := nextPageURL(http.Header{"Link": {`<https://hub/a>; rel="prev"`}}); got != "" {
		t.Errorf("nextPageURL = %q", got)
	}
}

// HEAD without following the redirect shows the Hub's own headers, as
// huggingface_hub's get_hf_file_metadata reads them.
func TestResolveHeadersWithoutRedirect(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("model", "o/m")
	data := []byte("weights")
	sha := r.CommitFiles("main", map[string][]byte{"model.safetensors": data})
	c := hubClient(s, s.Token)
	resp, err := c.Do(context.Background(), &Request{Method: "HEAD", URL: c.FileURL(typeModel, "o/m", "main", "model.safetensors"), NoRedirect: true})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("X-Repo-Commit") != sha ||
		unquoteETag(resp.Header.Get("X-Linked-Etag")) != (hubtest.File{Data: data}).SHA256() ||
		!strings.HasPrefix(resp.Header.Get("Location"), s.CDNURL) {
		t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("%d requests: the redirect was followed", n)
	}
}
