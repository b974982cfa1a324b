package finetune

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/testing/protocmp"
)

var update = flag.Bool("update", false, "rewrite testdata/kfllm-finetune.yaml")

const (
	oursGolden = "../testdata/kfllm-finetune.yaml"
	// Written by scripts/kfp_golden.py with the KFP SDK 2.14.3 + kfp-kubernetes 2.14.3.
	sdkGolden = "../testdata/kfp_sdk_golden.yaml"
	// Written by scripts/kfp_load_check.py.
	loadCheck = "../testdata/kfp_load_check.json"
)

func compiled(t *testing.T) []byte {
	t.Helper()
	c, err := kfp.Compile(Pipeline(Images{}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kfp.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oursGPUGolden is the GPU-scheduling variant (gpuOptions), what
// `pipeline compile --node-selector cloud.google.com/gke-accelerator=nvidia-l4
// --toleration nvidia.com/gpu=present:NoSchedule ...` writes.
const oursGPUGolden = "../testdata/kfllm-finetune-gpu.yaml"

func TestGolden(t *testing.T) {
	for golden, o := range map[string]Options{oursGolden: {}, oursGPUGolden: gpuOptions()} {
		got, err := YAML(o)
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
			t.Errorf("compiled pipeline differs from %s (go test -update to accept) (-want +got):\n%s", golden, diff)
		}
	}
}

// gpuOptions is the GPU-scheduling variant scripts/kfp_golden.py --gpu
// compiles: a node pool selected by label and tainted for GPUs.
func gpuOptions() Options {
	secs := int64(300)
	return Options{GPU: GPU{
		Accelerator:  "nvidia.com/gpu",
		NodeSelector: map[string]string{"cloud.google.com/gke-accelerator": "nvidia-l4"},
		Tolerations: []kfp.Toleration{
			{Key: "nvidia.com/gpu", Operator: "Equal", Value: "present", Effect: "NoSchedule"},
			{Key: "cloud.google.com/gke-preemptible", Operator: "Exists", Effect: "NoExecute", Seconds: &secs},
		},
	}}
}

// TestMatchesKFPSDK compares our IR with what the KFP Python SDK compiles
// from the same pipeline (scripts/kfp_golden.py, with kfp-kubernetes):
// components, executors' images, commands and argument placeholders,
// resources, the DAG, artifact and parameter wiring, parameters with
// defaults, caching, retry policies, the pipeline's outputs, and the
// platform spec (hf-secret, the checkpoint claim's CreatePVC / mount_pvc /
// DeletePVC, node selector and tolerations). Both are read into the pinned
// protos, so the comparison is structural (8 and 8.0 are the same number);
// only sdkVersion may differ, and the descriptions kfp-kubernetes gives its
// PVC components' inputs (documentation, which the backend does not read).
func TestMatchesKFPSDK(t *testing.T) {
	for _, tc := range []struct {
		golden string
		o      Options
	}{
		{sdkGolden, Options{}},
		{"../testdata/kfp_sdk_golden_gpu.yaml", gpuOptions()},
		{"../testdata/kfp_sdk_golden_claim.yaml", Options{CheckpointClaim: "kfllm-checkpoints"}},
	} {
		t.Run(filepath.Base(tc.golden), func(t *testing.T) {
			sdkYAML, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatal(err)
			}
			sdk, err := kfp.Unmarshal(sdkYAML)
			if err != nil {
				t.Fatalf("read the KFP SDK's YAML: %v", err)
			}
			c, err := kfp.Compile(New(tc.o))
			if err != nil {
				t.Fatal(err)
			}
			b, err := kfp.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := kfp.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if sdk.Spec.SdkVersion != "kfp-2.14.3" || ours.Spec.SdkVersion != kfp.SDKVersion {
				t.Errorf("sdkVersion: sdk %q, ours %q", sdk.Spec.SdkVersion, ours.Spec.SdkVersion)
			}
			sdk.Spec.SdkVersion, ours.Spec.SdkVersion = "", ""
			ignore := protocmp.IgnoreFields(&pipelinespec.ComponentInputsSpec_ParameterSpec{}, "description")
			if diff := cmp.Diff(sdk.Spec, ours.Spec, protocmp.Transform(), ignore); diff != "" {
				t.Errorf("pipeline spec differs from the KFP SDK's (-sdk +ours):\n%s", diff)
			}
			if diff := cmp.Diff(sdk.Platform, ours.Platform, protocmp.Transform()); diff != "" {
				t.Errorf("platform spec differs from the KFP SDK's (-sdk +ours):\n%s", diff)
			}
		})
	}
}

// TestKFPLoadsOurYAML asserts the recorded result of scripts/kfp_load_check.py:
// the KFP SDK loaded our compiled YAML as a component and compiled a pipeline
// that uses it. The record carries the sha256 of the YAML it checked, so a
// change to the pipeline without rerunning the check fails here.
func TestKFPLoadsOurYAML(t *testing.T) {
	b, err := os.ReadFile(loadCheck)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		KFP        string   `json:"kfp"`
		Input      string   `json:"input"`
		SHA256     string   `json:"sha256"`
		Loaded     bool     `json:"loaded"`
		Name       string   `json:"component_name"`
		Inputs     []string `json:"component_inputs"`
		Compiled   bool     `json:"compiled"`
		OuterTasks []string `json:"outer_tasks"`
		Secrets    []string `json:"outer_secret_executors"`
		GPU        struct {
			Type          string `json:"type"`
			Count         string `json:"count"`
			ResourceType  string `json:"resourceType"`
			ResourceCount string `json:"resourceCount"`
		} `json:"outer_finetune_accelerator"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("read %s: %v", loadCheck, err)
	}
	if !rec.Loaded || !rec.Compiled || rec.Error != "" {
		t.Fatalf("KFP %s did not accept our YAML: %+v", rec.KFP, rec)
	}
	if filepath.Base(rec.Input) != filepath.Base(oursGolden) {
		t.Errorf("checked %s, want %s", rec.Input, oursGolden)
	}
	if want := sha256Hex(compiled(t)); rec.SHA256 != want {
		t.Errorf("load check ran on YAML %s, ours is now %s: rerun scripts/kfp_load_check.py", rec.SHA256, want)
	}
	if diff := cmp.Diff([]string{"exec-fetch", "exec-finetune", "exec-tokenize", "exec-upload"}, rec.Secrets); diff != "" {
		t.Errorf("executors with hf-secret after KFP recompiled (-want +got):\n%s", diff)
	}
	// The accelerator type stays the pipeline parameter's placeholder.
	if rec.GPU.ResourceType != "{{$.inputs.parameters['pipelinechannel--accelerator']}}" || rec.GPU.ResourceCount != "1" ||
		rec.GPU.Count != "1" || rec.GPU.Type != "" {
		t.Errorf("finetune accelerator after KFP recompiled: %+v", rec.GPU)
	}
	var want []string
	c, _ := kfp.Compile(Pipeline(Images{}))
	for n := range c.Spec.Root.InputDefinitions.Parameters {
		want = append(want, n)
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, rec.Inputs); diff != "" {
		t.Errorf("inputs KFP saw (-want +got):\n%s", diff)
	}
}

// BenchmarkCompile is the in-process cost of building and marshalling the
// pipeline (bench/pipeline_compile.sh times the command against the KFP SDK).
func BenchmarkCompile(b *testing.B) {
	for b.Loop() {
		if _, err := YAML(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
