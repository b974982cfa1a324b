package gitremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// gitServer is a real git smart-HTTP server: git's own git-http-backend run
// through net/http/cgi, behind HTTP basic auth checked here, with an
// optional git-lfs batch endpoint (basic transfer) beside it that keeps the
// objects it receives.
type gitServer struct {
	*httptest.Server
	root       string
	user, pass string
	lfs        bool

	mu       sync.Mutex
	objs     map[string][]byte // oid -> content
	puts     int
	batch    []batchRequest
	fail500s int // PUTs to answer 500 before taking one
	verified []string
}

func newGitServer(t *testing.T, lfs bool) *gitServer {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git not installed: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	s := &gitServer{root: t.TempDir(), user: "alice", pass: "s3cret", lfs: lfs, objs: map[string][]byte{}}
	run(t, "git", "init", "-q", "--bare", "-b", "main", filepath.Join(s.root, "model.git"))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case s.lfs && r.URL.Path == "/model.git/info/lfs/objects/batch":
			s.serveBatch(w, r)
		case s.lfs && strings.HasPrefix(r.URL.Path, "/lfs-store/"):
			s.servePut(w, r)
		case s.lfs && r.URL.Path == "/model.git/info/lfs/verify":
			var o batchObject
			json.NewDecoder(r.Body).Decode(&o)
			s.mu.Lock()
			defer s.mu.Unlock()
			if int64(len(s.objs[o.OID])) != o.Size || s.objs[o.OID] == nil {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
			s.verified = append(s.verified, o.OID)
		default:
			h := &cgi.Handler{Path: backend, Stderr: io.Discard, Env: []string{
				"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + u,
			}}
			h.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gitServer) serveBatch(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Accept") != lfsMediaType || r.Header.Get("Content-Type") != lfsMediaType {
		http.Error(w, "bad media type", http.StatusNotAcceptable)
		return
	}
	var req batchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batch = append(s.batch, req)
	type obj struct {
		OID     string                 `json:"oid"`
		Size    int64                  `json:"size"`
		Actions map[string]batchAction `json:"actions,omitempty"`
	}
	var out struct {
		Transfer string `json:"transfer"`
		Objects  []obj  `json:"objects"`
	}
	out.Transfer = "basic"
	for _, o := range req.Objects {
		ob := obj{OID: o.OID, Size: o.Size}
		if _, ok := s.objs[o.OID]; !ok {
			ob.Actions = map[string]batchAction{
				"upload": {Href: s.URL + "/lfs-store/" + o.OID, Header: map[string]string{"X-Upload-Token": "t-" + o.OID[:8]}},
				"verify": {Href: s.URL + "/model.git/info/lfs/verify"},
			}
		}
		out.Objects = append(out.Objects, ob)
	}
	w.Header().Set("Content-Type", lfsMediaType)
	json.NewEncoder(w).Encode(out)
}

func (s *gitServer) servePut(w http.ResponseWriter, r *http.Request) {
	oid := strings.TrimPrefix(r.URL.Path, "/lfs-store/")
	if r.Method != http.MethodPut || r.Header.Get("X-Upload-Token") != "t-"+oid[:8] {
		http.Error(w, "bad upload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.fail500s > 0 {
		s.fail500s--
		s.mu.Unlock()
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	s.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != oid {
		http.Error(w, "oid mismatch", http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	s.objs[oid] = b
	s.puts++
	s.mu.Unlock()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// modelDir writes a small model directory with one "large" file.
func modelDir(t *testing.T, big []byte) string {
	t.Helper()
	d := t.TempDir()
	write(t, filepath.Join(d, "config.json"), []byte(`{"model_type":"llama"}`))
	write(t, filepath.Join(d, "tokenizer", "tokenizer.json"), []byte(`{"version":"1.0"}`))
	write(t, filepath.Join(d, "model.safetensors"), big)
	return d
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// treeFiles reads the branch head of a bare repository on disk.
func treeFiles(t *testing.T, bare, branch string) (map[string]string, *object.Commit) {
	t.Helper()
	repo, err := git.PlainOpen(bare)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatalf("branch %s: %v", branch, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		t.Fatal(err)
	}
	tree, _ := c.Tree()
	out := map[string]string{}
	tree.Files().ForEach(func(f *object.File) error {
		s, _ := f.Contents()
		out[f.Name] = s
		return nil
	})
	return out, c
}

func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func TestPushHTTPWithLFS(t *testing.T) {
	retryWait = time.Millisecond
	s := newGitServer(t, true)
	s.fail500s = 1                                // the first PUT meets a 500 and is retried
	big := bytes.Repeat([]byte("weights!"), 1000) // 8000 bytes, above the threshold
	dir := modelDir(t, big)
	opts := Options{Remote: s.URL + "/model.git", Username: "alice", Password: "s3cret", LFSThreshold: 4096, Message: "first", Now: fixedNow}
	res, err := Push(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.LFSUploaded != 1 || res.Files != 4 {
		t.Fatalf("result %+v, want changed, 1 LFS upload, 4 files", res)
	}
	sum := sha256.Sum256(big)
	oid := hex.EncodeToString(sum[:])
	if !bytes.Equal(s.objs[oid], big) {
		t.Fatalf("LFS server holds %d bytes for %s, want the file's %d", len(s.objs[oid]), oid, len(big))
	}
	if len(s.verified) != 1 || s.verified[0] != oid || s.fail500s != 0 {
		t.Fatalf("verified %v, 500s left %d", s.verified, s.fail500s)
	}
	if got := s.batch[0]; got.Operation != "upload" || got.HashAlgo != "sha256" || got.Ref == nil || got.Ref.Name != "refs/heads/main" || len(got.Objects) != 1 || got.Objects[0].Size != int64(len(big)) {
		t.Fatalf("batch request %+v", got)
	}
	bare := filepath.Join(s.root, "model.git")
	files, c := treeFiles(t, bare, "main")
	wantPtr := "version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\nsize 8000\n"
	if files["model.safetensors"] != wantPtr {
		t.Errorf("model.safetensors in git = %q, want pointer %q", files["model.safetensors"], wantPtr)
	}
	if files["config.json"] != `{"model_type":"llama"}` || files["tokenizer/tokenizer.json"] != `{"version":"1.0"}` {
		t.Errorf("regular files = %v", files)
	}
	if files[".gitattributes"] != "model.safetensors filter=lfs diff=lfs merge=lfs -text\n" {
		t.Errorf(".gitattributes = %q", files[".gitattributes"])
	}
	if c.Message != "first" || c.NumParents() != 0 {
		t.Errorf("commit %q with %d parents", c.Message, c.NumParents())
	}
	run(t, "git", "-C", bare, "fsck", "--strict")
	// Real git reads what go-git pushed, and git-lfs's pointer check agrees.
	if out := run(t, "git", "-C", bare, "show", "main:model.safetensors"); out != wantPtr {
		t.Errorf("git show = %q", out)
	}

	// Unchanged rerun: no new commit, the LFS object is not sent again.
	res2, err := Push(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || res2.Commit != res.Commit || s.puts != 1 {
		t.Fatalf("rerun %+v (first %s), %d PUTs; want unchanged and 1 PUT", res2, res.Commit, s.puts)
	}

	// A changed small file: a second commit on top; the big object is held.
	write(t, filepath.Join(dir, "metrics.json"), []byte(`{"eval_loss":1.5}`))
	res3, err := Push(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	files, c = treeFiles(t, bare, "main")
	if !res3.Changed || c.NumParents() != 1 || c.ParentHashes[0].String() != res.Commit || files["metrics.json"] == "" {
		t.Fatalf("third push %+v: parents %v, files %v", res3, c.ParentHashes, files)
	}
	if res3.LFSUploaded != 0 || s.puts != 1 {
		t.Fatalf("third push re-sent the LFS object: %+v, %d PUTs", res3, s.puts)
	}
}

func TestPushHTTPWrongPassword(t *testing.T) {
	s := newGitServer(t, true)
	dir := modelDir(t, []byte("small"))
	_, err := Push(context.Background(), dir, Options{Remote: s.URL + "/model.git", Username: "alice", Password: "wrong-pass-123"})
	if err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "GIT_USERNAME") && !strings.Contains(err.Error(), "refused") {
		t.Errorf("error gives no hint: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pass-123") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestPushHTTPNoLFSRefusesLargeFile(t *testing.T) {
	s := newGitServer(t, false)
	dir := modelDir(t, bytes.Repeat([]byte{1}, 5000))
	_, err := Push(context.Background(), dir, Options{Remote: s.URL + "/model.git", Username: "alice", Password: "s3cret", LFSThreshold: 4096})
	if !errors.Is(err, ErrLFSUnavailable) || !strings.Contains(err.Error(), "model.safetensors (5000 bytes)") {
		t.Fatalf("err = %v, want ErrLFSUnavailable naming the file", err)
	}
	if out := run(t, "git", "-C", filepath.Join(s.root, "model.git"), "for-each-ref"); out != "" {
		t.Errorf("refused push still created refs: %q", out)
	}
	// Without large files the same remote takes the push.
	if _, err := Push(context.Background(), dir, Options{Remote: s.URL + "/model.git", Username: "alice", Password: "s3cret", LFSThreshold: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	files, _ := treeFiles(t, filepath.Join(s.root, "model.git"), "main")
	if len(files["model.safetensors"]) != 5000 {
		t.Errorf("model.safetensors stored as %d bytes", len(files["model.safetensors"]))
	}
}

func TestPushLocalBare(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "repo.git")
	if _, err := git.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("abc"), 2000)
	dir := modelDir(t, big)
	os.Chmod(filepath.Join(dir, "config.json"), 0o755)
	opts := Options{Remote: bare, LFSThreshold: 1000, Branch: "release", Now: fixedNow}
	res, err := Push(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	oid := hex.EncodeToString(sum[:])
	stored, err := os.ReadFile(filepath.Join(bare, "lfs", "objects", oid[:2], oid[2:4], oid))
	if err != nil || !bytes.Equal(stored, big) {
		t.Fatalf("lfs store: %v (%d bytes)", err, len(stored))
	}
	files, _ := treeFiles(t, bare, "release")
	if !strings.HasPrefix(files["model.safetensors"], PointerVersion) {
		t.Errorf("not a pointer: %q", files["model.safetensors"])
	}
	if out := run(t, "git", "-C", bare, "ls-tree", "release", "config.json"); !strings.HasPrefix(out, "100755 ") {
		t.Errorf("executable bit lost: %q", out)
	}
	run(t, "git", "-C", bare, "fsck", "--strict")
	res2, err := Push(context.Background(), dir, Options{Remote: "file://" + bare, LFSThreshold: 1000, Branch: "release"})
	if err != nil || res2.Changed || res2.Commit != res.Commit || res2.LFSSkipped != 1 {
		t.Fatalf("rerun: %+v, %v; want unchanged at %s with the LFS object skipped", res2, err, res.Commit)
	}
}

func TestPushLocalNotARepo(t *testing.T) {
	dir := modelDir(t, []byte("x"))
	_, err := Push(context.Background(), dir, Options{Remote: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "git init --bare") {
		t.Fatalf("err = %v, want a hint to create the bare repository", err)
	}
}

func TestPushLocalCreatesMissingRepo(t *testing.T) {
	dir := modelDir(t, []byte("x"))
	bare := filepath.Join(t.TempDir(), "new", "model.git")
	res, err := Push(context.Background(), dir, Options{Remote: bare})
	if err != nil || !res.Changed {
		t.Fatalf("push to a missing path: %+v, %v", res, err)
	}
	// Real git clones it, and the checkout has the files.
	work := filepath.Join(t.TempDir(), "clone")
	run(t, "git", "clone", "-q", bare, work)
	if b, err := os.ReadFile(filepath.Join(work, "config.json")); err != nil || string(b) != `{"model_type":"llama"}` {
		t.Fatalf("clone: %q, %v", b, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://bob:tok@host/x.git": "https://xxxxx@host/x.git",
		"https://host/x.git":         "https://host/x.git",
		"https://host/a@b":           "https://host/a@b",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
