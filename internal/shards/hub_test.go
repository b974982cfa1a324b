package shards

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
	"github.com/kfllm/kfllm/internal/records"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// --tokenizer OWNER/NAME@REV tokenizes with the tokenizer of exactly that
// commit, though main has moved on to another tokenizer, and fetches only
// tokenizer files (a local server speaking the Hub's wire format: the real
// Hub is not reachable here). Without @REV it is main's.
func TestTokenizePinnedRevision(t *testing.T) {
	s := hubtest.New(t)
	repo := s.AddRepo("model", "acme/tok")
	commitOf := func(name string, extra map[string][]byte) string {
		files := map[string][]byte{}
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			b, err := os.ReadFile(filepath.Join(testTokenizerDir(t, name), f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		for k, v := range extra {
			files[k] = v
		}
		return repo.CommitFiles("main", files)
	}
	pinned := commitOf("llama2", map[string][]byte{"model.safetensors": []byte("weights are not fetched")})
	head := commitOf("qwen3", nil)
	c := hub.New(hub.Options{Endpoint: s.URL, HTTPClient: s.HTTPClient()})
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	in := writeRecords(t, records.TaskQA, qaLines(10))
	for _, tc := range []struct{ ref, commit, local string }{
		{"acme/tok@" + pinned, pinned, "llama2"},
		{"acme/tok", head, "qwen3"},
	} {
		s.ResetRequests()
		out := filepath.Join(t.TempDir(), "shards")
		meta, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: tc.ref, OutputDir: out, Hub: c})
		if err != nil {
			t.Fatal(err)
		}
		want, err := tokenizer.Load(testTokenizerDir(t, tc.local))
		if err != nil {
			t.Fatal(err)
		}
		if meta.Tokenizer.SHA256 != want.SHA256() || meta.Tokenizer.Source != tc.ref {
			t.Errorf("%s: tokenizer %s (%s), want %s's %s", tc.ref, meta.Tokenizer.SHA256, meta.Tokenizer.Source, tc.local, want.SHA256())
		}
		if n := len(s.Downloads("model", "acme/tok")); n != 2 {
			t.Errorf("%s: %d files downloaded, want the 2 tokenizer files", tc.ref, n)
		}
		if err := s.DownloadedOnlyAt("model", "acme/tok", tc.commit); err != nil {
			t.Errorf("%s: %v", tc.ref, err)
		}
	}
}
