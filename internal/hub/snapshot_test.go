package hub

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

func modelRepo(s *hubtest.Server) (string, map[string][]byte) {
	r := s.AddRepo("model", "o/tiny")
	files := map[string][]byte{
		"config.json":           []byte(`{"model_type":"llama"}`),
		"tokenizer.json":        []byte(`{"model":{}}`),
		"model.safetensors":     payload(150_000),
		"onnx/model.onnx":       payload(1000),
		"tokenizer_config.json": []byte(`{}`),
	}
	return r.CommitFiles("main", files), files
}

func resolveCounts(s *hubtest.Server) map[string]int {
	n := map[string]int{}
	for _, q := range s.Requests() {
		if i := strings.Index(q.Path, "/resolve/"); i >= 0 && q.Host == hubtest.HubHost {
			n[q.Path[strings.LastIndex(q.Path, "/")+1:]]++
		}
	}
	return n
}

func TestSnapshotLayoutAndReuse(t *testing.T) {
	s := hubtest.New(t)
	sha, files := modelRepo(s)
	cache := t.TempDir()
	c := hubClient(s, s.Token)
	ctx := context.Background()
	opts := SnapshotOptions{CacheDir: cache, AllowPatterns: []string{"*.json", "*.safetensors"}}
	dir, err := c.Snapshot(ctx, "o/tiny", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--o--tiny")
	if dir != filepath.Join(repoDir, "snapshots", sha) {
		t.Fatalf("dir = %s", dir)
	}
	for _, name := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(files[name]) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "onnx", "model.onnx")); !os.IsNotExist(err) {
		t.Error("a file outside AllowPatterns was fetched")
	}
	// As huggingface_hub: relative symlinks into blobs/ named by etag.
	target, err := os.Readlink(filepath.Join(dir, "model.safetensors"))
	if err != nil || target != filepath.Join("..", "..", "blobs", sha256hex(files["model.safetensors"])) {
		t.Errorf("link = %q, %v", target, err)
	}
	target, _ = os.Readlink(filepath.Join(dir, "config.json"))
	if filepath.Base(target) != hubtest.GitBlobOID(files["config.json"]) {
		t.Errorf("config.json links to %q", target)
	}
	if ref, _ := os.ReadFile(filepath.Join(repoDir, "refs", "main")); string(ref) != sha {
		t.Errorf("refs/main = %q", ref)
	}
	// Every resolve request carried the pinned commit, not "main".
	for _, q := range s.Requests() {
		if strings.Contains(q.Path, "/resolve/") && !strings.Contains(q.Path, "/resolve/"+sha+"/") {
			t.Errorf("unpinned download %s", q.Path)
		}
	}

	// Again by branch: only the revision lookup.
	s.ResetRequests()
	if _, err := c.Snapshot(ctx, "o/tiny", "main", opts); err != nil {
		t.Fatal(err)
	}
	if reqs := s.Requests(); len(reqs) != 1 || !strings.Contains(reqs[0].Path, "/revision/main") {
		t.Errorf("reuse by branch made %d requests", len(reqs))
	}
	// By commit sha: no request at all.
	s.ResetRequests()
	if _, err := c.Snapshot(ctx, "o/tiny", sha, opts); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("reuse by sha made %d requests", n)
	}
	// Offline: the Hub is gone, the cached snapshot of main still serves.
	offline := New(Options{Endpoint: "http://127.0.0.1:1", MaxRetries: -1})
	if got, err := offline.Snapshot(ctx, "o/tiny", "main", opts); err != nil || got != dir {
		t.Errorf("offline snapshot = %q, %v", got, err)
	}
}

func TestSnapshotConcurrentFetchesEachBlobOnce(t *testing.T) {
	s := hubtest.New(t)
	sha, files := modelRepo(s)
	cache := t.TempDir()
	var wg sync.WaitGroup
	dirs := make([]string, 4)
	errs := make([]error, 4)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = hubClient(s, "").Snapshot(context.Background(), "o/tiny", sha, SnapshotOptions{CacheDir: cache})
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("snapshot %d: %q, %v", i, dirs[i], errs[i])
		}
	}
	for name, n := range resolveCounts(s) {
		if n != 1 {
			t.Errorf("%s downloaded %d times", name, n)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dirs[0], "onnx", "model.onnx")); string(got) != string(files["onnx/model.onnx"]) {
		t.Error("nested file differs")
	}
}

func TestSnapshotResumesPartialBlob(t *testing.T) {
	s := hubtest.New(t)
	sha, files := modelRepo(s)
	cache := t.TempDir()
	w := files["model.safetensors"]
	blob := filepath.Join(cache, "models--o--tiny", "blobs", sha256hex(w))
	os.MkdirAll(filepath.Dir(blob), 0o755)
	os.WriteFile(blob+".incomplete", w[:70_000], 0o644) // an earlier run's leftovers
	dir, err := hubClient(s, "").Snapshot(context.Background(), "o/tiny", sha, SnapshotOptions{CacheDir: cache, AllowPatterns: []string{"model.safetensors"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); string(got) != string(w) {
		t.Fatal("resumed blob differs")
	}
	for _, q := range s.Requests() {
		if q.Host == hubtest.CDNHost && q.Header.Get("Range") != "bytes=70000-" {
			t.Errorf("CDN request Range = %q", q.Header.Get("Range"))
		}
	}
}

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "sub/dir/x.json", true}, // '*' crosses '/' as in fnmatch
		{"tokenizer*", "tokenizer_config.json", true},
		{"model-0000[1-2]-of-00002.safetensors", "model-00002-of-00002.safetensors", true},
		{"*.safetensors", "model.bin", false},
		{"onnx/", "onnx/model.onnx", true},
	} {
		if got := matchAny([]string{tc.pat}, tc.name); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.pat, tc.name, got)
		}
	}
}

// TestSnapshotChildProcess is the body of TestSnapshotTwoProcesses's child
// processes; run alone it skips.
func TestSnapshotChildProcess(t *testing.T) {
	if os.Getenv("HUB_SNAPSHOT_CHILD") == "" {
		t.Skip("helper process of TestSnapshotTwoProcesses")
	}
	c := New(Options{Endpoint: os.Getenv("HUB_SNAPSHOT_ENDPOINT"), HTTPClient: hubtest.LoopbackClient(), MinRetryWait: time.Millisecond})
	dir, err := c.Snapshot(context.Background(), "o/tiny", os.Getenv("HUB_SNAPSHOT_REV"), SnapshotOptions{CacheDir: os.Getenv("HUB_SNAPSHOT_CACHE")})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("SNAPSHOT", dir)
}

// Two processes fetch the same snapshot into one cache at once: each blob
// is downloaded once (the other process waits on its lock file and reuses
// it) and both end with the same complete directory.
func TestSnapshotTwoProcesses(t *testing.T) {
	s := hubtest.New(t)
	sha, files := modelRepo(s)
	// Slow the first CDN answers so the two processes overlap.
	s.AddFault(hubtest.Fault{Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/repos/") }, Delay: 300 * time.Millisecond, Times: 2})
	cache := t.TempDir()
	outs := make([]bytes.Buffer, 2)
	cmds := make([]*exec.Cmd, 2)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestSnapshotChildProcess$", "-test.v")
		cmds[i].Env = append(os.Environ(), "HUB_SNAPSHOT_CHILD=1", "HUB_SNAPSHOT_ENDPOINT="+s.URL, "HUB_SNAPSHOT_REV="+sha, "HUB_SNAPSHOT_CACHE="+cache)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
	}
	dir := filepath.Join(cache, "models--o--tiny", "snapshots", sha)
	for i := range outs {
		if !strings.Contains(outs[i].String(), "SNAPSHOT "+dir) {
			t.Errorf("child %d output:\n%s", i, outs[i].String())
		}
	}
	for name, n := range resolveCounts(s) {
		if n != 1 {
			t.Errorf("%s downloaded %d times", name, n)
		}
	}
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
