package distjob

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func base(mount string) Spec {
	return Spec{Runtime: PyTorchJob, Name: "kfllm-ft-0123456789ab", Namespace: "ns", Workers: 2,
		Image: "reg/kfllm-finetune:t", Command: []string{"/usr/local/bin/finetune"}, Claim: "c", MountPath: mount}
}

// TestPlanMovesPathsToTheClaim: the ranks read the inputs and write the
// outputs under the job's staging directory on the claim; a Hub base model
// and every other flag pass as given.
func TestPlanMovesPathsToTheClaim(t *testing.T) {
	dir := t.TempDir()
	mount := filepath.Join(dir, "ckpt")
	model := filepath.Join(dir, "base")
	qa := filepath.Join(dir, "qa.jsonl")
	for _, d := range []string{mount, model} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(qa, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []Flag{
		{"input-dataset", "/minio/x/shards"}, {"base-model", model}, {"qa-eval", qa},
		{"learning-rate", "0.001"}, {"checkpoint-dir", mount}, {"output-model-dir", "/minio/x/model"},
		{"metrics-output", "/minio/x/metrics"},
	}
	p, err := MakePlan(base(mount), flags)
	if err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(mount, StagingDir, "kfllm-ft-0123456789ab")
	want := []string{
		"--input-dataset=" + stage + "/in/input-dataset", "--base-model=" + stage + "/in/base-model",
		"--qa-eval=" + stage + "/in/qa-eval", "--learning-rate=0.001", "--checkpoint-dir=" + mount,
		"--output-model-dir=" + stage + "/out/output-model-dir", "--metrics-output=" + stage + "/out/metrics-output",
	}
	if !slices.Equal(p.Spec.Args, want) {
		t.Errorf("args\n%s\nwant\n%s", strings.Join(p.Spec.Args, "\n"), strings.Join(want, "\n"))
	}
	if len(p.Inputs) != 3 || p.Inputs[1].From != model || len(p.Outputs) != 2 || p.Outputs[0].To != "/minio/x/model" {
		t.Errorf("moves: in %v, out %v", p.Inputs, p.Outputs)
	}

	hub := slices.Clone(flags)
	hub[1].Value = "HuggingFaceTB/SmolLM2-135M"
	p, err = MakePlan(base(mount), hub)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Spec.Args, "--base-model=HuggingFaceTB/SmolLM2-135M") || len(p.Inputs) != 2 {
		t.Errorf("a Hub base model must pass as given: args %v, inputs %v", p.Spec.Args, p.Inputs)
	}
}

// TestPlanRefuses: a checkpoint directory the other ranks cannot see, no
// checkpoint directory, a flag twice, one worker, a TrainJob runtime of
// another kind than the two the trainer knows.
func TestPlanRefuses(t *testing.T) {
	ok := []Flag{{"input-dataset", "/in"}, {"checkpoint-dir", "/kfllm/checkpoints"}, {"output-model-dir", "/out"}}
	if _, err := MakePlan(base("/kfllm/checkpoints"), ok); err != nil {
		t.Fatalf("the good plan: %v", err)
	}
	one := base("/kfllm/checkpoints")
	one.Workers = 1
	kind := base("/kfllm/checkpoints")
	kind.Runtime, kind.TrainingRuntimeKind = TrainJob, "Runtime"
	for name, c := range map[string]struct {
		spec  Spec
		flags []Flag
	}{
		"checkpoint elsewhere": {base("/kfllm/checkpoints"), []Flag{{"input-dataset", "/in"}, {"checkpoint-dir", "/kfllm/checkpoints-2"}, {"output-model-dir", "/out"}}},
		"no checkpoint":        {base("/kfllm/checkpoints"), ok[:1:1]},
		"twice":                {base("/kfllm/checkpoints"), append(slices.Clone(ok), Flag{"input-dataset", "/other"})},
		"one worker":           {one, ok},
		"relative mount":       {base("ckpt"), ok},
		"runtime kind":         {kind, ok},
	} {
		if _, err := MakePlan(c.spec, c.flags); err == nil {
			t.Errorf("%s: planned without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestCopyPath: a tree replaces the empty directory the KFP launcher made,
// a file lands whole, and a copy that fails (a FIFO in the tree) leaves
// nothing at the target.
func TestCopyPath(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "sub/weights"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, "out", "output_model_dir")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyPath(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sub", "weights")); err != nil || string(b) != "sub/weights" {
		t.Errorf("copied tree: %q, %v", b, err)
	}
	if err := copyPath(filepath.Join(src, "config.json"), filepath.Join(dir, "out", "metrics")); err != nil {
		t.Fatal(err)
	}
	// os.CopyFS refuses what is not a regular file or directory.
	if err := syscall.Mkfifo(filepath.Join(src, "sub", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "out", "second")
	if err := copyPath(src, bad); err == nil {
		t.Error("copying an unreadable tree succeeded")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed copy left %s: %v", bad, err)
	}
	if _, err := os.Stat(bad + ".partial"); !os.IsNotExist(err) {
		t.Errorf("a failed copy left its temporary: %v", err)
	}
}
