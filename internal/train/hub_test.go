package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
)

// --base-model OWNER/NAME downloads the model through the Hub client (a
// local server speaking the Hub's wire format: the real Hub is not
// reachable here) into the Hub cache and trains from it.
func TestBaseModelFromHub(t *testing.T) {
	s := hubtest.New(t)
	files := map[string][]byte{}
	for _, n := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		files[n] = mustRead(t, filepath.Join("testdata", "parity", "base", n))
	}
	files["onnx/model.onnx"] = []byte("not fetched")
	s.AddRepo("model", "o/tiny").CommitFiles("main", files)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	out := filepath.Join(t.TempDir(), "model")
	o := smallOptions(fixtureShards(t), out, "", 2)
	o.BaseModel = "o/tiny"
	o.Hub = hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.HTTPClient()}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	o.BaseModel = "o/missing"
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("a missing Hub repo trained")
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{},
		{InputDataset: "d", BaseModel: "b", OutputModelDir: "o", LRScheduler: "step"},
		{InputDataset: "d", BaseModel: "b", OutputModelDir: "o", MergeLoRA: true},
		{InputDataset: "d", BaseModel: "b", OutputModelDir: "o", BatchSize: -1},
	} {
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrOptions) {
			t.Errorf("Run(%+v) = %v, want ErrOptions", o, err)
		}
	}
}

// An output dir holding other files is refused, not wiped.
func TestOutputDirOfOtherFilesKept(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	o := smallOptions(fixtureShards(t), out, "", 1)
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrOptions) {
		t.Fatalf("Run = %v, want ErrOptions", err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || string(b) != "mine" {
		t.Fatal("a file in the output dir was lost")
	}
	os.Remove(filepath.Join(out, "notes.txt"))
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("an empty output dir: %v", err)
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("rerun over its own output: %v", err)
	}
}
