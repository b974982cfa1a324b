// Command kfp_backend_check feeds a compiled pipeline YAML to the KFP API
// server's own code (github.com/kubeflow/pipelines backend at the version
// kfllm pins): the upload path's template parser, then the run path's
// compilation of the IR and its platform spec into an Argo Workflow, with run
// parameters. It records what the server saw as JSON, which
// internal/kfp/finetune's TestKFPBackendAcceptsOurYAML asserts.
//
// It then reads each task's Kubernetes config as the driver's main does
// (jsonpb into the backend's own KubernetesExecutorConfig, unknown fields an
// error), records the placeholders in each executor's arguments as the
// driver receives them (the launcher resolves {{$}} and the output_file
// placeholders), and reads the files given after the YAML as the v2
// launcher does: a FILE.json as the executor output (launcher_v2.go
// getExecutorOutputFile: protojson into ExecutorOutput; output parameters as
// text through metadata.PbValueToText; artifact metadata into MLMD custom
// properties through metadata.StructValueToMLMDValue, what RecordArtifact
// stores and the KFP UI reads), a directory as output parameter files
// (collectOutputParameters: each file's text through metadata.TextToPbValue
// as a STRING).
//
// It is its own Go module so that the backend's dependencies (Argo,
// Kubernetes client libraries) stay out of kfllm's go.mod.
//
//	cd scripts/kfp_backend_check && go run . ../../internal/kfp/testdata/kfllm-finetune.yaml [EXECUTOR_OUTPUT.json|PARAMETER_DIR...] > ../../internal/kfp/testdata/kfp_backend_check.json
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/Masterminds/squirrel"
	wfapi "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/golang/protobuf/jsonpb"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	apiv2beta1 "github.com/kubeflow/pipelines/backend/api/v2beta1/go_client"
	"github.com/kubeflow/pipelines/backend/src/apiserver/filter"
	"github.com/kubeflow/pipelines/backend/src/apiserver/list"
	"github.com/kubeflow/pipelines/backend/src/apiserver/model"
	"github.com/kubeflow/pipelines/backend/src/apiserver/template"
	"github.com/kubeflow/pipelines/backend/src/v2/component"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	pb "github.com/kubeflow/pipelines/third_party/ml-metadata/go/ml_metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// runParams are the run's parameters: two of the training ones and the GPU
// scheduling ones (`pipeline run --param node_selector=JSON ...`).
const runParams = `{"hf_repo": "someone/model", "epochs": 2, "accelerator": "nvidia.com/gpu",` +
	` "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},` +
	` "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}`

// newerFields are the KubernetesExecutorConfig fields that take a value the
// driver resolves at run time, added to kubernetes_executor_config.proto by
// kubeflow/pipelines#11621 (2025-02) and read by the driver from KFP 2.5:
// secretAsEnv[].secretNameParameter, pvcMount[].pvcNameParameter,
// nodeSelector.nodeSelectorJson, tolerations[].tolerationJson.
func stripNewerFields(cfg map[string]any) []string {
	seen := map[string]bool{}
	drop := func(m map[string]any, key string) {
		if _, ok := m[key]; ok {
			delete(m, key)
			seen[key] = true
		}
	}
	each := func(key string, f func(map[string]any)) {
		l, _ := cfg[key].([]any)
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				f(m)
			}
		}
	}
	each("secretAsEnv", func(m map[string]any) { drop(m, "secretNameParameter") })
	each("pvcMount", func(m map[string]any) { drop(m, "pvcNameParameter") })
	if ns, ok := cfg["nodeSelector"].(map[string]any); ok {
		drop(ns, "nodeSelectorJson")
	}
	each("tolerations", func(m map[string]any) { drop(m, "tolerationJson") })
	return keys(seen)
}

// readK8sConfig reads a driver step's Kubernetes config as the driver's main
// does (jsonpb, unknown fields an error).
func readK8sConfig(k8s string) string {
	err := jsonpb.UnmarshalString(k8s, &kubernetesplatform.KubernetesExecutorConfig{})
	if err == nil {
		return "ok"
	}
	var m map[string]any
	if json.Unmarshal([]byte(k8s), &m) != nil {
		return err.Error()
	}
	stripped := stripNewerFields(m)
	b, _ := json.Marshal(m)
	if len(stripped) == 0 || jsonpb.UnmarshalString(string(b), &kubernetesplatform.KubernetesExecutorConfig{}) != nil {
		return err.Error()
	}
	return fmt.Sprintf("ok without %s (%v)", strings.Join(stripped, ", "), err)
}

// executorOutcome is what the launcher makes of one executor output file.
type executorOutcome struct {
	Parameters map[string]string `json:"parameters,omitempty"`
	// Artifact metadata as MLMD custom properties: key -> "double 0.98".
	Artifacts map[string]map[string]string `json:"artifacts,omitempty"`
	Error     string                       `json:"error,omitempty"`
}

type record struct {
	Backend        string          `json:"kfp_backend"`
	Input          string          `json:"input"`
	SHA256         string          `json:"sha256"`
	Parsed         bool            `json:"parsed"`
	IsV2           bool            `json:"is_v2"`
	PipelineName   string          `json:"pipeline_name"`
	Compiled       bool            `json:"compiled_to_argo"`
	Templates      []string        `json:"argo_templates"`
	Executors      []string        `json:"executors"`
	SecretEnvFor   []string        `json:"executors_with_hf_secret"`
	FinetuneLimits json.RawMessage `json:"finetune_resources"`
	// The finetune driver step's kubernetes-config argument, and for every
	// driver step whether the driver's jsonpb reading of it succeeds.
	// A config the driver's protos reject is read again without the fields
	// that take a value resolved at run time (newerFields): "ok without F"
	// says the rest of it reads.
	FinetuneK8s   json.RawMessage   `json:"finetune_kubernetes_config"`
	K8sConfigRead map[string]string `json:"kubernetes_config_read"`
	// The run's parameters as the root DAG driver gets them.
	RuntimeConfig json.RawMessage `json:"root_runtime_config"`
	// Driver steps of kfp-kubernetes' PVC components, and the tasks' retry
	// policies as the Argo Workflow carries them (retryStrategy).
	PVCSteps        []string          `json:"pvc_steps"`
	RetryStrategies map[string]string `json:"argo_retry_strategies"`
	// The arguments of each executor that hold a placeholder, as the driver
	// gets them.
	Placeholders map[string][]string `json:"executor_placeholder_args"`
	// The executor output files and output parameter files, read as the
	// launcher reads them.
	LauncherOutputFile string                     `json:"launcher_output_file"`
	ExecutorOutputs    map[string]executorOutcome `json:"executor_outputs"`
	// The v2beta1 list filter `pipeline run` sends (internal/kfp/remote
	// nameFilter), through the server's list-request parsing, as SQL.
	FilterSQL map[string]string `json:"name_filter_sql"`
	Error     string            `json:"error"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kfp_backend_check PIPELINE.yaml [EXECUTOR_OUTPUT.json...]")
		os.Exit(2)
	}
	rec, err := check(os.Args[1])
	if err == nil {
		rec.LauncherOutputFile = component.OutputMetadataFilepath
		rec.ExecutorOutputs = map[string]executorOutcome{}
		for _, p := range os.Args[2:] {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				rec.ExecutorOutputs[filepath.Base(p)] = readParameterFiles(p)
				continue
			}
			rec.ExecutorOutputs[filepath.Base(p)] = readExecutorOutput(p)
		}
	}
	if err != nil {
		rec.Error = err.Error()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(rec)
	if err != nil {
		os.Exit(1)
	}
}

func check(path string) (*record, error) {
	rec := &record{Input: filepath.Base(path)}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/kubeflow/pipelines" {
				rec.Backend = d.Version
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	sum := sha256.Sum256(b)
	rec.SHA256 = hex.EncodeToString(sum[:])

	// Upload: what POST /apis/v2beta1/pipelines/upload does with the file.
	tmpl, err := template.New(b)
	if err != nil {
		return rec, fmt.Errorf("template.New: %w", err)
	}
	rec.Parsed, rec.IsV2 = true, tmpl.IsV2()
	rec.PipelineName = tmpl.V2PipelineName()

	// Run: what POST /apis/v2beta1/runs compiles, with two parameters set.
	run := &model.Run{
		DisplayName: "check",
		Namespace:   "kubeflow-user-example-com",
		RunDetails:  model.RunDetails{},
		PipelineSpec: model.PipelineSpec{
			RuntimeConfig: model.RuntimeConfig{Parameters: runParams},
		},
	}
	spec, err := tmpl.RunWorkflow(run, template.RunWorkflowOptions{RunId: "00000000-0000-0000-0000-000000000001"})
	if err != nil {
		return rec, fmt.Errorf("RunWorkflow: %w", err)
	}
	wf, ok := spec.(interface{ ToStringForStore() string })
	if !ok {
		return rec, fmt.Errorf("execution spec %T is not an Argo workflow", spec)
	}
	var w wfapi.Workflow
	if err := json.Unmarshal([]byte(wf.ToStringForStore()), &w); err != nil {
		return rec, fmt.Errorf("read workflow: %w", err)
	}
	rec.Compiled = true
	execs := map[string]bool{}
	secrets := map[string]bool{}
	rec.K8sConfigRead = map[string]string{}
	rec.RetryStrategies = map[string]string{}
	for _, t := range w.Spec.Templates {
		rec.Templates = append(rec.Templates, t.Name)
		if t.RetryStrategy != nil {
			b, _ := json.Marshal(t.RetryStrategy)
			rec.RetryStrategies["template "+t.Name] = string(b)
		}
		if t.DAG != nil {
			for _, task := range t.DAG.Tasks {
				if task.ContinueOn != nil {
					b, _ := json.Marshal(task.ContinueOn)
					rec.RetryStrategies["task "+task.Name+" continueOn"] = string(b)
				}
			}
		}
	}
	// The driver receives each task's container spec and Kubernetes config
	// as JSON arguments of the DAG's driver steps, by reference to workflow
	// parameters or annotations ({{workflow.annotations.KEY}}).
	wfParams := map[string]string{}
	for _, p := range w.Spec.Arguments.Parameters {
		if p.Value != nil {
			wfParams["{{workflow.parameters."+p.Name+"}}"] = p.Value.String()
		}
	}
	for k, v := range w.Annotations {
		wfParams["{{workflow.annotations."+k+"}}"] = v
	}
	resolve := func(s string) string {
		if v, ok := wfParams[s]; ok {
			return v
		}
		return s
	}
	for _, t := range w.Spec.Templates {
		if t.DAG == nil {
			continue
		}
		for _, task := range t.DAG.Tasks {
			var container, k8s string
			for _, p := range task.Arguments.Parameters {
				if p.Value == nil {
					continue
				}
				switch p.Name {
				case "runtime-config":
					rec.RuntimeConfig = json.RawMessage(resolve(p.Value.String()))
				case "container":
					container = resolve(p.Value.String())
				case "kubernetes-config":
					k8s = resolve(p.Value.String())
				}
			}
			if container == "" {
				continue
			}
			name := strings.TrimSuffix(task.Name, "-driver")
			execs[name] = true
			if strings.Contains(container, "argostub/") {
				rec.PVCSteps = append(rec.PVCSteps, name)
			}
			if k8s != "" {
				rec.K8sConfigRead[name] = readK8sConfig(k8s)
			}
			if name == "finetune" && k8s != "" {
				rec.FinetuneK8s = json.RawMessage(k8s)
			}
			if strings.Contains(k8s, `"secretName":"hf-secret"`) || strings.Contains(k8s, `"secret_name":"hf-secret"`) {
				secrets[name] = true
			}
			var c struct {
				Args      []string        `json:"args"`
				Resources json.RawMessage `json:"resources"`
			}
			json.Unmarshal([]byte(container), &c)
			if name == "finetune" {
				rec.FinetuneLimits = c.Resources
			}
			for _, a := range c.Args {
				if strings.Contains(a, "{{$") {
					if rec.Placeholders == nil {
						rec.Placeholders = map[string][]string{}
					}
					rec.Placeholders[name] = append(rec.Placeholders[name], a)
				}
			}
		}
	}
	rec.FilterSQL = map[string]string{}
	for kind, l := range map[string]list.Listable{"pipelines": &model.Pipeline{}, "pipeline_versions": &model.PipelineVersion{}, "experiments": &model.Experiment{}} {
		q, err := filterSQL(l, `{"predicates":[{"key":"display_name","operation":"EQUALS","stringValue":"kfllm-finetune"}]}`)
		if err != nil {
			return rec, fmt.Errorf("%s filter: %w", kind, err)
		}
		rec.FilterSQL[kind] = q
	}
	sort.Strings(rec.PVCSteps)
	rec.Executors = keys(execs)
	rec.SecretEnvFor = keys(secrets)
	sort.Strings(rec.Templates)
	return rec, nil
}

// readExecutorOutput does with path what the launcher does with its
// executor output file after the user program exits.
func readExecutorOutput(path string) executorOutcome {
	var out executorOutcome
	b, err := os.ReadFile(path)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	eo := &pipelinespec.ExecutorOutput{
		ParameterValues: map[string]*structpb.Value{},
		Artifacts:       map[string]*pipelinespec.ArtifactList{},
	}
	if err := protojson.Unmarshal(b, eo); err != nil {
		out.Error = fmt.Sprintf("failed to unmarshall ExecutorOutput in file %q: %v", path, err)
		return out
	}
	for name, v := range eo.ParameterValues {
		text, err := metadata.PbValueToText(v)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		if out.Parameters == nil {
			out.Parameters = map[string]string{}
		}
		out.Parameters[name] = text
	}
	for name, l := range eo.Artifacts {
		if len(l.Artifacts) == 0 || l.Artifacts[0].Metadata == nil {
			continue
		}
		props := map[string]string{}
		for k, v := range l.Artifacts[0].Metadata.Fields {
			mv, err := metadata.StructValueToMLMDValue(v)
			if err != nil {
				out.Error = err.Error()
				return out
			}
			switch x := mv.Value.(type) {
			case *pb.Value_DoubleValue:
				props[k] = fmt.Sprintf("double %v", x.DoubleValue)
			case *pb.Value_StringValue:
				props[k] = fmt.Sprintf("string %q", x.StringValue)
			case *pb.Value_IntValue:
				props[k] = fmt.Sprintf("int %d", x.IntValue)
			default:
				props[k] = fmt.Sprintf("%T", mv.Value)
			}
		}
		if out.Artifacts == nil {
			out.Artifacts = map[string]map[string]string{}
		}
		out.Artifacts[name] = props
	}
	return out
}

// readParameterFiles does with each file in dir what the launcher's
// collectOutputParameters does with a STRING output parameter's file.
func readParameterFiles(dir string) executorOutcome {
	var out executorOutcome
	entries, err := os.ReadDir(dir)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			out.Error = err.Error()
			return out
		}
		v, err := metadata.TextToPbValue(string(b), pipelinespec.ParameterType_STRING)
		if err != nil {
			out.Error = fmt.Sprintf("failed to read output parameter name=%q: %v", e.Name(), err)
			return out
		}
		text, err := metadata.PbValueToText(v)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		if out.Parameters == nil {
			out.Parameters = map[string]string{}
		}
		out.Parameters[e.Name()] = text
	}
	return out
}

// filterSQL does what the API server's validatedListOptions does with a
// v2beta1 filter (jsonpb into api.Filter, filter.New, list.NewOptions) and
// returns the WHERE clause it becomes.
func filterSQL(l list.Listable, encoded string) (string, error) {
	f := &apiv2beta1.Filter{}
	if err := jsonpb.UnmarshalString(encoded, f); err != nil {
		return "", err
	}
	nf, err := filter.New(f)
	if err != nil {
		return "", err
	}
	opts, err := list.NewOptions(l, 10, "", nf)
	if err != nil {
		return "", err
	}
	sql, args, err := opts.AddFilterToSelect(squirrel.Select("*").From("t")).ToSql()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %v", sql, args), nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
