package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

// --model-id loads through internal/hub, here from hubtest's fake Hub on
// loopback (the real Hub is not reachable from the test machines).
func TestLoadFromHub(t *testing.T) {
	files := tinyModelFiles(t)
	s := hubtest.New(t)
	repo := s.AddRepo("model", "kfllm/tiny")
	repo.SetPrivate(true)
	sha := repo.CommitFiles("main", files)

	opts := engine.Options{ModelID: "kfllm/tiny@main", CacheDir: t.TempDir(), Device: "cpu", DType: "float32",
		Hub: hub.New(hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.HTTPClient()})}
	b, err := engine.Load(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if b.Info.ID != "kfllm/tiny" || b.Info.Revision != sha {
		t.Errorf("info %+v, want kfllm/tiny at %s", b.Info, sha)
	}
	if _, err := b.LLM.GenerateContent(context.Background(), []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, "Question: what?")},
		llms.WithMaxTokens(4)); err != nil {
		t.Fatal(err)
	}

	// A wrong token fails the load, without the token in the error.
	opts.Hub = hub.New(hub.Options{Endpoint: s.URL, Token: "hf_wrong_secret", HTTPClient: s.HTTPClient()})
	opts.CacheDir = t.TempDir()
	_, err = engine.Load(context.Background(), opts)
	if err == nil || strings.Contains(err.Error(), "hf_wrong_secret") {
		t.Errorf("wrong token: %v", err)
	}
	// Neither a directory nor an id.
	if _, err := engine.Load(context.Background(), engine.Options{}); err == nil {
		t.Error("no model: no error")
	}
	if _, err := engine.Load(context.Background(), engine.Options{ModelDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty model dir: %v", err)
	}
}

// --model-id OWNER/NAME@REV serves exactly that commit though main has
// moved on (here to a config no loader accepts), with every file
// downloaded at that commit, and reports it as the model's revision.
func TestLoadPinnedRevision(t *testing.T) {
	files := tinyModelFiles(t)
	s := hubtest.New(t)
	repo := s.AddRepo("model", "kfllm/tiny")
	pinned := repo.CommitFiles("main", files)
	repo.CommitFiles("main", map[string][]byte{"config.json": []byte(`{"model_type":"not-a-model"}`)})
	c := hub.New(hub.Options{Endpoint: s.URL, HTTPClient: s.HTTPClient()})
	opts := engine.Options{ModelID: "kfllm/tiny", Hub: c, CacheDir: t.TempDir(), Device: "cpu", DType: "float32"}
	if b, err := engine.Load(context.Background(), opts); err == nil {
		b.Close(context.Background())
		t.Fatal("main's broken config loaded: the test does not tell revisions apart")
	}
	s.ResetRequests()
	opts.ModelID = "kfllm/tiny@" + pinned
	b, err := engine.Load(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if b.Info.ID != "kfllm/tiny" || b.Info.Revision != pinned {
		t.Errorf("info %+v, want kfllm/tiny at %s", b.Info, pinned)
	}
	if err := s.DownloadedOnlyAt("model", "kfllm/tiny", pinned); err != nil {
		t.Error(err)
	}
}

// tinyModelFiles are the files of writeTinyModel's model, by name.
func tinyModelFiles(t *testing.T) map[string][]byte {
	dir := t.TempDir()
	writeTinyModel(t, dir, 128)
	files := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}
