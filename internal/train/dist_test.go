package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/safetensors"
)

// buildFinetune builds components/finetune into dir.
func buildFinetune(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "finetune")
	build := exec.Command("go", "build", "-o", bin, "github.com/kfllm/kfllm/components/finetune")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// maxDiff is the largest absolute difference between the float32 tensors
// of two safetensors files, which must hold the same names and shapes.
func maxDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	fa, err := safetensors.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := safetensors.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	if fmt.Sprint(fa.Names()) != fmt.Sprint(fb.Names()) {
		t.Fatalf("%s and %s hold different tensors: %v / %v", a, b, fa.Names(), fb.Names())
	}
	worst := 0.0
	for _, n := range fa.Names() {
		da, err := fa.Data(n)
		if err != nil {
			t.Fatal(err)
		}
		db, err := fb.Data(n)
		if err != nil {
			t.Fatal(err)
		}
		xa, xb := safetensors.Float32s(da), safetensors.Float32s(db)
		if len(xa) != len(xb) {
			t.Fatalf("%s: %d vs %d elements", n, len(xa), len(xb))
		}
		for i := range xa {
			worst = max(worst, math.Abs(float64(xa[i])-float64(xb[i])))
		}
	}
	return worst
}

func runFinetune(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("finetune %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stderr.String()
}

// Two ranks on this machine (Gloo over loopback, CPU), batch B each, end
// at the weights of one process with batch 2B: the same steps, seed and
// shuffled order, an epoch's short last batch split unevenly (16 rows in
// batches of 6: the third holds 4, three on rank 0 and one on rank 1),
// gradient accumulation, clipping, weight decay; full fine-tuning and
// LoRA.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the finetune binary and runs three processes per case")
	}
	tmp := t.TempDir()
	bin := buildFinetune(t, tmp)
	shards := fixtureShards(t)
	for _, tc := range []struct {
		name    string
		extra   []string
		weights string
	}{
		{"full", nil, "model.safetensors"},
		{"lora", []string{"--lora-r", "4", "--lora-alpha", "8", "--lora-target-modules", "q_proj,v_proj,down_proj"}, "adapter_model.safetensors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := func(out string, batch int) []string {
				return append([]string{"--input-dataset", shards, "--base-model", filepath.Join("testdata", "parity", "base"),
					"--output-model-dir", out, "--max-steps", "6", "--batch-size", strconv.Itoa(batch), "--grad-accum", "2",
					"--learning-rate", "2e-3", "--warmup-steps", "1", "--weight-decay", "0.01", "--max-grad-norm", "0.5",
					"--device", "cpu", "--dtype", "float32", "--threads", "1", "--log-every", "1"}, tc.extra...)
			}
			one := filepath.Join(tmp, tc.name+"-one")
			runFinetune(t, bin, nil, args(one, 6)...)
			two := filepath.Join(tmp, tc.name+"-two")
			stderr := runFinetune(t, bin, nil, append(args(two, 3), "--nproc-per-node", "2")...)
			// --nproc-per-node gives each child its LOCAL_RANK (on CUDA,
			// its GPU); on the CPU both use Gloo.
			for r := range 2 {
				want := fmt.Sprintf("data-parallel rank rank=%d local_rank=%d world_size=2 device=cpu backend=gloo", r, r)
				if !strings.Contains(stderr, want) {
					t.Errorf("the 2-rank run's stderr lacks %q:\n%s", want, stderr)
				}
			}

			d := maxDiff(t, filepath.Join(one, tc.weights), filepath.Join(two, tc.weights))
			t.Logf("largest weight difference, 2 ranks x batch 3 vs 1 x batch 6: %.3g", d)
			if d > 1e-5 {
				t.Errorf("weights differ by up to %g, want <= 1e-5", d)
			}
			if tc.name == "full" { // a LoRA run's output is the adapter alone (no base weights beside it)
				base := maxDiff(t, filepath.Join(one, "model.safetensors"), filepath.Join("testdata", "parity", "base", "model.safetensors"))
				if base < 1e-4 {
					t.Fatalf("training moved the weights by only %g: the comparison says nothing", base)
				}
			}
			var met Metrics
			if err := json.Unmarshal(mustRead(t, filepath.Join(two, "metrics.json")), &met); err != nil {
				t.Fatal(err)
			}
			if met.WorldSize != 2 || met.AllReduce <= 0 || met.Steps != 6 {
				t.Errorf("metrics.json of the 2-rank run: world_size %d, allreduce_seconds %v, steps %d", met.WorldSize, met.AllReduce, met.Steps)
			}
			l1, _, _ := readLog(t, filepath.Join(one, "training_log.jsonl"))
			l2, _, _ := readLog(t, filepath.Join(two, "training_log.jsonl"))
			if len(l1) != 6 || len(l2) != 6 {
				t.Fatalf("training logs hold %d and %d steps, want 6 (rank 0 alone writes)", len(l1), len(l2))
			}
			for i := range l1 {
				if math.Abs(l1[i]-l2[i]) > 1e-5*max(1, l1[i]) {
					t.Errorf("step %d: loss %v with 2 ranks, %v with one", i+1, l2[i], l1[i])
				}
			}
		})
	}
}

// kill -9 of one rank fails the other with an error (not a hang) and
// writes no model; rerunning the command resumes both ranks from rank
// 0's last checkpoint and ends at the weights of a run never killed.
func TestDataParallelKillFailsCleanlyAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the finetune binary")
	}
	tmp := t.TempDir()
	bin := buildFinetune(t, tmp)
	shards := fixtureShards(t)
	const steps = 60
	args := func(out, ckpt string) []string {
		return []string{"--input-dataset", shards, "--base-model", filepath.Join("testdata", "parity", "base"),
			"--output-model-dir", out, "--checkpoint-dir", ckpt, "--save-steps", "5", "--max-steps", strconv.Itoa(steps),
			"--batch-size", "2", "--learning-rate", "1e-3", "--device", "cpu", "--dtype", "float32", "--threads", "1",
			"--dist-timeout", "2m"}
	}
	ref := filepath.Join(tmp, "ref")
	runFinetune(t, bin, nil, append(args(ref, filepath.Join(tmp, "ref-ckpt")), "--nproc-per-node", "2")...)

	// The two ranks as a PyTorchJob starts them: one process each, told
	// their rank by the environment.
	out, ckpt := filepath.Join(tmp, "out"), filepath.Join(tmp, "ckpt")
	port, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	var ranks [2]*exec.Cmd
	var stderr [2]bytes.Buffer
	for r := range ranks {
		e := dist.Env{Rank: r, LocalRank: r, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}
		ranks[r] = exec.Command(bin, args(out, ckpt)...)
		ranks[r].Env = append(os.Environ(), e.Vars()...)
		ranks[r].Stderr = &stderr[r]
		if err := ranks[r].Start(); err != nil {
			t.Fatal(err)
		}
		defer ranks[r].Process.Kill()
	}
	logPath := filepath.Join(ckpt, "training_log.jsonl")
	killAt := 12
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), "\"loss\"") >= killAt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not reach step %d:\n%s", killAt, stderr[0].String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := ranks[1].Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	ranks[1].Wait()
	// Rank 0 must fail by itself; the test's own timeout is the hang guard.
	err = ranks[0].Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("rank 0 after rank 1 was killed: %v, want exit status 1\n%s", err, stderr[0].String())
	}
	msg := stderr[0].String()
	if !strings.Contains(msg, "another rank failed or was killed") {
		t.Errorf("rank 0's error does not say a peer is gone:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
		t.Fatal("a model was written by a run whose rank was killed")
	}
	cps, _ := listCheckpoints(ckpt)
	if len(cps) == 0 || cps[0] >= steps {
		t.Fatalf("checkpoints after the kill: %v, want some before step %d", cps, steps)
	}
	t.Logf("rank 1 killed at step >= %d; checkpoints %v; rank 0 said: %s", killAt, cps, lastLine(msg))

	resumed := runFinetune(t, bin, nil, append(args(out, ckpt), "--nproc-per-node", "2")...)
	if !strings.Contains(resumed, "resuming at step "+strconv.Itoa(cps[0])) {
		t.Errorf("the rerun did not resume from step %d:\n%s", cps[0], resumed)
	}
	if d := maxDiff(t, filepath.Join(out, "model.safetensors"), filepath.Join(ref, "model.safetensors")); d != 0 {
		t.Errorf("weights after kill -9 and resume differ from the uninterrupted run by up to %g", d)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
