package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/gitremote"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kfllm/kfllm/internal/kfp/executor"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// goBuild builds a command of this module into dir.
func goBuild(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

// standIn writes an executable shell script.
func standIn(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// outputsStandIn makes every --output-* directory and, as upload, reports a
// commit in its output parameter files.
const outputsStandIn = `repo=""
while [ $# -gt 0 ]; do
  case "$1" in
    --metrics-output|--html-output|--markdown-output) echo '{"metrics": []}' > "$2" ;;
    --repo) repo="$2" ;;
    --commit-sha-output) printf 0123456789abcdef0123456789abcdef01234567 > "$2" ;;
    --repo-url-output) printf '%s' "$repo" > "$2" ;;
    --output-*) mkdir -p "$2" ;;
  esac
  shift
done
`

// TestLocalKillFinetuneResumes runs the compiled pipeline under pipeline
// local with the real finetune, kills finetune with SIGKILL after it has
// checkpointed, and checks that the retry policy runs it again, that the
// retry resumes from the checkpoint on the run's claim (a directory standing
// in for the PersistentVolumeClaim the pipeline creates), and that it ends
// with the weights of a run that was never killed.
func TestLocalKillFinetuneResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs finetune (libtorch)")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	goBuild(t, filepath.Join(bin, "real"), "github.com/kfllm/kfllm/components/finetune")
	pids := filepath.Join(tmp, "finetune.pids")
	standIn(t, filepath.Join(bin, "finetune"), "echo $$ >> "+pids+"\nexec "+filepath.Join(bin, "real", "finetune")+` "$@"`+"\n")
	shards := filepath.Join(tmp, "shards")
	os.MkdirAll(shards, 0o755)
	for _, n := range []string{"train.safetensors", "eval.safetensors"} {
		b, err := os.ReadFile(filepath.Join("..", "internal", "train", "testdata", "parity", "shards", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(shards, n), b, 0o644)
	}
	tok, err := tokenizer.TrainBPE([]string{"the context says where Ada was born", "Answer the question using the context."}, 260)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(shards, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	standIn(t, filepath.Join(bin, "fetch"), outputsStandIn)
	standIn(t, filepath.Join(bin, "tokenize"), `out=""; prev=""
for a in "$@"; do [ "$prev" = "--output-dataset" ] && out="$a"; prev="$a"; done
cp -r `+shards+` "$out"
`)
	standIn(t, filepath.Join(bin, "upload"), outputsStandIn)
	base, _ := filepath.Abs(filepath.Join("..", "internal", "train", "testdata", "parity", "base"))
	secret := filepath.Join(tmp, "hf.env")
	os.WriteFile(secret, []byte("HF_TOKEN=\n"), 0o600)
	const steps = 80
	work := filepath.Join(tmp, "work")
	run := func(ctx context.Context, id string, out *bytes.Buffer) error {
		var stderr bytes.Buffer
		err := dispatch(ctx, []string{"local", "-f", "../internal/kfp/testdata/kfllm-finetune.yaml", "--bin-dir", bin, "--work-dir", work, "--run-id", id,
			"--secret", "hf-secret=" + secret, "--env", "OMP_NUM_THREADS=1", "--max-backoff", "1s",
			"--param", "base_model=" + base, "--param", "lora_r=0", "--param", "batch_size=4", "--param", "learning_rate=0.001",
			"--param", "warmup_steps=5", "--param", "max_steps=" + strconv.Itoa(steps), "--param", "save_steps=7", "--param", "hf_repo=me/model"},
			env{}, out, &stderr)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, stderr.String())
		}
		return nil
	}
	var ref bytes.Buffer
	if err := run(context.Background(), "ref", &ref); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, ref.String())
	}

	os.Remove(pids)
	killAt := 10 + rand.IntN(steps/2)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), "kill", &out) }() // out is read after done
	logPath := filepath.Join(work, ".claims", "kill-kfllm-checkpoints", "training_log.jsonl")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), `"loss"`) >= killAt {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended before step %d: %v", killAt, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("finetune did not reach step %d", killAt)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b, _ := os.ReadFile(pids)
	pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run with kill -9: %v\n%s", err, out.String())
	}
	log := out.String()
	if !strings.Contains(log, "[finetune] attempt 1 of 4 failed (signal: killed); retrying in 1s") {
		t.Errorf("no retry after the kill:\n%s", log)
	}
	if !strings.Contains(log, "resuming at step") {
		t.Errorf("the retry did not resume from a checkpoint:\n%s", log)
	}
	if n := strings.Count(strings.TrimSpace(string(mustReadFile(t, pids))), "\n") + 1; n != 2 {
		t.Errorf("finetune ran %d times, want 2", n)
	}
	model := func(run string) []byte {
		return mustReadFile(t, filepath.Join(work, run, "finetune", "output_model_dir", "model.safetensors"))
	}
	if !bytes.Equal(model("kill"), model("ref")) {
		t.Fatal("weights after kill -9 and retry differ from the uninterrupted run")
	}
	// The claim is deleted at the end; the commit is the run's output.
	if _, err := os.Stat(filepath.Dir(logPath)); !os.IsNotExist(err) {
		t.Errorf("claim left after the run: %v", err)
	}
	var outputs map[string]string
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(work, "kill", "outputs.json")), &outputs); err != nil || outputs["commit_sha"] != "0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("outputs.json: %v %v", outputs, err)
	}
	// finetune's executor output carries its metrics as numbers.
	eo, err := executor.Read(filepath.Join(work, "kill", "finetune", "executor_output.json"))
	if err != nil {
		t.Fatal(err)
	}
	md := eo.GetArtifacts()["metrics"].GetArtifacts()[0].GetMetadata().AsMap()
	if md["steps"] != float64(steps) || md["train_loss"] == nil || md["eval_loss"] == nil || md["tokens_per_second"] == nil {
		t.Errorf("finetune's metrics metadata: %v", md)
	}
	if !strings.Contains(log, "finetune metrics: eval_loss=") {
		t.Errorf("pipeline local did not print the metrics:\n%s", log)
	}
	t.Logf("killed at step >= %d", killAt)
}

// TestLocalGatedTokenizer: tokenize downloads the base model's tokenizer from
// the Hub, here a gated repository on the local Hub stand-in. With the
// pipeline's hf-secret mapping it gets the token and succeeds; with the
// mapping removed from its platform spec it fails for want of the token,
// although HF_TOKEN is set where pipeline local runs: a missing mapping
// fails on one machine as it would on the cluster.
func TestLocalGatedTokenizer(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	goBuild(t, bin, "github.com/kfllm/kfllm/components/fetch", "github.com/kfllm/kfllm/components/tokenize")
	standIn(t, filepath.Join(bin, "finetune"), outputsStandIn)
	standIn(t, filepath.Join(bin, "upload"), outputsStandIn)

	hubSrv := hubtest.New(t)
	tok, err := tokenizer.TrainBPE([]string{"Answer the question using the context.", "Context: Ada was born in Paris. Question: Where was Ada born? Answer: Paris"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	tokDir := filepath.Join(tmp, "tok")
	if err := tok.Save(tokDir); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	entries, _ := os.ReadDir(tokDir)
	for _, e := range entries {
		files[e.Name()] = mustReadFile(t, filepath.Join(tokDir, e.Name()))
	}
	repo := hubSrv.AddRepo("model", "acme/gated-base")
	repo.CommitFiles("main", files)
	repo.SetGated(true, true)
	endpoint := strings.Replace(hubSrv.URL, hubtest.HubHost, "127.0.0.1", 1)

	data := filepath.Join(tmp, "train.jsonl")
	var rows bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&rows, `{"context": "Ada %d was born in Paris.", "question": "Where was Ada %d born?", "answer": "Paris"}`+"\n", i, i)
	}
	os.WriteFile(data, rows.Bytes(), 0o644)
	secret := filepath.Join(tmp, "hf.env")
	os.WriteFile(secret, []byte("HF_TOKEN="+hubSrv.Token+"\n"), 0o600)

	pipelineYAML := mustReadFile(t, "../internal/kfp/testdata/kfllm-finetune.yaml")
	c, err := kfp.Unmarshal(pipelineYAML)
	if err != nil {
		t.Fatal(err)
	}
	delete(c.Platform.Platforms["kubernetes"].DeploymentSpec.Executors, "exec-tokenize")
	unmapped, err := kfp.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	unmappedPath := filepath.Join(tmp, "unmapped.yaml")
	os.WriteFile(unmappedPath, unmapped, 0o644)

	run := func(yaml, id string) (string, error) {
		var out, stderr bytes.Buffer
		err := dispatch(context.Background(), []string{"local", "-f", yaml, "--bin-dir", bin, "--work-dir", filepath.Join(tmp, "work"), "--run-id", id,
			"--secret", "hf-secret=" + secret, "--env", "HF_ENDPOINT=" + endpoint, "--max-backoff", "1ms",
			"--param", "source=" + data, "--param", "base_model=acme/gated-base", "--param", "max_length=64", "--param", "hf_repo=me/model"},
			env{}, &out, &stderr)
		return out.String() + stderr.String(), err
	}
	t.Setenv("HF_TOKEN", hubSrv.Token) // in pipeline local's environment, not granted to tokenize below
	if log, err := run("../internal/kfp/testdata/kfllm-finetune.yaml", "mapped"); err != nil {
		t.Fatalf("with tokenize's hf-secret mapping: %v\n%s", err, log)
	}
	log, err := run(unmappedPath, "unmapped")
	if err == nil {
		t.Fatalf("tokenize read the gated tokenizer without the mapping:\n%s", log)
	}
	if !strings.Contains(err.Error(), "task tokenize failed with exit code 3") || !strings.Contains(log, "GatedRepo") && !strings.Contains(strings.ToLower(log), "gated") {
		t.Errorf("want tokenize to fail on the gated repo: %v\n%s", err, log)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUploadReportsItsCommit runs the compiled pipeline under pipeline
// local with the real upload to a bare repository (stand-ins for the other
// tasks): upload writes the commit it made (the head of main afterwards,
// which serving is then pinned to) and the repository to the files the
// output_file placeholders name, and they become the pipeline's outputs.
func TestUploadReportsItsCommit(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	goBuild(t, bin, "github.com/kfllm/kfllm/components/upload")
	for _, c := range []string{"fetch", "tokenize"} {
		standIn(t, filepath.Join(bin, c), outputsStandIn)
	}
	standIn(t, filepath.Join(bin, "finetune"), `out=""; prev=""
for a in "$@"; do [ "$prev" = "--output-model-dir" ] && out="$a"; prev="$a"; done
[ -n "$out" ] || exit 2
`+outputsStandIn+`printf '{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}' > "$out/config.json"
printf weights > "$out/model.safetensors"
`)
	secret := filepath.Join(tmp, "hf.env")
	os.WriteFile(secret, []byte("HF_TOKEN=\n"), 0o600)
	repo := filepath.Join(tmp, "hub", "m.git")
	work := filepath.Join(tmp, "work")
	var out, stderr bytes.Buffer
	if err := dispatch(context.Background(), []string{"local", "-f", "../internal/kfp/testdata/kfllm-finetune.yaml", "--bin-dir", bin,
		"--work-dir", work, "--run-id", "up", "--secret", "hf-secret=" + secret, "--param", "hf_repo=" + repo}, env{}, &out, &stderr); err != nil {
		t.Fatalf("pipeline local: %v\n%s%s", err, out.String(), stderr.String())
	}
	head, err := gitremote.Checkout(context.Background(), repo, "main", filepath.Join(tmp, "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	var outputs map[string]string
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(work, "up", "outputs.json")), &outputs); err != nil {
		t.Fatal(err)
	}
	if got := outputs["commit_sha"]; got != head || len(got) != 40 {
		t.Errorf("commit_sha = %q, the repository's main is %s", got, head)
	}
	if got := outputs["repo_url"]; got != repo {
		t.Errorf("repo_url = %q, want %s", got, repo)
	}
	if !strings.Contains(out.String(), "  commit_sha: "+head+"\n") {
		t.Errorf("pipeline local did not print the commit:\n%s", out.String())
	}
}

// TestLocalSchedulingParams: pipeline local takes the GPU scheduling
// parameters a cluster run is given (accelerator, node_selector,
// tolerations), runs the pipeline with them (it schedules nothing, so they
// change nothing here), and refuses a node selector that is not a JSON
// object before any task runs.
func TestLocalSchedulingParams(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	os.MkdirAll(bin, 0o755)
	for _, c := range []string{"fetch", "tokenize", "finetune", "upload"} {
		standIn(t, filepath.Join(bin, c), outputsStandIn)
	}
	run := func(id string, params ...string) (string, error) {
		args := []string{"local", "-f", "../internal/kfp/testdata/kfllm-finetune-gpu.yaml", "--bin-dir", bin,
			"--work-dir", filepath.Join(tmp, "work"), "--run-id", id, "--secret", "hf-secret=" + filepath.Join(tmp, "hf.env"),
			"--param", "hf_repo=me/model"}
		for _, p := range params {
			args = append(args, "--param", p)
		}
		var out, stderr bytes.Buffer
		err := dispatch(context.Background(), args, env{}, &out, &stderr)
		return out.String() + stderr.String(), err
	}
	os.WriteFile(filepath.Join(tmp, "hf.env"), []byte("HF_TOKEN=\n"), 0o600)
	log, err := run("gpu", `accelerator=nvidia.com/gpu`,
		`node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}`,
		`tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`)
	if err != nil {
		t.Fatalf("pipeline local with scheduling parameters: %v\n%s", err, log)
	}
	if !strings.Contains(log, "0123456789abcdef0123456789abcdef01234567") {
		t.Errorf("the run did not reach upload's commit:\n%s", log)
	}
	log, err = run("bad", `node_selector=cloud.google.com/gke-accelerator=nvidia-tesla-t4`)
	if err == nil || !strings.Contains(err.Error(), "node_selector") || strings.Contains(log, "[fetch]") {
		t.Errorf("a node selector that is not a JSON object: %v\n%s", err, log)
	}
}
