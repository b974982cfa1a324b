package finetune

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Written by scripts/kfp_backend_check (its own Go module).
const backendCheck = "../testdata/kfp_backend_check.json"

// TestKFPBackendAcceptsOurYAML asserts the recorded result of running the
// KFP API server's own code (backend of 2023-12, the version pinned in
// go.mod) on our compiled YAML: the upload path parsed it as a v2 pipeline,
// the run path compiled it and its platform spec into an Argo Workflow, the
// driver steps of fetch, finetune and upload carry hf-secret, and finetune's
// container carries the legacy resource fields the driver turns into
// requests and limits (GPU included), and the server's list-request parsing
// turns pipeline run's name filter into a name match. The sha256 ties the record to the
// YAML: change the pipeline and the check must be rerun.
func TestKFPBackendAcceptsOurYAML(t *testing.T) {
	b, err := os.ReadFile(backendCheck)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Backend      string            `json:"kfp_backend"`
		Input        string            `json:"input"`
		SHA256       string            `json:"sha256"`
		Parsed       bool              `json:"parsed"`
		IsV2         bool              `json:"is_v2"`
		PipelineName string            `json:"pipeline_name"`
		Compiled     bool              `json:"compiled_to_argo"`
		Templates    []string          `json:"argo_templates"`
		Executors    []string          `json:"executors"`
		Secrets      []string          `json:"executors_with_hf_secret"`
		Resources    json.RawMessage   `json:"finetune_resources"`
		FilterSQL    map[string]string `json:"name_filter_sql"`
		Error        string            `json:"error"`
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("read %s: %v", backendCheck, err)
	}
	if !rec.Parsed || !rec.IsV2 || !rec.Compiled || rec.Error != "" {
		t.Fatalf("the KFP backend did not accept our YAML: %+v", rec)
	}
	if want := sha256Hex(compiled(t)); rec.SHA256 != want {
		t.Errorf("backend check ran on YAML %s, ours is now %s: rerun scripts/kfp_backend_check", rec.SHA256, want)
	}
	if rec.PipelineName != Name {
		t.Errorf("pipeline name = %q", rec.PipelineName)
	}
	if diff := cmp.Diff([]string{"fetch", "finetune", "tokenize", "upload"}, rec.Executors); diff != "" {
		t.Errorf("executors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fetch", "finetune", "upload"}, rec.Secrets); diff != "" {
		t.Errorf("executors given hf-secret (-want +got):\n%s", diff)
	}
	// The list filter pipeline run sends (internal/kfp/remote nameFilter)
	// becomes a name match in the server's SQL for all three listings.
	for _, kind := range []string{"pipelines", "pipeline_versions", "experiments"} {
		if want := "SELECT * FROM t WHERE " + kind + ".Name = ? [kfllm-finetune]"; rec.FilterSQL[kind] != want {
			t.Errorf("%s filter became %q, want %q", kind, rec.FilterSQL[kind], want)
		}
	}
	var res struct {
		Accelerator struct{ Count, Type string }
		CPULimit    float64 `json:"cpuLimit"`
		CPURequest  float64 `json:"cpuRequest"`
		MemoryLimit float64 `json:"memoryLimit"`
		MemRequest  float64 `json:"memoryRequest"`
	}
	if err := json.Unmarshal(rec.Resources, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accelerator.Type != "nvidia.com/gpu" || res.Accelerator.Count != "1" || res.CPULimit != 8 || res.CPURequest != 4 || res.MemoryLimit != 32 || res.MemRequest != 16 {
		t.Errorf("finetune resources the driver gets: %s", rec.Resources)
	}
}
