package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/dataset"
	"github.com/kfllm/kfllm/internal/gitremote"
)

// TestDemoEndToEnd runs a shortened demo with the real binaries, built here
// from this tree: every stage runs (pipeline local from the compiled YAML,
// serving and the UI as processes) and each stage's artifacts are checked.
// The model trains for a few steps only, so the answer's content is not
// judged; that it comes back through the V1 route is.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command and trains a model: not in -short")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../components/...", "../../pipeline", "../../serving", "../../ui")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// While the demo serves, the UI's browser test runs against the real
	// serving process and UI on the model the pipeline just trained.
	var browser []byte
	whileServing := func(ctx context.Context, s *Summary) error {
		cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-run", "^TestBrowserWithServingProcess$", "../../ui/server")
		cmd.Env = append(os.Environ(), "KFLLM_SERVING_URL="+s.APIURL, "KFLLM_SERVING_MODEL=kfllm-demo")
		var err error
		if browser, err = cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("browser test: %w\n%s", err, browser)
		}
		return nil
	}
	sum, err := Run(ctx, Options{Dir: dir, BinDir: bin, Train: 300, Eval: 12, MaxSteps: 8, Exit: true, Out: &out, WhileServing: whileServing})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}

	if !strings.Contains(string(browser), "--- PASS: TestBrowserWithServingProcess") {
		t.Errorf("the browser test against the serving process did not pass:\n%s", browser)
	}

	// Every stage ran, in order.
	want := []string{"make the dataset", "make the base model", "compile the pipeline", "run the pipeline",
		"read the evaluation", "check out the uploaded model", "start serving and the UI", "ask a question"}
	if len(sum.Stages) != len(want) {
		t.Fatalf("stages %v, want %v", sum.Stages, want)
	}
	for i, s := range sum.Stages {
		if s.Name != want[i] {
			t.Errorf("stage %d is %q, want %q", i, s.Name, want[i])
		}
	}

	// fetch -> records, tokenize -> shards, finetune -> model dir, upload -> repo.
	run := filepath.Join(dir, "runs", runID)
	recs, err := dataset.ReadMetadata(filepath.Join(run, "fetch", "output_dataset"))
	if err != nil {
		t.Fatalf("fetch output: %v", err)
	}
	if recs.RowsWritten != 300 || recs.Task != "qa" {
		t.Errorf("fetch wrote %d %s records, want 300 qa", recs.RowsWritten, recs.Task)
	}
	for _, f := range []string{"train.safetensors", "eval.safetensors", "metadata.json", "tokenizer/tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(run, "tokenize", "output_dataset", f)); err != nil {
			t.Errorf("tokenize output: %v", err)
		}
	}
	model := filepath.Join(run, "finetune", "output_model_dir")
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "training_args.json", "metrics.json", "training_log.jsonl", "README.md"} {
		if _, err := os.Stat(filepath.Join(model, f)); err != nil {
			t.Errorf("finetune output: %v", err)
		}
	}
	for _, f := range []string{"metrics", "report", "eval_table"} {
		if st, err := os.Stat(filepath.Join(run, "finetune", f)); err != nil || st.Size() == 0 {
			t.Errorf("finetune KFP artifact %s missing or empty: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(run, "finetune-report.html")); err != nil {
		t.Errorf("pipeline local wrote no HTML report: %v", err)
	}

	// The metrics carry the held-out evaluation before and after.
	m := sum.Metrics
	if m.Steps != 8 || m.QA.Before.N != 12 || m.QA.After.N != 12 {
		t.Errorf("metrics: %d steps, QA on %d/%d questions; want 8 steps, 12/12", m.Steps, m.QA.Before.N, m.QA.After.N)
	}
	var kfpMetrics struct {
		Metrics []struct {
			Name  string  `json:"name"`
			Value float64 `json:"numberValue"`
		} `json:"metrics"`
	}
	b, err := os.ReadFile(filepath.Join(run, "finetune", "metrics"))
	if err != nil || json.Unmarshal(b, &kfpMetrics) != nil || len(kfpMetrics.Metrics) == 0 {
		t.Errorf("KFP metrics artifact unreadable: %v %s", err, b)
	}

	// What serving loaded is what upload pushed: the repo's head holds the
	// trained weights.
	check := filepath.Join(t.TempDir(), "check")
	if _, err := gitremote.Checkout(ctx, filepath.Join(dir, "hub", "kfllm-demo.git"), "main", check); err != nil {
		t.Fatal(err)
	}
	pushed, _ := os.ReadFile(filepath.Join(check, "model.safetensors"))
	trained, _ := os.ReadFile(filepath.Join(model, "model.safetensors"))
	if len(pushed) == 0 || !bytes.Equal(pushed, trained) {
		t.Errorf("the repo's model.safetensors (%d bytes) is not the trained one (%d bytes)", len(pushed), len(trained))
	}

	// The sample question went through the V1 route and the answer printed.
	if sum.APIURL == "" || sum.UIURL == "" {
		t.Errorf("no API or UI address: %+v", sum)
	}
	if !strings.Contains(out.String(), "answer:") || !strings.Contains(out.String(), "exact match") {
		t.Errorf("the demo's output lacks the answer or the evaluation table:\n%s", out.String())
	}
}
