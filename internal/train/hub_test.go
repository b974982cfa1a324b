package train

import (
	"context"
	"encoding/json"
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
	o.Hub = hub.New(hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.HTTPClient()})
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

// --base-model OWNER/NAME@REV trains from exactly that commit though main
// has moved on (here to a config no loader accepts), downloads every file
// at that commit, and records the revision where transformers and PEFT
// look for it: training_args.json and adapter_config.json.
func TestBaseModelPinnedRevision(t *testing.T) {
	s := hubtest.New(t)
	files := map[string][]byte{}
	for _, n := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		files[n] = mustRead(t, filepath.Join("testdata", "parity", "base", n))
	}
	repo := s.AddRepo("model", "o/tiny")
	pinned := repo.CommitFiles("main", files)
	repo.CommitFiles("main", map[string][]byte{"config.json": []byte(`{"model_type":"not-a-model"}`)})
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	o := smallOptions(fixtureShards(t), filepath.Join(t.TempDir(), "model"), "", 2)
	o.Hub = hub.New(hub.Options{Endpoint: s.URL, HTTPClient: s.HTTPClient()})
	o.BaseModel = "o/tiny"
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("main's broken config trained: the test does not tell revisions apart")
	}
	s.ResetRequests()
	o.BaseModel = "o/tiny@" + pinned
	o.LoRAR, o.LoRAAlpha = 4, 8
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if err := s.DownloadedOnlyAt("model", "o/tiny", pinned); err != nil {
		t.Error(err)
	}
	var args, adapter map[string]any
	readJSON(t, filepath.Join(o.OutputModelDir, "training_args.json"), &args)
	readJSON(t, filepath.Join(o.OutputModelDir, "adapter_config.json"), &adapter)
	if args["base_model"] != "o/tiny" || args["base_model_revision"] != pinned {
		t.Errorf("training_args base_model %v at %v", args["base_model"], args["base_model_revision"])
	}
	if adapter["base_model_name_or_path"] != "o/tiny" || adapter["revision"] != pinned {
		t.Errorf("adapter_config base_model_name_or_path %v at %v", adapter["base_model_name_or_path"], adapter["revision"])
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
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
