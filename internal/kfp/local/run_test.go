package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/kfp"
)

// The compiled fine-tuning pipeline, as `pipeline compile` writes it.
const pipelineYAML = "../testdata/kfllm-finetune.yaml"

// fakeComponent stands in for the fetch/tokenize/finetune/upload binaries:
// it records its command line and whether HF_TOKEN reached it, copies its
// input dataset/model into its output with its own name appended, writes
// metrics, and fails with exit code 3 when FAKE_FAIL names it.
const fakeComponent = `#!/bin/sh
name=$(basename "$0")
echo "$name $*" >> "$FAKE_LOG"
echo "$name token=${HF_TOKEN:-unset}" >> "$FAKE_LOG"
echo "hello from $name"
echo "to stderr from $name" >&2
if [ "$FAKE_FAIL" = "$name" ]; then
  echo "loading shards"; echo "out of memory"; exit 3
fi
in=""
while [ $# -gt 0 ]; do
  case "$1" in
    --input-dataset|--model-dir) in="$2"; shift ;;
    --output-dataset|--output-model-dir)
      mkdir -p "$2"
      if [ -n "$in" ]; then cat "$in/chain.txt" > "$2/chain.txt"; fi
      echo "$name" >> "$2/chain.txt"; shift ;;
    --metrics-output) echo '{"eval_loss": 1.5}' > "$2"; shift ;;
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
	res, out, err := f.run(t, Options{RunID: "r1", Params: map[string]string{"epochs": "3", "hf_repo": "me/model", "learning_rate": "1e-4"}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	run := filepath.Join(f.work, "r1")
	calls := f.calls(t)
	want := []string{
		"fetch --source hf://datasets/rajpurkar/squad --split train --task qa --output-dataset " + run + "/fetch/output_dataset",
		"fetch token=hf_secret_value",
		"tokenize --input-dataset " + run + "/fetch/output_dataset --tokenizer HuggingFaceTB/SmolLM2-135M --max-length 512 --output-dataset " + run + "/tokenize/output_dataset",
		"tokenize token=unset", // only the tasks the platform spec gives hf-secret see it
		"finetune --input-dataset " + run + "/tokenize/output_dataset --base-model HuggingFaceTB/SmolLM2-135M --epochs 3 --learning-rate 0.0001 --batch-size 8 --lora-r 8 --lora-alpha 16 --max-steps 0 --warmup-steps 0 --seed 42 --qa-eval  --output-model-dir " + run + "/finetune/output_model_dir --metrics-output " + run + "/finetune/metrics --html-output " + run + "/finetune/report --markdown-output " + run + "/finetune/eval_table",
		"finetune token=hf_secret_value",
		"upload --model-dir " + run + "/finetune/output_model_dir --repo me/model",
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
	for _, l := range []string{"[fetch] hello from fetch", "[upload] to stderr from upload", "==> tokenize (2/4)"} {
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
	if got := strings.Join(names, " "); got != "fetch:succeeded tokenize:succeeded finetune:succeeded upload:succeeded" {
		t.Errorf("results = %s", got)
	}
	if !strings.Contains(out, "TASK") || !strings.Contains(out, "upload    succeeded") {
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
	last := res.Tasks[len(res.Tasks)-1]
	if last.Name != "upload" || last.Status != NotRun {
		t.Errorf("upload result = %+v", last)
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
	if _, err := Run(context.Background(), compiled, Options{WorkDir: filepath.Join(dir, "w"), RunID: "r", BinDir: bin, Out: &out, Env: []string{"FAKE_LOG=" + log}}); err != nil {
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
	res, err := RunFile(context.Background(), "../testdata/kfp_sdk_golden.yaml", Options{WorkDir: f.work, RunID: "sdk", BinDir: f.bin, Out: &out, Env: f.env})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Tasks) != 4 || res.Tasks[3].Name != "upload" || res.Tasks[3].Status != Succeeded {
		t.Errorf("results = %+v", res.Tasks)
	}
	if calls := f.calls(t); len(calls) != 8 || !strings.Contains(calls[4], "--learning-rate 0.0002 ") {
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
