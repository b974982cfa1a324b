package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kfllm/kfllm/internal/kfp/finetune"
)

// The compiled fine-tuning pipeline, as `pipeline compile` writes it.
const pipelineYAML = "../testdata/kfllm-finetune.yaml"

// fakeComponent stands in for the fetch/tokenize/finetune/upload binaries:
// it records its command line and whether HF_TOKEN reached it, copies its
// input dataset/model into its output with its own name appended, writes
// metrics, and fails with exit code 3 when FAKE_FAIL names it.
const fakeComponent = `#!/bin/sh
name=$(basename "$0")
echo "$name $*" | sed 's/ --executor-input {.*}$/ --executor-input EI/' >> "$FAKE_LOG"
echo "$name token=${HF_TOKEN:-unset}" >> "$FAKE_LOG"
echo "hello from $name"
echo "to stderr from $name" >&2
if [ "$FAKE_FAIL" = "$name" ]; then
  echo "loading shards"; echo "out of memory"; exit 3
fi
in=""; metrics=""; repo=""
while [ $# -gt 0 ]; do
  case "$1" in
    --input-dataset|--model-dir) in="$2"; shift ;;
    --output-dataset|--output-model-dir)
      mkdir -p "$2"
      if [ -n "$in" ]; then cat "$in/chain.txt" > "$2/chain.txt"; fi
      echo "$name" >> "$2/chain.txt"; shift ;;
    --metrics-output) echo '{"eval_loss": 1.5}' > "$2"; metrics=1; shift ;;
    --executor-input) eo=$(printf '%s' "$2" | sed -n 's/.*"outputFile": *"\([^"]*\)".*/\1/p')
      if [ -n "$metrics" ]; then
        echo '{"artifacts": {"metrics": {"artifacts": [{"metadata": {"eval_loss": 1.5, "steps": 30}}]}}}' > "$eo"
      fi; shift ;;
    --repo) repo="$2"; shift ;;
    --commit-sha-output) printf c0ffee > "$2"; shift ;;
    --repo-url-output) printf '%s' "$repo" > "$2"; shift ;;
    --html-output|--markdown-output) echo "report of $name" > "$2"; shift ;;
  esac
  shift
done
`

type fixture struct {
	bin, work, log string
	env            []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{bin: filepath.Join(dir, "bin"), work: filepath.Join(dir, "work"), log: filepath.Join(dir, "calls.log")}
	if err := os.MkdirAll(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"fetch", "tokenize", "finetune", "upload"} {
		if err := os.WriteFile(filepath.Join(f.bin, n), []byte(fakeComponent), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.env = []string{"PATH=" + os.Getenv("PATH"), "FAKE_LOG=" + f.log, "HF_TOKEN=hf_secret_value"}
	return f
}

func (f *fixture) run(t *testing.T, o Options) (*Result, string, error) {
	t.Helper()
	var out bytes.Buffer
	o.WorkDir, o.BinDir, o.Out = f.work, f.bin, &out
	if o.Env == nil {
		o.Env = f.env
	}
	o.PassEnv = append(o.PassEnv, "FAKE_LOG", "FAKE_FAIL", "FAKE_TRAINING")
	if o.MaxBackoff == 0 {
		o.MaxBackoff = time.Millisecond
	}
	res, err := RunFile(context.Background(), pipelineYAML, o)
	return res, out.String(), err
}

func (f *fixture) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestRunFinetunePipeline(t *testing.T) {
	f := newFixture(t)
	res, out, err := f.run(t, Options{RunID: "r1", Params: map[string]string{"epochs": "3", "hf_repo": "me/model", "learning_rate": "1e-4", "merge_lora": "true"}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	run := filepath.Join(f.work, "r1")
	calls := f.calls(t)
	want := []string{
		"fetch --source hf://datasets/rajpurkar/squad --split train --task qa --output-dataset " + run + "/fetch/output_dataset --executor-input EI",
		"fetch token=hf_secret_value",
		"tokenize --input-dataset " + run + "/fetch/output_dataset --tokenizer HuggingFaceTB/SmolLM2-135M --max-length 512 --output-dataset " + run + "/tokenize/output_dataset --executor-input EI",
		"tokenize token=hf_secret_value",
		"finetune --input-dataset " + run + "/tokenize/output_dataset --base-model HuggingFaceTB/SmolLM2-135M --epochs 3 --learning-rate 0.0001 --batch-size 8 --lora-r 16 --lora-alpha 32 --lora-target-modules all-linear --merge-lora=true --max-steps 0 --warmup-steps 0 --seed 42 --qa-eval  --save-steps 100 --checkpoint-dir " + f.work + "/.claims/r1-kfllm-checkpoints --workers 1 --distributed-runtime pytorchjob --worker-image ghcr.io/kfllm/kfllm-finetune:dev --worker-cpu-request 4 --worker-cpu-limit 8 --worker-memory-request 16G --worker-memory-limit 32G --worker-accelerator nvidia.com/gpu --worker-accelerator-count 1 --worker-node-selector {} --worker-tolerations [] --worker-hf-secret hf-secret --output-model-dir " + run + "/finetune/output_model_dir --metrics-output " + run + "/finetune/metrics --html-output " + run + "/finetune/report --markdown-output " + run + "/finetune/eval_table --executor-input EI",
		"finetune token=hf_secret_value",
		"upload --model-dir " + run + "/finetune/output_model_dir --repo me/model --commit-sha-output " + run + "/upload/parameters/commit_sha --repo-url-output " + run + "/upload/parameters/repo_url",
		"upload token=hf_secret_value",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	chain, err := os.ReadFile(filepath.Join(run, "finetune", "output_model_dir", "chain.txt"))
	if err != nil || string(chain) != "fetch\ntokenize\nfinetune\n" {
		t.Errorf("artifact chain = %q, %v", chain, err)
	}
	if _, err := os.Stat(filepath.Join(run, "finetune", "metrics")); err != nil {
		t.Errorf("metrics artifact: %v", err)
	}
	for _, l := range []string{"[fetch] hello from fetch", "[upload] to stderr from upload", "==> tokenize (3/6)"} {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
	if strings.Contains(out, "hf_secret_value") {
		t.Error("the secret's value reached the output")
	}
	if log, _ := os.ReadFile(filepath.Join(run, "tokenize", "task.log")); !strings.Contains(string(log), "hello from tokenize") {
		t.Errorf("task.log = %q", log)
	}
	var names []string
	for _, tr := range res.Tasks {
		names = append(names, tr.Name+":"+string(tr.Status))
	}
	if got := strings.Join(names, " "); got != "createpvc:succeeded fetch:succeeded tokenize:succeeded finetune:succeeded upload:succeeded deletepvc:succeeded" {
		t.Errorf("results = %s", got)
	}
	// The executor outputs: finetune's metrics printed, upload's commit the
	// pipeline's output, kept in outputs.json; the run's claim is gone.
	for _, l := range []string{"finetune metrics: eval_loss=1.5 steps=30\n", "pipeline outputs:\n  commit_sha: c0ffee\n  repo_url: me/model\n"} {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(run, "outputs.json")); err != nil || !strings.Contains(string(b), `"commit_sha": "c0ffee"`) {
		t.Errorf("outputs.json = %s, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.work, ".claims", "r1-kfllm-checkpoints")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's claim was not deleted: %v", err)
	}
	if !strings.Contains(out, "TASK") || !regexp.MustCompile(`(?m)^upload +succeeded`).MatchString(out) {
		t.Errorf("summary missing:\n%s", out)
	}
}

func TestRunStopsAtFirstFailure(t *testing.T) {
	f := newFixture(t)
	f.env = append(f.env, "FAKE_FAIL=finetune")
	// finetune's stand-in prints an error line, then lines that push it out of the tail.
	fake := strings.Replace(fakeComponent, `echo "loading shards"; echo "out of memory"; exit 3`,
		`echo "error: CUDA not available"; echo "loading shards"; echo "out of memory"; exit 3`, 1)
	os.WriteFile(filepath.Join(f.bin, "finetune"), []byte(fake), 0o755)
	res, out, err := f.run(t, Options{RunID: "r1", TailLines: 2})
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a *TaskError", err)
	}
	if te.Task != "finetune" || te.ExitCode != 3 {
		t.Errorf("failure = %s exit %d, want finetune exit 3", te.Task, te.ExitCode)
	}
	if strings.Join(te.Tail, "|") != "loading shards|out of memory" {
		t.Errorf("tail = %q", te.Tail)
	}
	if te.First != "error: CUDA not available" || !strings.Contains(err.Error(), "first error line: error: CUDA not available") {
		t.Errorf("first error line = %q in %v", te.First, err)
	}
	if !strings.HasPrefix(err.Error(), "task finetune failed with exit code 3\n") || !strings.Contains(err.Error(), "out of memory") {
		t.Errorf("error text: %v", err)
	}
	for _, c := range f.calls(t) {
		if strings.HasPrefix(c, "upload") {
			t.Errorf("upload ran after finetune failed")
		}
	}
	for _, tr := range res.Tasks[len(res.Tasks)-2:] {
		if tr.Status != NotRun {
			t.Errorf("%s after the failure = %+v", tr.Name, tr)
		}
	}
	if tr := res.Tasks[3]; tr.Name != "finetune" || tr.Attempts != 4 {
		t.Errorf("finetune ran %d times, want 4 (3 retries)", tr.Attempts)
	}
	if !strings.Contains(out, "failed (exit 3)") {
		t.Errorf("summary lacks the failure:\n%s", out)
	}
}

func TestRunCache(t *testing.T) {
	f := newFixture(t)
	count := func(name string) int {
		n := 0
		for _, c := range f.calls(t) {
			if strings.HasPrefix(c, name+" --") {
				n++
			}
		}
		return n
	}
	if _, out, err := f.run(t, Options{RunID: "r1", Cache: true}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	res, out, err := f.run(t, Options{RunID: "r2", Cache: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]Status{}
	for _, tr := range res.Tasks {
		got[tr.Name] = tr.Status
	}
	// upload has caching off in the IR: it runs every time.
	if got["fetch"] != Cached || got["tokenize"] != Cached || got["finetune"] != Cached || got["upload"] != Succeeded {
		t.Errorf("second run statuses = %v", got)
	}
	if count("fetch") != 1 || count("upload") != 2 {
		t.Errorf("fetch ran %d times, upload %d", count("fetch"), count("upload"))
	}
	// The cached outputs are reachable under the new run's directory.
	chain, err := os.ReadFile(filepath.Join(f.work, "r2", "finetune", "output_model_dir", "chain.txt"))
	if err != nil || string(chain) != "fetch\ntokenize\nfinetune\n" {
		t.Errorf("cached artifact = %q, %v", chain, err)
	}
	if !strings.Contains(out, "hit") {
		t.Errorf("summary shows no cache hit:\n%s", out)
	}

	// A changed parameter reruns the task that takes it, and only downstream
	// tasks whose inputs changed.
	if _, out, err := f.run(t, Options{RunID: "r3", Cache: true, Params: map[string]string{"epochs": "2"}}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if count("fetch") != 1 || count("tokenize") != 1 || count("finetune") != 2 {
		t.Errorf("after epochs change: fetch %d tokenize %d finetune %d runs", count("fetch"), count("tokenize"), count("finetune"))
	}

	// A local file named by a parameter is an input: editing it reruns fetch
	// (and, its output being the same, nothing else changes downstream).
	src := filepath.Join(t.TempDir(), "data.jsonl")
	os.WriteFile(src, []byte("{}\n"), 0o644)
	srcRun := func(id string) {
		if _, out, err := f.run(t, Options{RunID: id, Cache: true, Params: map[string]string{"source": src}}); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	srcRun("s1")
	srcRun("s2")
	if count("fetch") != 2 {
		t.Errorf("fetch ran %d times with an unchanged local source, want 2", count("fetch"))
	}
	os.WriteFile(src, []byte("{\"changed\": true}\n"), 0o644)
	srcRun("s3")
	if count("fetch") != 3 || count("tokenize") != 1 {
		t.Errorf("after editing the source: fetch %d, tokenize %d runs; want 3, 1", count("fetch"), count("tokenize"))
	}

	// Without --cache everything runs.
	if _, out, err := f.run(t, Options{RunID: "r4"}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if count("fetch") != 4 {
		t.Errorf("fetch ran %d times, want 4", count("fetch"))
	}

	// A deleted cached output is a miss, not a broken link.
	if err := os.RemoveAll(filepath.Join(f.work, "r1")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.work, "r4")); err != nil {
		t.Fatal(err)
	}
	if _, out, err := f.run(t, Options{RunID: "r5", Cache: true}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if count("fetch") != 5 {
		t.Errorf("fetch ran %d times after its cached output was deleted, want 5", count("fetch"))
	}
}

func TestRunRejectsBeforeRunning(t *testing.T) {
	cases := map[string]struct {
		o    Options
		prep func(f *fixture)
		want string
	}{
		"unknown param": {o: Options{Params: map[string]string{"epoch": "3"}}, want: "no such parameter"},
		"bad int":       {o: Options{Params: map[string]string{"epochs": "three"}}, want: `"three" is not an integer`},
		"bad run id":    {o: Options{RunID: "../x"}, want: "plain directory name"},
		"missing binary": {prep: func(f *fixture) { os.Remove(filepath.Join(f.bin, "upload")) },
			want: "upload: binary "},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			if tc.prep != nil {
				tc.prep(f)
			}
			_, _, err := f.run(t, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(f.calls(t)) != 0 {
				t.Errorf("tasks ran: %v", f.calls(t))
			}
		})
	}
}

func TestBinaryMapping(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/kfllm/kfllm-fetch:dev":               "bin/fetch",
		"kfllm-finetune":                              "bin/finetune",
		"localhost:5000/x/kfllm-upload:v1.2":          "bin/upload",
		"r.io/kfllm-tokenize@sha256:0123456789abcdef": "bin/tokenize",
	} {
		got, err := Binary(image, "bin")
		if err != nil || got != want {
			t.Errorf("Binary(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
	for _, bad := range []string{"python:3.11", "ghcr.io/kfllm/fetch:dev", "kfllm-:x"} {
		if _, err := Binary(bad, "bin"); err == nil {
			t.Errorf("Binary(%q) accepted", bad)
		}
	}
}

// TestOrder runs a pipeline whose declaration order is not its DAG order,
// with a constant and an After edge, built with package kfp.
func TestOrder(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	script := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$FAKE_LOG\"\n[ -n \"$2\" ] && mkdir -p \"$2\"\nexit 0\n"
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(bin, n), []byte(script), 0o755)
	}
	p := kfp.NewPipeline("order", "")
	comp := func(n string) *kfp.Component {
		return kfp.NewComponent(n, "kfllm-"+n, "/usr/local/bin/"+n)
	}
	c := p.Task(comp("c").Param("--n", "n", kfp.Int), kfp.Inputs{"n": kfp.Const(7)})
	a := p.Task(comp("a").Arg("x").Output("", "o", kfp.Artifact), nil)
	p.Task(comp("b").Input("--i", "i", kfp.Artifact), kfp.Inputs{"i": a.Output("o")}).After(c)
	compiled, err := kfp.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	var out bytes.Buffer
	if _, err := Run(context.Background(), compiled, Options{WorkDir: filepath.Join(dir, "w"), RunID: "r", BinDir: bin, Out: &out, Env: []string{"FAKE_LOG=" + log}, PassEnv: []string{"FAKE_LOG"}}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	b, _ := os.ReadFile(log)
	w := filepath.Join(dir, "w", "r")
	want := "a x " + w + "/a/o\nc --n 7\nb --i " + w + "/a/o\n"
	if string(b) != want {
		t.Errorf("order:\n%s\nwant:\n%s", b, want)
	}
}

// TestRunKFPSDKCompiledYAML runs the same pipeline as compiled by the KFP
// Python SDK: pipeline local reads any KFP v2 IR of this shape, not only ours.
func TestRunKFPSDKCompiledYAML(t *testing.T) {
	f := newFixture(t)
	var out bytes.Buffer
	res, err := RunFile(context.Background(), "../testdata/kfp_sdk_golden.yaml", Options{WorkDir: f.work, RunID: "sdk", BinDir: f.bin, Out: &out, Env: f.env, PassEnv: []string{"FAKE_LOG"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Tasks) != 6 || res.Tasks[4].Name != "upload" || res.Tasks[4].Status != Succeeded || res.Outputs["commit_sha"].GetStringValue() != "c0ffee" {
		t.Errorf("results = %+v, outputs %v", res.Tasks, res.Outputs)
	}
	// The SDK's boolean placeholder renders as Go's flag package reads it.
	if calls := f.calls(t); len(calls) != 8 || !strings.Contains(calls[4], "--learning-rate 0.001 ") || !strings.Contains(calls[4], " --merge-lora=false ") {
		t.Errorf("calls = %q", calls)
	}
}

// TestRunCancel: cancelling the run (Ctrl-C) stops the running task's
// process group, children included, and reports the interruption.
func TestRunCancel(t *testing.T) {
	f := newFixture(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	os.WriteFile(filepath.Join(f.bin, "fetch"), []byte("#!/bin/sh\nsleep 30 &\necho $! > "+pidFile+"\necho started\nwait\n"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := RunFile(ctx, pipelineYAML, Options{WorkDir: f.work, RunID: "c", BinDir: f.bin, Out: &syncWriter{w: &out}, Env: f.env})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("err = %v, want an interruption", err)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the task's child process %d survived the cancel", pid)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// alive reports whether pid runs (a zombie awaiting its reaper does not).
func alive(pid int) bool {
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestTaskEnvironment: a task gets the host's PATH and locale, its own
// HOME, what --env passes, and the secrets its platform spec maps, from a
// --secret file or else the local environment; never the rest of the local
// environment, and never a secret it does not map. A mapped secret that is
// not given fails the task before it starts.
func TestTaskEnvironment(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	script := "#!/bin/sh\nenv | sort > \"$1\"\n"
	for _, n := range []string{"a", "b"} {
		os.WriteFile(filepath.Join(bin, n), []byte(script), 0o755)
	}
	p := kfp.NewPipeline("env", "")
	a := p.Task(kfp.NewComponent("a", "kfllm-a", "/usr/local/bin/a").Arg(filepath.Join(dir, "a.env")), nil).WithSecretEnv("hf-secret", "HF_TOKEN", "HF_TOKEN")
	p.Task(kfp.NewComponent("b", "kfllm-b", "/usr/local/bin/b").Arg(filepath.Join(dir, "b.env")), nil).After(a)
	c, err := kfp.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	local := []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "HF_TOKEN=from-env", "AWS_SECRET_ACCESS_KEY=x", "HF_ENDPOINT=http://mirror", "HOME=/root"}
	run := func(o Options) (string, string, error) {
		var out bytes.Buffer
		o.WorkDir, o.RunID, o.BinDir, o.Out, o.Env = filepath.Join(dir, "w"), "r", bin, &out, local
		os.Remove(filepath.Join(dir, "a.env"))
		os.Remove(filepath.Join(dir, "b.env"))
		_, err := Run(context.Background(), c, o)
		ea, _ := os.ReadFile(filepath.Join(dir, "a.env"))
		eb, _ := os.ReadFile(filepath.Join(dir, "b.env"))
		return string(ea), string(eb), err
	}
	ea, eb, err := run(Options{PassEnv: []string{"HF_ENDPOINT"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HF_TOKEN=from-env\n", "HF_ENDPOINT=http://mirror\n", "LANG=C.UTF-8\n", "HOME=" + filepath.Join(dir, "w", "r", ".home") + "\n"} {
		if !strings.Contains(ea, want) {
			t.Errorf("task a lacks %q:\n%s", want, ea)
		}
	}
	if strings.Contains(eb, "HF_TOKEN") || strings.Contains(ea+eb, "AWS_SECRET") || strings.Contains(ea+eb, "HOME=/root") {
		t.Errorf("a task got what it was not granted:\na:\n%s\nb:\n%s", ea, eb)
	}
	// --secret wins over the environment.
	secret := filepath.Join(dir, "hf.env")
	os.WriteFile(secret, []byte("# the Hub token\nHF_TOKEN=from-file\n"), 0o600)
	vals, err := ReadSecretFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	if ea, _, err = run(Options{Secrets: map[string]map[string]string{"hf-secret": vals}}); err != nil || !strings.Contains(ea, "HF_TOKEN=from-file\n") {
		t.Errorf("with --secret: %v\n%s", err, ea)
	}
	// Without it anywhere, nothing starts.
	local = local[:2]
	ea, eb, err = run(Options{})
	if err == nil || !strings.Contains(err.Error(), "task a: secret hf-secret key HF_TOKEN") || ea != "" || eb != "" {
		t.Errorf("missing secret: err %v, task ran: %q", err, ea)
	}
}

// TestRetryKeepsClaim: a task that fails is run again after its policy's
// backoff, with fresh outputs and the same claim, so that it can resume
// from what the failed attempt left there.
func TestRetryKeepsClaim(t *testing.T) {
	f := newFixture(t)
	// finetune's stand-in counts its attempts in the checkpoint directory
	// and dies by SIGKILL on the first.
	os.WriteFile(filepath.Join(f.bin, "finetune"), []byte(`#!/bin/sh
ckpt=""; prev=""
for a in "$@"; do [ "$prev" = "--checkpoint-dir" ] && ckpt="$a"; prev="$a"; done
echo x >> "$ckpt/attempts"
if [ "$(wc -l < "$ckpt/attempts")" -lt 2 ]; then kill -9 $$; fi
exec "$(dirname "$0")/fetch" "$@"
`), 0o755)
	res, out, err := f.run(t, Options{RunID: "r1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if tr := res.Tasks[3]; tr.Name != "finetune" || tr.Attempts != 2 || tr.Status != Succeeded {
		t.Errorf("finetune = %+v", tr)
	}
	if !strings.Contains(out, "[finetune] attempt 1 of 4 failed (signal: killed); retrying in 1ms") {
		t.Errorf("no retry note:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(f.work, "r1", "finetune", "task.attempt1.log")); err != nil {
		t.Errorf("the failed attempt's log: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, backoff(10*time.Second, 2, 5*time.Minute, n))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoffs %v, want %v", got, want)
	}
}

// TestExistingClaimOutlivesTheRun: compiled with an existing claim
// (pipeline parameter checkpoint_pvc), the pipeline creates and deletes no
// claim, and what finetune leaves on it is there for the next run.
func TestExistingClaimOutlivesTheRun(t *testing.T) {
	f := newFixture(t)
	os.WriteFile(filepath.Join(f.bin, "finetune"), []byte(`#!/bin/sh
ckpt=""; prev=""
for a in "$@"; do [ "$prev" = "--checkpoint-dir" ] && ckpt="$a"; prev="$a"; done
echo x >> "$ckpt/runs"
exec "$(dirname "$0")/fetch" "$@"
`), 0o755)
	c, err := kfp.Compile(finetune.New(finetune.Options{CheckpointClaim: "team-ckpt"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		var out bytes.Buffer
		res, err := Run(context.Background(), c, Options{WorkDir: f.work, RunID: id, BinDir: f.bin, Out: &out, Env: f.env, PassEnv: []string{"FAKE_LOG"}})
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if len(res.Tasks) != 4 {
			t.Errorf("tasks = %+v, want fetch, tokenize, finetune, upload", res.Tasks)
		}
	}
	b, err := os.ReadFile(filepath.Join(f.work, ".claims", "team-ckpt", "runs"))
	if err != nil || string(b) != "x\nx\n" {
		t.Errorf("the claim holds %q (%v), want both runs' marks", b, err)
	}
	// Another claim by parameter, per run.
	var out bytes.Buffer
	if _, err := Run(context.Background(), c, Options{WorkDir: f.work, RunID: "r3", BinDir: f.bin, Out: &out, Env: f.env, PassEnv: []string{"FAKE_LOG"},
		Params: map[string]string{"checkpoint_pvc": "other"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.work, ".claims", "other", "runs")); err != nil {
		t.Errorf("checkpoint_pvc=other: %v", err)
	}
}
