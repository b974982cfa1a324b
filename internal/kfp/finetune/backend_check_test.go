package finetune

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kfllm/kfllm/internal/kfp/executor"
)

// Written by scripts/kfp_backend_check (its own Go module), for our default
// YAML and the GPU-scheduling variant.
const (
	backendCheck    = "../testdata/kfp_backend_check.json"
	backendCheckGPU = "../testdata/kfp_backend_check_gpu.json"
)

// backendRecord is what scripts/kfp_backend_check records.
type backendRecord struct {
	Backend         string                     `json:"kfp_backend"`
	Input           string                     `json:"input"`
	SHA256          string                     `json:"sha256"`
	Parsed          bool                       `json:"parsed"`
	IsV2            bool                       `json:"is_v2"`
	PipelineName    string                     `json:"pipeline_name"`
	Compiled        bool                       `json:"compiled_to_argo"`
	Templates       []string                   `json:"argo_templates"`
	Executors       []string                   `json:"executors"`
	Secrets         []string                   `json:"executors_with_hf_secret"`
	Resources       json.RawMessage            `json:"finetune_resources"`
	K8s             json.RawMessage            `json:"finetune_kubernetes_config"`
	K8sRead         map[string]string          `json:"kubernetes_config_read"`
	RuntimeConfig   json.RawMessage            `json:"root_runtime_config"`
	PVCSteps        []string                   `json:"pvc_steps"`
	Retries         map[string]string          `json:"argo_retry_strategies"`
	Placeholders    map[string][]string        `json:"executor_placeholder_args"`
	LauncherFile    string                     `json:"launcher_output_file"`
	ExecutorOutputs map[string]executorOutcome `json:"executor_outputs"`
	FilterSQL       map[string]string          `json:"name_filter_sql"`
	Error           string                     `json:"error"`
}

type executorOutcome struct {
	Parameters map[string]string            `json:"parameters"`
	Artifacts  map[string]map[string]string `json:"artifacts"`
	Error      string                       `json:"error"`
}

func readBackendRecord(t *testing.T, path string, o Options) backendRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec backendRecord
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !rec.Parsed || !rec.IsV2 || !rec.Compiled || rec.Error != "" {
		t.Fatalf("the KFP backend did not accept our YAML: %+v", rec)
	}
	y, err := YAML(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Hex(y); rec.SHA256 != want {
		t.Errorf("backend check %s ran on YAML %s, ours is now %s: rerun scripts/kfp_regen.sh", path, rec.SHA256, want)
	}
	return rec
}

// TestKFPBackendAcceptsOurYAML asserts the recorded result of running the
// KFP backend's own code (2023-12, pinned in scripts/kfp_backend_check/go.mod
// with the pipelinespec of 2025-01 and kubernetes_platform of 2024-07, the
// newest set the Go proxy serves that builds: docs/design.md §10) on our
// compiled YAML and executor outputs:
//   - the API server's upload path parsed it as a v2 pipeline, and its run
//     path compiled it and its platform spec into an Argo Workflow, with
//     driver steps for kfp-kubernetes' CreatePVC and DeletePVC;
//   - the driver steps of fetch, tokenize, finetune and upload carry
//     hf-secret; finetune's carries the claim's mount at the checkpoint
//     directory and the resource fields the driver turns into requests and
//     limits (the GPU's type the accelerator parameter's placeholder); the
//     driver reads every step's Kubernetes config except the fields that
//     take a run-time value (secretNameParameter, pvcNameParameter,
//     nodeSelectorJson, tolerationJson), which its protos predate and the
//     KFP 2.5 driver reads;
//   - the driver gets fetch's, tokenize's and finetune's arguments with the
//     executor input placeholder {{$}} (whose outputs.outputFile says where
//     they write the executor output) and upload's with the output_file
//     placeholders of commit_sha and repo_url, all of which the launcher of
//     this backend, of KFP 2.14 and of 2.15 and later resolves
//     (launcher_v2.go compileCmdAndArgs, getPlaceholders);
//   - the launcher (protojson into ExecutorOutput, then the converters to
//     text and MLMD values) reads finetune's metrics as double custom
//     properties, the KFP UI's scalar metrics, and upload's commit_sha from
//     its output parameter file (TextToPbValue);
//   - the server's list-request parsing turns pipeline run's name filter
//     into a name match.
//
// It also records what this backend does not do: its Argo compiler writes no
// retryStrategy for retryPolicy.
func TestKFPBackendAcceptsOurYAML(t *testing.T) {
	rec := readBackendRecord(t, backendCheck, Options{})
	if rec.PipelineName != Name {
		t.Errorf("pipeline name = %q", rec.PipelineName)
	}
	if diff := cmp.Diff([]string{"createpvc", "deletepvc", "fetch", "finetune", "tokenize", "upload"}, rec.Executors); diff != "" {
		t.Errorf("executors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"createpvc", "deletepvc"}, rec.PVCSteps); diff != "" {
		t.Errorf("PVC steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fetch", "finetune", "tokenize", "upload"}, rec.Secrets); diff != "" {
		t.Errorf("executors given hf-secret (-want +got):\n%s", diff)
	}
	const newer = `ok without secretNameParameter (unknown field "secretNameParameter" in kfp_kubernetes.SecretAsEnv)`
	wantRead := map[string]string{
		"fetch": newer, "tokenize": newer, "upload": newer,
		"finetune": `ok without nodeSelectorJson, pvcNameParameter, secretNameParameter, tolerationJson (unknown field "secretNameParameter" in kfp_kubernetes.SecretAsEnv)`,
	}
	if diff := cmp.Diff(wantRead, rec.K8sRead); diff != "" {
		t.Errorf("the driver reading each step's Kubernetes config (-want +got):\n%s", diff)
	}
	var k8s struct {
		PVCMount []struct {
			MountPath string `json:"mountPath"`
			From      struct {
				Task string `json:"producerTask"`
				Key  string `json:"outputParameterKey"`
			} `json:"taskOutputParameter"`
		} `json:"pvcMount"`
	}
	if err := json.Unmarshal(rec.K8s, &k8s); err != nil || len(k8s.PVCMount) != 1 || k8s.PVCMount[0].MountPath != CheckpointDir ||
		k8s.PVCMount[0].From.Task != "createpvc" || k8s.PVCMount[0].From.Key != "name" {
		t.Errorf("finetune's claim mount the driver gets: %s (%v)", rec.K8s, err)
	}
	if len(rec.Retries) != 0 {
		t.Errorf("this backend now writes retry strategies (update README): %v", rec.Retries)
	}
	if rec.LauncherFile != executor.LauncherPath {
		t.Errorf("this launcher's default executor output is %s, want %s", rec.LauncherFile, executor.LauncherPath)
	}
	wantArgs := map[string][]string{
		"fetch": {executor.Placeholder}, "tokenize": {executor.Placeholder}, "finetune": {executor.Placeholder},
		"upload": {"{{$.outputs.parameters['commit_sha'].output_file}}", "{{$.outputs.parameters['repo_url'].output_file}}"},
	}
	for name, want := range wantArgs {
		for _, w := range want {
			if !slices.Contains(rec.Placeholders[name], w) {
				t.Errorf("%s's arguments as the driver gets them lack %s: %q", name, w, rec.Placeholders[name])
			}
		}
	}
	fin := rec.ExecutorOutputs["finetune.json"]
	for _, k := range []string{"train_loss", "eval_loss", "eval_perplexity", "qa_exact_match_before", "qa_f1_before",
		"qa_exact_match_after", "qa_f1_after", "tokens_per_second", "steps"} {
		if v := fin.Artifacts["metrics"][k]; !strings.HasPrefix(v, "double ") {
			t.Errorf("finetune metric %s becomes MLMD %q, want a double", k, v)
		}
	}
	up := rec.ExecutorOutputs["upload"]
	if fin.Error != "" || up.Error != "" || len(up.Parameters["commit_sha"]) != 40 || up.Parameters["repo_url"] == "" {
		t.Errorf("executor outputs as the launcher reads them: %+v", rec.ExecutorOutputs)
	}
	// The list filter pipeline run sends (internal/kfp/remote nameFilter)
	// becomes a name match in the server's SQL for all three listings.
	for _, kind := range []string{"pipelines", "pipeline_versions", "experiments"} {
		if want := "SELECT * FROM t WHERE " + kind + ".Name = ? [kfllm-finetune]"; rec.FilterSQL[kind] != want {
			t.Errorf("%s filter became %q, want %q", kind, rec.FilterSQL[kind], want)
		}
	}
	var res struct {
		Accelerator struct{ Count, Type, ResourceType, ResourceCount string }
		CPULimit    float64 `json:"cpuLimit"`
		CPURequest  float64 `json:"cpuRequest"`
		MemoryLimit float64 `json:"memoryLimit"`
		MemRequest  float64 `json:"memoryRequest"`
	}
	if err := json.Unmarshal(rec.Resources, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accelerator.ResourceType != "{{$.inputs.parameters['pipelinechannel--accelerator']}}" || res.Accelerator.Type != "" ||
		res.Accelerator.Count != "1" || res.Accelerator.ResourceCount != "1" || res.CPULimit != 8 || res.CPURequest != 4 || res.MemoryLimit != 32 || res.MemRequest != 16 {
		t.Errorf("finetune resources the driver gets: %s", rec.Resources)
	}
}

// TestKFPBackendGPUVariant asserts what the pinned backend makes of the
// GPU-scheduling variant (defaults for a tainted L4 pool) run with other
// scheduling parameters: the run's node_selector and tolerations reach the
// root driver as JSON values, and finetune's driver step is told to take its
// node selector and tolerations from those parameters.
func TestKFPBackendGPUVariant(t *testing.T) {
	rec := readBackendRecord(t, backendCheckGPU, gpuOptions())
	var rc struct {
		Params struct {
			Accelerator  string            `json:"accelerator"`
			NodeSelector map[string]string `json:"node_selector"`
			Tolerations  []map[string]any  `json:"tolerations"`
		} `json:"parameterValues"`
	}
	if err := json.Unmarshal(rec.RuntimeConfig, &rc); err != nil {
		t.Fatalf("root runtime config %s: %v", rec.RuntimeConfig, err)
	}
	if rc.Params.Accelerator != "nvidia.com/gpu" || rc.Params.NodeSelector["cloud.google.com/gke-accelerator"] != "nvidia-tesla-t4" ||
		len(rc.Params.Tolerations) != 1 || rc.Params.Tolerations[0]["key"] != "nvidia.com/gpu" {
		t.Errorf("run parameters the root driver gets: %s", rec.RuntimeConfig)
	}
	var k8s struct {
		NodeSelector struct {
			JSON struct {
				Param string `json:"componentInputParameter"`
			} `json:"nodeSelectorJson"`
		} `json:"nodeSelector"`
		Tolerations []struct {
			JSON struct {
				Param string `json:"componentInputParameter"`
			} `json:"tolerationJson"`
		} `json:"tolerations"`
	}
	if err := json.Unmarshal(rec.K8s, &k8s); err != nil || k8s.NodeSelector.JSON.Param != NodeSelectorParam ||
		len(k8s.Tolerations) != 1 || k8s.Tolerations[0].JSON.Param != TolerationsParam {
		t.Errorf("finetune's scheduling the driver gets: %s (%v)", rec.K8s, err)
	}
	if len(rec.Retries) != 0 {
		t.Errorf("this backend now writes retry strategies (update README): %v", rec.Retries)
	}
}
