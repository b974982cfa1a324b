package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

func TestParseRef(t *testing.T) {
	local := t.TempDir()
	for in, want := range map[string]Ref{
		local:                            {Dir: local},
		"Qwen/Qwen3-0.6B":                {Repo: "Qwen/Qwen3-0.6B"},
		"owner/name@v1.0":                {Repo: "owner/name", Revision: "v1.0"},
		"owner/name@refs/pr/3":           {Repo: "owner/name", Revision: "refs/pr/3"},
		"gpt2":                           {Repo: "gpt2"},
		"o/n@" + strings.Repeat("a", 40): {Repo: "o/n", Revision: strings.Repeat("a", 40)},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if err == nil && got.String() != in {
			t.Errorf("ParseRef(%q).String() = %q", in, got.String())
		}
	}
	file := filepath.Join(local, "config.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	for _, in := range []string{"", "a/b/c", "o/n@", "o/../x", "o--x/n", "/n", "o/n.", "o /n", "./no/such/dir", file} {
		if r, err := ParseRef(in); err == nil {
			t.Errorf("ParseRef(%q) = %+v, accepted", in, r)
		}
	}
	if _, err := ParseRef(filepath.Join(local, "nope", "deeper")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("missing path: %v", err)
	}
}

// A pinned reference resolves to exactly that commit, though main has
// moved on; without a revision it is main's head; the file list leaves out
// other weight formats, and TokenizerFiles leaves out the weights.
func TestRefResolvePinned(t *testing.T) {
	s := hubtest.New(t)
	r := s.AddRepo("model", "o/tiny")
	old := r.CommitFiles("main", map[string][]byte{"config.json": []byte(`{"v":1}`), "model.safetensors": payload(1000),
		"onnx/model.onnx": payload(10), "tokenizer.json": []byte(`{"v":1}`)})
	head := r.CommitFiles("main", map[string][]byte{"config.json": []byte(`{"v":2}`), "tokenizer.json": []byte(`{"v":2}`)})
	c := hubClient(s, "")
	cache := t.TempDir()
	for _, tc := range []struct {
		ref, commit, v string
	}{{"o/tiny@" + old, old, "1"}, {"o/tiny", head, "2"}, {"o/tiny@main", head, "2"}} {
		ref, err := ParseRef(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		dir, commit, err := ref.Resolve(context.Background(), c, SnapshotOptions{CacheDir: cache})
		if err != nil || commit != tc.commit || filepath.Base(dir) != tc.commit {
			t.Fatalf("Resolve(%s) = %q, %q, %v; want commit %s", tc.ref, dir, commit, err, tc.commit)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(b) != `{"v":`+tc.v+`}` {
			t.Errorf("%s: config.json %s", tc.ref, b)
		}
		if _, err := os.Stat(filepath.Join(dir, "onnx", "model.onnx")); !os.IsNotExist(err) {
			t.Error("ModelFiles let an onnx file through")
		}
	}
	ref, _ := ParseRef("o/tiny@" + old)
	dir, _, err := ref.Resolve(context.Background(), c, SnapshotOptions{CacheDir: t.TempDir(), AllowPatterns: TokenizerFiles})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); !os.IsNotExist(err) {
		t.Error("TokenizerFiles fetched the weights")
	}
	if _, _, err := ref.Resolve(context.Background(), nil, SnapshotOptions{}); !errors.Is(err, ErrNoClient) {
		t.Errorf("no client: %v", err)
	}
	local := Ref{Dir: t.TempDir()}
	if dir, commit, err := local.Resolve(context.Background(), nil, SnapshotOptions{}); err != nil || dir != local.Dir || commit != "" {
		t.Errorf("local: %q %q %v", dir, commit, err)
	}
}
