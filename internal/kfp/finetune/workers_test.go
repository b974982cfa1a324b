package finetune

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kfllm/kfllm/internal/distjob"
	"github.com/kfllm/kfllm/internal/kfp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// The jobs the GPU variant of the pipeline launches with workers=2, one per
// distributed_runtime; manifests/validate decodes them strictly into the
// operators' own Go types and runs the training operator's admission check.
const (
	pytorchJobGolden = "../testdata/workers_pytorchjob.json"
	trainJobGolden   = "../testdata/workers_trainjob.json"
)

// Sample values for what KFP fills in at run time.
const (
	sampleClaim     = "run-7f3a-kfllm-checkpoints"
	sampleNamespace = "kubeflow-user-example-com"
	samplePod       = "kfllm-finetune-x7k2p-system-container-impl-1234567890"
	samplePodUID    = "0b6e3c1a-5f2d-4c89-9a57-2d1e8f6b4c30"
)

// TestWorkersCompileIntoJobs resolves the compiled finetune task's command
// line as the KFP launcher would for a run with workers=2 (the defaults
// otherwise, the claim the run created, sample artifact paths) and plans
// the job its launcher creates: the flags reach internal/distjob, the
// training flags pass to the ranks with the artifact paths moved to the
// shared claim, and the job matches the golden files.
func TestWorkersCompileIntoJobs(t *testing.T) {
	for golden, rt := range map[string]distjob.Runtime{pytorchJobGolden: distjob.PyTorchJob, trainJobGolden: distjob.TrainJob} {
		t.Run(string(rt), func(t *testing.T) {
			args := resolvedFinetuneArgs(t, New(gpuOptions()), map[string]any{WorkersParam: 2, RuntimeParam: string(rt)})
			job, rank := splitLauncherFlags(t, args)
			if job.Workers != 2 || job.Runtime != string(rt) || job.Claim != "" {
				t.Fatalf("launcher flags: workers %d, runtime %q, claim %q", job.Workers, job.Runtime, job.Claim)
			}
			// The launcher finds the claim mounted at the checkpoint
			// directory in its own pod: passing the run's claim name as an
			// input would make finetune's cache key differ on every run.
			job.Claim = sampleClaim
			p, err := job.Plan(rank, CheckpointDir, distjob.Env{Namespace: sampleNamespace, PodName: samplePod, PodUID: samplePodUID})
			if err != nil {
				t.Fatal(err)
			}
			if p.Spec.Image != (Images{}).Image("finetune") || p.Spec.Command[0] != BinDir+"finetune" {
				t.Errorf("job runs %s %v, want the finetune image and entrypoint", p.Spec.Image, p.Spec.Command)
			}
			for _, a := range p.Spec.Args {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if job.Owns(name) {
					t.Errorf("rank argument %s is a launcher flag", a)
				}
				if strings.Contains(a, "/minio/") {
					t.Errorf("rank argument %s is a path of the launcher's pod, not of the shared claim", a)
				}
			}
			got, err := p.Spec.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("job differs from %s (go test -update to accept) (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestWorkersDefaultIsOneProcess: with the default workers=1 the task
// trains in its own pod; the launcher flags it gets say so.
func TestWorkersDefaultIsOneProcess(t *testing.T) {
	job, _ := splitLauncherFlags(t, resolvedFinetuneArgs(t, New(Options{}), nil))
	if job.Workers != 1 {
		t.Errorf("default workers = %d, want 1", job.Workers)
	}
	if _, err := distjob.ParseRuntime(job.Runtime); err != nil {
		t.Errorf("default distributed_runtime: %v", err)
	}
}

var placeholder = regexp.MustCompile(`\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([a-z_-]+)'\](\.path)?\}\}`)

// resolvedFinetuneArgs compiles p and fills in the finetune task's
// placeholders: parameters from the pipeline's defaults (overridden by
// params), artifacts with sample paths under
// /minio as the KFP launcher's.
func resolvedFinetuneArgs(t *testing.T, p *kfp.Pipeline, params map[string]any) []string {
	t.Helper()
	c, err := kfp.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	root := c.Spec.GetRoot()
	task := root.GetDag().GetTasks()["finetune"]
	exec := c.Spec.GetDeploymentSpec().GetFields()["executors"].GetStructValue().GetFields()["exec-finetune"]
	container := exec.GetStructValue().GetFields()["container"].GetStructValue()
	value := func(input string) string {
		in := task.GetInputs().GetParameters()[input]
		if in == nil {
			t.Fatalf("finetune input %q is not wired", input)
		}
		name := in.GetComponentInputParameter()
		var v *structpb.Value
		if o, ok := params[name]; ok {
			v, err = structpb.NewValue(o)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			v = root.GetInputDefinitions().GetParameters()[name].GetDefaultValue()
		}
		return render(t, v)
	}
	var args []string
	for _, a := range container.GetFields()["args"].GetListValue().GetValues() {
		if a.GetStringValue() == "{{$}}" {
			args = append(args, `{"outputs":{"outputFile":"/tmp/kfp_outputs/output_metadata.json"}}`)
			continue
		}
		s := placeholder.ReplaceAllStringFunc(a.GetStringValue(), func(m string) string {
			g := placeholder.FindStringSubmatch(m)
			if g[2] == "artifacts" {
				return "/minio/mlpipeline/v2/artifacts/kfllm-finetune/run/finetune/" + g[3]
			}
			return value(g[3])
		})
		if strings.Contains(s, "{{") {
			t.Fatalf("unresolved placeholder in %q", s)
		}
		args = append(args, s)
	}
	return args
}

// render writes a parameter as the KFP launcher puts it in a command line:
// strings as they are, numbers and booleans as text, lists and structs as
// JSON.
func render(t *testing.T, v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	default:
		b, err := protojson.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var compact any
		if err := json.Unmarshal(b, &compact); err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(compact)
		return string(b)
	}
}

// splitLauncherFlags parses a finetune command line ("--flag value" and
// "--flag=value") into the launcher's flags and the training flags.
func splitLauncherFlags(t *testing.T, args []string) (*distjob.Flags, []distjob.Flag) {
	t.Helper()
	job := &distjob.Flags{}
	fs := flag.NewFlagSet("finetune", flag.ContinueOnError)
	job.Register(fs)
	var rank []distjob.Flag
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Fatalf("argument %d %q is not a flag", i, args[i])
		}
		name, val, hasVal := strings.Cut(name, "=")
		if !hasVal {
			if i+1 >= len(args) {
				t.Fatalf("flag --%s has no value", name)
			}
			i++
			val = args[i]
		}
		if job.Owns(name) {
			if fs.Lookup(name) == nil {
				continue // not the launcher's, and not for the ranks (--executor-input)
			}
			if err := fs.Set(name, val); err != nil {
				t.Fatal(fmt.Errorf("launcher flag --%s: %w", name, err))
			}
			continue
		}
		rank = append(rank, distjob.Flag{Name: name, Value: val})
	}
	return job, rank
}
