package rehearse

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/kfp/local"
)

// TestRehearsalTiny is make rehearse at its smallest: the compiled pipeline
// (internal/kfp/testdata/kfllm-finetune.yaml, what `pipeline compile`
// writes) task by task in the CPU images under runc, on a random 2-layer
// Llama (internal/gguf/testdata/llama_tiny.gguf), 16 training records and
// one step, then serving and the UI from the manifests and one question
// through the UI; once as the KFP 2.14 launcher lays out a pod, once as KFP
// 2.15 and later do (the executor output in the task root).
//
// It needs root, runc and the CPU images in out/rehearse/images (or
// KFLLM_REHEARSE_IMAGES). make test as root installs runc and builds them
// first (make rehearse-images); not root, it skips and says so. Under CI
// (CI=true) a root run without runc or the images fails instead of skipping:
// make test should have made both.
func TestRehearsalTiny(t *testing.T) {
	images := os.Getenv("KFLLM_REHEARSE_IMAGES")
	if images == "" {
		images = filepath.Join("..", "..", "out", "rehearse", "images")
	}
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("not root (euid %d): runc runs containers as root only, so make test built no CPU images; run make test or make rehearse as root", euid)
	}
	missing := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join(images, "fetch", "index.json")); err != nil {
		missing(fmt.Sprintf("no CPU images at %s: make test builds them as root (make rehearse-images), or set KFLLM_REHEARSE_IMAGES: %v", images, err))
	}
	if _, err := exec.LookPath("runc"); err != nil {
		missing(fmt.Sprintf("runc is not installed: make test installs it as root (scripts/setup-runc.sh): %v", err))
	}
	// The random tiny Llama has 128 positions; the demo's records take
	// about 230 of its tokens. A random model generalises to none of them
	// anyway: raise the limit rather than shorten the data.
	work := filepath.Join(t.TempDir(), "work")
	base := filepath.Join(work, "base-model")
	if err := gguf.ConvertLlama(context.Background(), filepath.Join("..", "gguf", "testdata", "llama_tiny.gguf"), base, gguf.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	setPositions(t, filepath.Join(base, "config.json"), 512)
	for _, layout := range []struct {
		name     string
		launcher local.Launcher
	}{{"kfp-2.14", local.Launcher{}}, {"kfp-2.15", local.Launcher{ExecutorOutputInTaskRoot: true}}} {
		t.Run(layout.name, func(t *testing.T) { rehearseTiny(t, images, work, layout.launcher) })
	}
}

// rehearseTiny runs the tiny rehearsal with the given launcher layout:
// finetune's metrics and upload's commit must arrive where that KFP
// version's launcher reads them (Run checks both).
func rehearseTiny(t *testing.T, images, work string, launcher local.Launcher) {
	var log strings.Builder
	res, err := Run(context.Background(), Options{
		Launcher:  launcher,
		Images:    images,
		Names:     []string{"upload"},
		Work:      work,
		Rootfs:    filepath.Join("..", "..", "out", "rehearse", "rootfs"),
		Pipeline:  filepath.Join("..", "kfp", "testdata", "kfllm-finetune.yaml"),
		Manifests: filepath.Join("..", "..", "manifests"),
		Train:     16, Eval: 2, MaxSteps: 1,
		Params: map[string]string{"max_length": "320"},
		Log:    &log,
	})
	if err != nil {
		t.Fatalf("rehearsal: %v\n%s", err, log.String())
	}
	if res.Metrics.Steps != 1 || res.Metrics.QA.After.N != 2 {
		t.Errorf("finetune's metrics %+v, want 1 step and 2 held-out questions", res.Metrics)
	}
	for _, want := range []string{
		"[fetch] fetch: 16 records",
		"/minio/mlpipeline/v2/artifacts/kfllm-finetune/rehearse/finetune/",
		"<== upload succeeded",
		"kserve-container readinessProbe GET http://127.0.0.1:",
		"runs as uid 65532, root ro",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the rehearsal's log lacks %q:\n%s", want, log.String())
		}
	}
	t.Logf("question %q -> answer %q", res.Question, res.Answer)
}

// setPositions sets a model config's max_position_embeddings.
func setPositions(t *testing.T, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["max_position_embeddings"] = n
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
