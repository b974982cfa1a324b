package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/kfp/executor"
)

// podRuntime stands in for runc in these tests: it records each container
// and does what the components do, through the container's own view of the
// file system (its mounts and /tmp), so that a path the launcher layout gets
// wrong shows as a missing file. As the components, it writes the executor
// output where package kfp/executor says (the --executor-input's
// outputs.outputFile) and upload's output parameters to the files its
// --commit-sha-output and --repo-url-output name.
type podRuntime struct {
	seen []Container
}

var _ Runtime = (*podRuntime)(nil)

// host maps a container path to the host through c's mounts, the deepest first.
func host(c Container, p string) (string, bool) {
	if rest, ok := strings.CutPrefix(p, "/tmp/"); ok {
		return filepath.Join(c.Tmp, rest), true
	}
	ms := slices.Clone(c.Mounts)
	slices.SortFunc(ms, func(a, b Mount) int { return len(b.Container) - len(a.Container) })
	for _, m := range ms {
		if p == m.Container {
			return m.Host, true
		}
		if rest, ok := strings.CutPrefix(p, m.Container+"/"); ok {
			return filepath.Join(m.Host, rest), true
		}
	}
	return "", false
}

func (r *podRuntime) Run(_ context.Context, c Container) (int, error) {
	r.seen = append(r.seen, c)
	args := c.Argv[1:]
	var (
		in  string
		ein executor.Input
	)
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "--executor-input":
			if err := ein.Set(v); err != nil {
				return 2, err
			}
		case "--commit-sha-output", "--repo-url-output":
			h, ok := host(c, v)
			if !ok {
				return 1, fmt.Errorf("%s %s is on the container's read-only root", args[i], v)
			}
			val := map[string]string{"--commit-sha-output": "c0ffee", "--repo-url-output": "me/model"}[args[i]]
			if err := executor.WriteParamFile(h, val); err != nil {
				return 1, err
			}
		case "--input-dataset", "--model-dir":
			in = v
		case "--output-dataset", "--output-model-dir", "--metrics-output", "--html-output", "--markdown-output", "--checkpoint-dir":
			h, ok := host(c, v)
			if !ok {
				return 1, fmt.Errorf("%s %s is on the container's read-only root", args[i], v)
			}
			if args[i] == "--checkpoint-dir" {
				if err := os.WriteFile(filepath.Join(h, "step-1"), nil, 0o644); err != nil {
					return 1, err
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
				return 1, err
			}
			chain := ""
			if in != "" {
				hin, ok := host(c, in)
				if !ok {
					return 1, fmt.Errorf("input %s is not mounted", in)
				}
				b, err := os.ReadFile(filepath.Join(hin, "chain.txt"))
				if err != nil {
					return 1, fmt.Errorf("input %s: %w", in, err)
				}
				chain = string(b)
			}
			if strings.HasSuffix(args[i], "-dir") || args[i] == "--output-dataset" {
				if err := os.MkdirAll(h, 0o755); err != nil {
					return 1, err
				}
				h = filepath.Join(h, "chain.txt")
			}
			if err := os.WriteFile(h, []byte(chain+filepath.Base(c.Argv[0])+"\n"), 0o644); err != nil {
				return 1, err
			}
		}
	}
	// The executor output of fetch, tokenize and finetune, where the
	// components write it.
	if c.Task != "upload" {
		getenv := func(k string) string {
			for _, e := range c.Env {
				if name, v, _ := strings.Cut(e, "="); name == k {
					return v
				}
			}
			return ""
		}
		p := ein.OutputFile(getenv)
		h, ok := host(c, p)
		if !ok {
			return 1, fmt.Errorf("executor output %s is on the read-only root", p)
		}
		eo := executor.New().Metadata("output_dataset", "records", 3)
		if c.Task == "finetune" {
			eo = executor.New().Metadata("metrics", "eval_loss", 1.5)
		}
		if err := eo.Write(h); err != nil {
			return 1, err
		}
	}
	fmt.Fprintf(c.Out, "ran %s\n", c.Task)
	return 0, nil
}

// TestRunInContainers: under a Runtime, each task gets its image's command
// with the placeholders resolved to the KFP launcher's paths, the artifacts
// bound there (inputs read-only), the claim at its mount path, and only the
// environment its specs grant; the executor output is read where the
// launcher reads it.
func TestRunInContainers(t *testing.T) {
	work := t.TempDir()
	rt := &podRuntime{}
	var out strings.Builder
	res, err := RunFile(context.Background(), pipelineYAML, Options{
		WorkDir: work, RunID: "r1", Params: map[string]string{"hf_repo": "me/model"},
		Env:     []string{"PATH=/usr/bin", "HF_TOKEN=from-env", "AWS_SECRET_ACCESS_KEY=x"},
		Secrets: map[string]map[string]string{"hf-secret": {"HF_TOKEN": "from-file"}},
		Runtime: rt, Out: &out,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(rt.seen) != 4 {
		t.Fatalf("%d containers ran, want fetch, tokenize, finetune, upload", len(rt.seen))
	}
	run := filepath.Join(work, "r1")
	root := regexp.MustCompile(`^/minio/mlpipeline/v2/artifacts/kfllm-finetune/r1/([a-z]+)/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	roots := map[string]string{}
	for _, c := range rt.seen {
		var taskRoot *Mount
		for i, m := range c.Mounts {
			if sm := root.FindStringSubmatch(m.Container); sm != nil && sm[1] == c.Task {
				taskRoot = &c.Mounts[i]
			}
		}
		if taskRoot == nil || taskRoot.ReadOnly || taskRoot.Host != filepath.Join(run, c.Task) {
			t.Fatalf("%s: no writable task root at the launcher's path bound from %s: %+v", c.Task, filepath.Join(run, c.Task), c.Mounts)
		}
		roots[c.Task] = taskRoot.Container
		if want := "ghcr.io/kfllm/kfllm-" + c.Task + ":dev"; c.Image != want || c.Argv[0] != "/usr/local/bin/"+c.Task {
			t.Errorf("%s: image %s command %s, want %s and its own command", c.Task, c.Image, c.Argv[0], want)
		}
		env := strings.Join(c.Env, " ")
		want := regexp.MustCompile(`^HF_TOKEN=from-file KFP_POD_NAME=r1-` + c.Task + ` KFP_POD_UID=[0-9a-f-]{36} METADATA_GRPC_SERVICE_HOST=metadata-grpc-service METADATA_GRPC_SERVICE_PORT=8080$`)
		if !want.MatchString(env) {
			t.Errorf("%s: environment %q, want the pod's and the secret only", c.Task, env)
		}
		if !slices.Contains(c.Scratch, "/minio") || c.Tmp == "" {
			t.Errorf("%s: no /minio emptyDir or /tmp: %+v %q", c.Task, c.Scratch, c.Tmp)
		}
	}
	ft := rt.seen[2]
	if ft.MemoryLimit != 32e9 || rt.seen[3].MemoryLimit != 4e9 {
		t.Errorf("memory limits %d (finetune), %d (upload), want the executors' memoryLimit 32 and 4 G", ft.MemoryLimit, rt.seen[3].MemoryLimit)
	}
	argv := strings.Join(ft.Argv, " ")
	for _, want := range []string{
		"--input-dataset " + roots["tokenize"] + "/output_dataset ",
		"--checkpoint-dir /kfllm/checkpoints ",
		"--output-model-dir " + roots["finetune"] + "/output_model_dir ",
		"--metrics-output " + roots["finetune"] + "/metrics ",
	} {
		if !strings.Contains(argv, want) {
			t.Errorf("finetune argv lacks %q:\n%s", want, argv)
		}
	}
	// The input is a copy, as the launcher downloads it: a change to it
	// does not reach the producer's output.
	in, ok := host(ft, roots["tokenize"]+"/output_dataset")
	if !ok || strings.HasPrefix(in, filepath.Join(run, "tokenize")) {
		t.Errorf("finetune's input at the launcher's path is %q, want a copy: %+v", in, ft.Mounts)
	} else if b, err := os.ReadFile(filepath.Join(in, "chain.txt")); err != nil || string(b) != "fetch\ntokenize\n" {
		t.Errorf("finetune's input copy holds %q, %v", b, err)
	}
	claim := filepath.Join(work, ".claims", "r1-kfllm-checkpoints")
	if !slices.Contains(ft.Mounts, Mount{Host: claim, Container: "/kfllm/checkpoints"}) {
		t.Errorf("finetune's claim is not bound at /kfllm/checkpoints: %+v", ft.Mounts)
	}
	chain, err := os.ReadFile(filepath.Join(run, "finetune", "output_model_dir", "chain.txt"))
	if err != nil || string(chain) != "fetch\ntokenize\nfinetune\n" {
		t.Errorf("artifact chain = %q, %v", chain, err)
	}
	var params map[string]any
	b, _ := os.ReadFile(filepath.Join(run, "outputs.json"))
	if err := json.Unmarshal(b, &params); err != nil || params["commit_sha"] != "c0ffee" {
		t.Errorf("pipeline outputs %s, %v: upload's executor output was not read at the launcher's path", b, err)
	}
	if md := res.Tasks[3].Metadata["metrics"]; res.Tasks[3].Name != "finetune" || md["eval_loss"] != 1.5 {
		t.Errorf("finetune's metrics metadata %v", res.Tasks[3].Metadata)
	}
	if strings.Contains(out.String(), "from-file") {
		t.Error("the secret's value reached the output")
	}
}

// TestRunInContainersKFP215: with the executor output in the task root (KFP
// 2.15 and later: the executor input's outputs.outputFile is
// TASKROOT/output_metadata.json), the components write it there, beside the
// task's output artifacts, and it is read there: finetune's metrics reach the
// run, and upload's commit_sha, written to its output parameter file,
// reaches the pipeline's outputs. With the pipeline spec of before
// --executor-input, the metrics went to /tmp/kfp_outputs, which KFP 2.15
// does not read, and upload failed on a missing output parameter file.
func TestRunInContainersKFP215(t *testing.T) {
	work := t.TempDir()
	rt := &podRuntime{}
	var out strings.Builder
	res, err := RunFile(context.Background(), pipelineYAML, Options{
		WorkDir: work, RunID: "r1", Params: map[string]string{"hf_repo": "me/model"}, Env: []string{},
		Secrets: map[string]map[string]string{"hf-secret": {"HF_TOKEN": "x"}},
		Runtime: rt, Launcher: Launcher{ExecutorOutputInTaskRoot: true}, Out: &out,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if res.Outputs["commit_sha"].GetStringValue() != "c0ffee" || res.Tasks[3].Metadata["metrics"]["eval_loss"] != 1.5 {
		t.Errorf("the executor outputs in the task roots were not read: outputs %v, finetune metadata %v", res.Outputs, res.Tasks[3].Metadata)
	}
	if !strings.Contains(out.String(), "finetune metrics: eval_loss=1.5") {
		t.Errorf("the run does not print finetune's metrics:\n%s", out.String())
	}
	for _, task := range []string{"fetch", "finetune"} {
		if _, err := os.Stat(filepath.Join(work, "r1", task, "output_metadata.json")); err != nil {
			t.Errorf("%s's executor output is not in its task directory: %v", task, err)
		}
	}
	if _, err := os.Stat(filepath.Join(rt.seen[2].Tmp, "kfp_outputs")); err == nil {
		t.Error("finetune wrote to /tmp/kfp_outputs, which KFP 2.15 does not read")
	}
}
