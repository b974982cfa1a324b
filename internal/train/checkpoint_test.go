package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func smallOptions(shards, out, ckpt string, steps int) Options {
	return Options{InputDataset: shards, BaseModel: filepath.Join("testdata", "parity", "base"), OutputModelDir: out,
		MaxSteps: steps, LearningRate: 1e-3, BatchSize: 4, WarmupSteps: 2, WeightDecay: 0.01,
		Device: "cpu", DType: "float32", CheckpointDir: ckpt, SaveSteps: 2, EvalSteps: 3, Threads: 1}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A corrupt newest checkpoint and a partial one are detected; the run
// resumes from the one before and ends with the weights of a run that was
// never interrupted.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	shards := fixtureShards(t)
	tmp := t.TempDir()
	ckpt := filepath.Join(tmp, "ckpt")
	o := smallOptions(shards, filepath.Join(tmp, "first"), ckpt, 8)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := mustRead(t, filepath.Join(tmp, "first", "model.safetensors"))
	steps, err := listCheckpoints(ckpt)
	if err != nil || fmt.Sprint(steps) != "[8 6]" {
		t.Fatalf("checkpoints kept: %v (%v), want [8 6]", steps, err)
	}
	// Flip one byte of the newest state; add a partial newer one.
	p := filepath.Join(ckpt, checkpointName(8), stateFile)
	b := mustRead(t, p)
	b[len(b)-3] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ckpt, checkpointName(10)), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ckpt, checkpointName(10), stateFile), b[:100], 0o644)

	o.OutputModelDir = filepath.Join(tmp, "second")
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 6 {
		t.Fatalf("resumed from step %d, want 6 (the newest valid checkpoint)", res.ResumedFrom)
	}
	if got := mustRead(t, filepath.Join(tmp, "second", "model.safetensors")); !bytes.Equal(got, want) {
		t.Fatal("weights after resuming differ from the uninterrupted run")
	}
	loss, _, evals := readLog(t, filepath.Join(tmp, "second", "training_log.jsonl"))
	if len(loss) != 8 || evals != 3 {
		t.Errorf("training_log.jsonl has %d step lines and %d eval lines, want 8 and 3 (evals at 3, 6 and the end)", len(loss), evals)
	}
}

// A NaN/Inf loss stops training with ErrNonFinite instead of writing a
// broken model.
func TestNonFiniteLossStops(t *testing.T) {
	shards := fixtureShards(t)
	out := filepath.Join(t.TempDir(), "model")
	o := smallOptions(shards, out, "", 40)
	o.LearningRate, o.WarmupSteps, o.MaxGradNorm = 1e12, 0, -1
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Run = %v, want ErrNonFinite", err)
	}
	if _, err := os.Stat(filepath.Join(out, "config.json")); err == nil {
		t.Fatal("a model directory was written after a non-finite loss")
	}
}

// kill -9 at a random step after a checkpoint, rerun the same command:
// the final weights are byte-identical to an uninterrupted run.
func TestKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the finetune binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "finetune")
	build := exec.Command("go", "build", "-o", bin, "github.com/kfllm/kfllm/components/finetune")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	shards := fixtureShards(t)
	const steps = 200
	args := func(out, ckpt string) []string {
		return []string{"--input-dataset", shards, "--base-model", filepath.Join("testdata", "parity", "base"),
			"--output-model-dir", out, "--checkpoint-dir", ckpt, "--save-steps", "7", "--max-steps", strconv.Itoa(steps),
			"--batch-size", "4", "--grad-accum", "2", "--learning-rate", "1e-3", "--warmup-steps", "5",
			"--weight-decay", "0.01", "--device", "cpu", "--lr-scheduler", "cosine", "--threads", "1"}
	}
	run := func(a []string) string {
		cmd := exec.Command(bin, a...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("finetune: %v\n%s", err, stderr.String())
		}
		return stderr.String()
	}
	ref := filepath.Join(tmp, "ref")
	run(args(ref, filepath.Join(tmp, "ref-ckpt")))

	out, ckpt := filepath.Join(tmp, "out"), filepath.Join(tmp, "ckpt")
	killAt := 8 + rand.IntN(steps/2)
	cmd := exec.Command(bin, args(out, ckpt)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(ckpt, "training_log.jsonl")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), "\"loss\"") >= killAt {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the run did not reach step %d", killAt)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
		t.Fatalf("the run finished before the kill at step %d; the test needs more steps", killAt)
	}
	cps, _ := listCheckpoints(ckpt)
	t.Logf("killed at step >= %d; checkpoints on disk: %v", killAt, cps)
	stderr := run(args(out, ckpt))
	if !strings.Contains(stderr, "resuming at step") {
		t.Errorf("the rerun did not say it resumed:\n%s", stderr)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(out, "model.safetensors")), mustRead(t, filepath.Join(ref, "model.safetensors"))) {
		t.Fatal("final weights after kill -9 and resume differ from the uninterrupted run")
	}
	loss, _, _ := readLog(t, filepath.Join(out, "training_log.jsonl"))
	refLoss, _, _ := readLog(t, filepath.Join(ref, "training_log.jsonl"))
	if fmt.Sprint(loss) != fmt.Sprint(refLoss) {
		t.Error("training_log.jsonl losses after resume differ from the uninterrupted run")
	}
}
