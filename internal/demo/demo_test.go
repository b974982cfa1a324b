package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/gitremote"
	"github.com/kfllm/kfllm/internal/records"
)

// TestDemoEndToEnd runs a shortened demo with the real binaries, built here
// from this tree: every stage runs (pipeline local from the compiled YAML,
// serving and the UI as processes) and each stage's artifacts are checked.
// The model trains for two steps only, so the answer's content is not
// judged; that it comes back through the V1 route is. The full demo's
// numbers (exact match, duration) are measured by bench/demo.sh.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command and trains a model: not in -short")
	}
	base := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(base); err != nil {
		t.Fatalf("the demo's base model is missing (make setup fetches it into $KFLLM_CACHE): %v", err)
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
	sum, err := Run(ctx, Options{Dir: dir, BinDir: bin, BaseGGUF: base, Train: 300, Eval: 4, MaxSteps: 2, Exit: true, Out: &out, WhileServing: whileServing})
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
	recs, err := records.ReadMetadata(filepath.Join(run, "fetch", "output_dataset"))
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
	// The pipeline's default is a LoRA adapter, unmerged: the adapter alone,
	// no copy of the unchanged base weights.
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "training_args.json", "metrics.json", "training_log.jsonl"} {
		if _, err := os.Stat(filepath.Join(model, f)); err != nil {
			t.Errorf("finetune output: %v", err)
		}
	}
	// upload publishes the model card with the files but writes nothing
	// into its input, finetune's cached output.
	if _, err := os.Stat(filepath.Join(model, "README.md")); err == nil {
		t.Error("finetune's output holds README.md: upload wrote into its input")
	}
	for _, f := range []string{"model.safetensors", "config.json"} {
		if _, err := os.Stat(filepath.Join(model, f)); err == nil {
			t.Errorf("finetune output carries %s beside the adapter", f)
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
	if m.Steps != 2 || m.QA.Before.N != 4 || m.QA.After.N != 4 {
		t.Errorf("metrics: %d steps, QA on %d/%d questions; want 2 steps, 4/4", m.Steps, m.QA.Before.N, m.QA.After.N)
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
	// trained adapter, a PEFT card naming its base, and no base weights.
	check := filepath.Join(t.TempDir(), "check")
	if _, err := gitremote.Checkout(ctx, filepath.Join(dir, "hub", "kfllm-demo.git"), "main", check); err != nil {
		t.Fatal(err)
	}
	pushed, trained := fileSHA256(t, filepath.Join(check, "adapter_model.safetensors")), fileSHA256(t, filepath.Join(model, "adapter_model.safetensors"))
	if pushed != trained {
		t.Errorf("the repo's adapter_model.safetensors (sha256 %s) is not the trained one (%s)", pushed, trained)
	}
	if _, err := os.Stat(filepath.Join(check, "model.safetensors")); err == nil {
		t.Error("the repo carries model.safetensors: the unchanged base weights pass for the model")
	}
	var ac struct {
		Base string `json:"base_model_name_or_path"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(check, "adapter_config.json")), &ac); err != nil || ac.Base != filepath.Join(dir, "base-model") {
		t.Errorf("the adapter's base_model_name_or_path is %q (%v), want the demo's base %s", ac.Base, err, filepath.Join(dir, "base-model"))
	}
	if card := string(readFile(t, filepath.Join(check, "README.md"))); !strings.Contains(card, "library_name: peft") || !strings.Contains(card, filepath.Join(dir, "base-model")) {
		t.Errorf("the repo's model card is not an adapter's naming its base:\n%s", card)
	}
	// The base model is the converted pretrained one, not a random model.
	if b, err := os.ReadFile(filepath.Join(dir, "base-model", "config.json")); err != nil || !bytes.Contains(b, []byte(`"num_hidden_layers": 30`)) {
		t.Errorf("base-model/config.json is not SmolLM2-135M's (30 layers): %v\n%s", err, b)
	}

	// The sample question went through the V1 route and the answer printed.
	if sum.APIURL == "" || sum.UIURL == "" {
		t.Errorf("no API or UI address: %+v", sum)
	}
	if !strings.Contains(out.String(), "answer:") || !strings.Contains(out.String(), "exact match") {
		t.Errorf("the demo's output lacks the answer or the evaluation table:\n%s", out.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
