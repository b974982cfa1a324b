package hub

// The upload tests run against hubtest's fake Hub, which follows the
// documented routes (huggingface_hub's hf_api.py, _commit_api.py, lfs.py and
// the git-lfs batch API) because the real Hub is unreachable here. The fake
// records every request, checks oids against the bytes it receives and
// stores what is committed.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

func uploadClient(s *hubtest.Server, token string, log *bytes.Buffer) *Client {
	o := Options{Endpoint: s.URL, Token: token, HTTPClient: s.UploadHTTPClient(),
		MinRetryWait: time.Millisecond, MaxRetryWait: 5 * time.Millisecond}
	if log != nil {
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	return New(o)
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func upSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// weights is binary content (it holds NUL bytes), so the Hub wants it in LFS.
func weights(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

func modelDir(t *testing.T, w []byte) string {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "config.json"), []byte(`{"model_type":"llama"}`))
	writeFile(t, filepath.Join(d, "model.safetensors"), w)
	writeFile(t, filepath.Join(d, "tokenizer", "tokenizer.json"), []byte(`{"version":"1.0"}`))
	return d
}

func fileLine(path string, data []byte) string {
	return fmt.Sprintf(`{"key":"file","value":{"content":"%s","path":"%s","encoding":"base64"}}`, base64.StdEncoding.EncodeToString(data), path)
}

func lfsLine(path string, data []byte) string {
	return fmt.Sprintf(`{"key":"lfsFile","value":{"path":"%s","algo":"sha256","oid":"%s","size":%d}}`, path, upSHA256(data), len(data))
}

func routes(recs []hubtest.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Method+" "+r.Host+" "+r.Path)
	}
	return out
}

func TestUploadFolderBasicTransfer(t *testing.T) {
	s := hubtest.New(t)
	s.Uploads().Verify = true
	var log bytes.Buffer
	c := uploadClient(s, s.Token, &log)
	w := weights(3000)
	dir := modelDir(t, w)
	ctx := context.Background()

	res, err := c.UploadFolder(ctx, dir, UploadOptions{RepoID: "me/tiny", CommitMessage: "Upload model", CommitDescription: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Changed || res.Added != 3 || res.LFSSent != 1 || res.Files != 3 {
		t.Fatalf("result %+v", res)
	}
	oid := upSHA256(w)
	recs := s.Requests()
	// The tree is listed at the head the revision resolved to (the commit
	// create_repo made), not at the moving branch name.
	firstSHA := ""
	if len(recs) > 2 {
		firstSHA = strings.TrimPrefix(recs[2].Path, "/api/models/me/tiny/tree/")
	}
	if len(firstSHA) != 40 {
		t.Fatalf("tree listed at %q, want a commit sha", firstSHA)
	}
	want := []string{
		"POST hub.test /api/repos/create",
		"GET hub.test /api/models/me/tiny/revision/main",
		"GET hub.test /api/models/me/tiny/tree/" + firstSHA,
		"POST hub.test /api/models/me/tiny/preupload/main",
		"POST hub.test /me/tiny.git/info/lfs/objects/batch",
		"PUT " + hubtest.StorageHost + " /lfs/" + oid,
		"POST hub.test /me/tiny.git/info/lfs/objects/verify",
		"POST hub.test /api/models/me/tiny/commit/main",
	}
	if got := routes(recs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests\n got %q\nwant %q", got, want)
	}
	for _, r := range recs {
		auth := r.Header.Get("Authorization")
		if r.Host == hubtest.StorageHost && auth != "" {
			t.Errorf("token sent to the storage host: %s %s", r.Method, r.Path)
		}
		if r.Host == hubtest.HubHost && auth != "Bearer "+s.Token {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, auth)
		}
	}
	if ct := recs[4].Header.Get("Content-Type"); ct != "application/vnd.git-lfs+json" || recs[4].Header.Get("Accept") != ct {
		t.Errorf("batch headers %v", recs[4].Header)
	}
	if ct := recs[7].Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("commit Content-Type %q", ct)
	}
	b := s.Uploads().Batches()
	if len(b) != 1 || b[0].Operation != "upload" || strings.Join(b[0].Transfers, ",") != "basic,multipart" ||
		b[0].HashAlgo != "sha256" || b[0].Ref != "refs/heads/main" || len(b[0].Objects) != 1 ||
		b[0].Objects[0] != (hubtest.BatchObject{OID: oid, Size: 3000}) {
		t.Errorf("batch %+v", b)
	}
	if p := s.Uploads().Parts(); len(p) != 1 || p[0].Part != 0 || p[0].Size != 3000 {
		t.Errorf("PUTs %+v", p)
	}
	if v := s.Uploads().Verified(); len(v) != 1 || v[0] != oid {
		t.Errorf("verified %v", v)
	}
	commits := s.Uploads().Commits()
	wantLines := []string{
		`{"key":"header","value":{"description":"first","summary":"Upload model"}}`,
		fileLine("config.json", []byte(`{"model_type":"llama"}`)),
		lfsLine("model.safetensors", w),
		fileLine("tokenizer/tokenizer.json", []byte(`{"version":"1.0"}`)),
	}
	if len(commits) != 1 || strings.Join(commits[0].Lines, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("commit lines\n got %q\nwant %q", commits, wantLines)
	}
	if res.CommitOID != commits[0].SHA || !strings.HasSuffix(res.CommitURL, "/commit/"+res.CommitOID) || res.RepoURL != s.URL+"/me/tiny" {
		t.Errorf("result commit %s %s, repo %s; server made %s", res.CommitOID, res.CommitURL, res.RepoURL, commits[0].SHA)
	}
	_, files, _ := s.Repo("model", "me/tiny").Files("main")
	if !bytes.Equal(files["model.safetensors"].Data, w) || !files["model.safetensors"].LFS || string(files["config.json"].Data) != `{"model_type":"llama"}` {
		t.Errorf("repository files %v", files)
	}

	// An unchanged rerun makes no commit and sends no content.
	s.ResetRequests()
	res2, err := c.UploadFolder(ctx, dir, UploadOptions{RepoID: "me/tiny"})
	if err != nil {
		t.Fatal(err)
	}
	// It reports the commit that holds the files.
	if res2.Changed || res2.Created || res2.CommitOID != res.CommitOID || res2.CommitURL != res.CommitURL || res2.RepoURL != res.RepoURL {
		t.Errorf("rerun %+v, want the first upload's commit %s", res2, res.CommitOID)
	}
	wantRerun := []string{"POST hub.test /api/repos/create", "GET hub.test /api/models/me/tiny/revision/main", "GET hub.test /api/models/me/tiny/tree/" + res.CommitOID, "POST hub.test /api/models/me/tiny/preupload/main"}
	if got := routes(s.Requests()); strings.Join(got, "\n") != strings.Join(wantRerun, "\n") {
		t.Errorf("rerun requests %q", got)
	}

	// A changed small file and a deleted one: one commit with just those.
	writeFile(t, filepath.Join(dir, "config.json"), []byte(`{"model_type":"qwen2"}`))
	os.RemoveAll(filepath.Join(dir, "tokenizer"))
	res3, err := c.UploadFolder(ctx, dir, UploadOptions{RepoID: "me/tiny", DeleteMissing: true, CommitMessage: "update"})
	if err != nil {
		t.Fatal(err)
	}
	commits = s.Uploads().Commits()
	wantLines = []string{
		`{"key":"header","value":{"description":"","summary":"update"}}`,
		fileLine("config.json", []byte(`{"model_type":"qwen2"}`)),
		`{"key":"deletedFile","value":{"path":"tokenizer/tokenizer.json"}}`,
	}
	if !res3.Changed || res3.Added != 1 || res3.Deleted != 1 || res3.LFSSent != 0 || strings.Join(commits[1].Lines, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("third upload %+v, lines %q", res3, commits[len(commits)-1].Lines)
	}
	_, files, _ = s.Repo("model", "me/tiny").Files("main")
	if _, ok := files["tokenizer/tokenizer.json"]; ok || files[".gitattributes"].Data == nil {
		t.Errorf("after deletion: %v", files)
	}
	if strings.Contains(log.String(), s.Token) {
		t.Errorf("token in the log: %s", log.String())
	}
}

func TestUploadFolderMultipartWithFaults(t *testing.T) {
	s := hubtest.New(t)
	u := s.Uploads()
	u.PartSize = 1000
	dropped := 0
	u.DropPart = func(oid string, part int) int64 {
		if part == 2 && dropped == 0 {
			dropped++
			return 300 // the connection drops 300 bytes into part 2
		}
		return 0
	}
	// A 500 on the first commit attempt, and a 429 on the preupload.
	s.AddFault(hubtest.Fault{Status: http.StatusInternalServerError, Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/commit/") }})
	s.AddFault(hubtest.Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"0"}}, Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/preupload/") }})
	c := uploadClient(s, s.Token, nil)
	w := weights(3500)
	dir := modelDir(t, w)
	res, err := c.UploadFolder(context.Background(), dir, UploadOptions{RepoID: "org/big", Private: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.LFSSent != 1 || dropped != 1 {
		t.Fatalf("result %+v, dropped %d", res, dropped)
	}
	var sizes []string
	for _, p := range u.Parts() {
		sizes = append(sizes, fmt.Sprintf("%d:%d", p.Part, p.Size))
		if p.Authorization != "" {
			t.Errorf("part %d carried Authorization", p.Part)
		}
	}
	if strings.Join(sizes, " ") != "1:1000 2:1000 3:1000 4:500" {
		t.Errorf("parts received %v", sizes)
	}
	if !u.HasObject(upSHA256(w)) {
		t.Error("the multipart object is not complete")
	}
	n := map[string]int{}
	for _, r := range s.Requests() {
		n[r.Method+" "+r.Path]++
	}
	if n["POST /api/models/org/big/commit/main"] != 2 || n["POST /api/models/org/big/preupload/main"] != 2 || n["PUT /lfs/"+upSHA256(w)+"/part/2"] != 2 {
		t.Errorf("request counts %v", n)
	}
	if n["POST /lfs/"+upSHA256(w)+"/complete"] != 1 {
		t.Errorf("completion calls %v", n)
	}
	_, files, _ := s.Repo("model", "org/big").Files("main")
	if !bytes.Equal(files["model.safetensors"].Data, w) {
		t.Errorf("committed content differs (%d bytes)", len(files["model.safetensors"].Data))
	}
	if len(u.Commits()) != 1 {
		t.Errorf("%d commits applied, want 1", len(u.Commits()))
	}

	// The same weights in another repository: the Hub holds the object,
	// so nothing is sent again.
	before := len(u.Parts())
	res2, err := c.UploadFolder(context.Background(), dir, UploadOptions{RepoID: "org/big-copy"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.LFSSent != 0 || res2.LFSHeld != 1 || len(u.Parts()) != before {
		t.Errorf("second repo %+v, parts %d -> %d", res2, before, len(u.Parts()))
	}
}

func TestUploadFolderNewBranch(t *testing.T) {
	s := hubtest.New(t)
	c := uploadClient(s, s.Token, nil)
	dir := modelDir(t, weights(100))
	if _, err := c.UploadFolder(context.Background(), dir, UploadOptions{RepoID: "me/m", Revision: "dev"}); err != nil {
		t.Fatal(err)
	}
	repo := s.Repo("model", "me/m")
	_, dev, ok := repo.Files("dev")
	_, main, _ := repo.Files("main")
	if !ok || len(dev) != 4 || len(main) != 1 {
		t.Errorf("dev has %d files (ok=%v), main %d", len(dev), ok, len(main))
	}
}

func TestUploadFolderAuthErrors(t *testing.T) {
	s := hubtest.New(t)
	s.Uploads().ReadOnlyToken = "hf_readonly_secret"
	dir := modelDir(t, weights(10))
	ctx := context.Background()

	_, err := uploadClient(s, "", nil).UploadFolder(ctx, dir, UploadOptions{RepoID: "me/m"})
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	if len(s.Requests()) != 0 {
		t.Errorf("requests sent without a token: %v", routes(s.Requests()))
	}

	_, err = uploadClient(s, "hf_readonly_secret", nil).UploadFolder(ctx, dir, UploadOptions{RepoID: "me/m"})
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "write token") {
		t.Errorf("read-only token: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "hf_readonly_secret") {
		t.Errorf("error shows the token: %v", err)
	}

	_, err = uploadClient(s, "hf_wrong_secret", nil).UploadFolder(ctx, dir, UploadOptions{RepoID: "me/m"})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "hf_wrong_secret") {
		t.Errorf("wrong token: %v", err)
	}
	if s.Repo("model", "me/m") != nil {
		t.Error("a refused upload created the repository")
	}

	_, err = uploadClient(s, s.Token, nil).UploadFolder(ctx, dir, UploadOptions{RepoID: "bad//id"})
	if err == nil {
		t.Error("a bad repo id was accepted")
	}
}

func TestCommitNDJSONStreamsFiles(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "a b.txt")
	writeFile(t, p, []byte("hello\n"))
	var buf bytes.Buffer
	err := writeCommitNDJSON(&buf, "sum", "desc", "abc123", []commitOp{
		{kind: "file", name: "dir/a \"b\".txt", path: p, size: 6},
		{kind: "deletedFile", name: "old.bin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"header","value":{"description":"desc","parentCommit":"abc123","summary":"sum"}}` + "\n" +
		`{"key":"file","value":{"content":"aGVsbG8K","path":"dir/a \"b\".txt","encoding":"base64"}}` + "\n" +
		`{"key":"deletedFile","value":{"path":"old.bin"}}` + "\n"
	if buf.String() != want {
		t.Errorf("ndjson\n got %s\nwant %s", buf.String(), want)
	}
	// A file that changed size since it was scanned is an error, not a
	// silently different commit.
	err = writeCommitNDJSON(&bytes.Buffer{}, "s", "", "", []commitOp{{kind: "file", name: "x", path: p, size: 99}})
	if err == nil {
		t.Error("size change not detected")
	}
}
