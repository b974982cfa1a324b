package executor

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json")

// v1Metrics is finetune's Metrics artifact as train writes it.
const v1Metrics = `{"metrics": [
 {"name": "train_loss", "numberValue": 0.04, "format": "RAW"},
 {"name": "eval_loss", "numberValue": 0.5, "format": "RAW"},
 {"name": "eval_perplexity", "numberValue": 1.6487, "format": "RAW"},
 {"name": "qa_exact_match_before", "numberValue": 0, "format": "RAW"},
 {"name": "qa_f1_before", "numberValue": 0.141, "format": "RAW"},
 {"name": "qa_exact_match_after", "numberValue": 0.98, "format": "RAW"},
 {"name": "qa_f1_after", "numberValue": 0.98, "format": "RAW"},
 {"name": "steps", "numberValue": 30, "format": "RAW"},
 {"name": "tokens_per_second", "numberValue": 812.5, "format": "RAW"}
]}`

// TestFinetuneOutput writes finetune's executor output from its v1 metrics
// file and reads it back as the launcher does: every metric is a number in
// the Metrics artifact's metadata. The file is also the fixture that
// scripts/kfp_backend_check feeds to the KFP backend's own converter.
func TestFinetuneOutput(t *testing.T) {
	dir := t.TempDir()
	mpath := filepath.Join(dir, "metrics")
	if err := os.WriteFile(mpath, []byte(v1Metrics), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "kfp_outputs", "output_metadata.json")
	if err := New().MetricsFile("metrics", mpath).Write(out); err != nil {
		t.Fatal(err)
	}
	got, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	md := got.Artifacts["metrics"].GetArtifacts()[0].GetMetadata().AsMap()
	want := map[string]any{"train_loss": 0.04, "eval_loss": 0.5, "eval_perplexity": 1.6487,
		"qa_exact_match_before": 0.0, "qa_f1_before": 0.141, "qa_exact_match_after": 0.98, "qa_f1_after": 0.98,
		"steps": 30.0, "tokens_per_second": 812.5}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("metrics metadata (-want +got):\n%s", diff)
	}
	golden(t, "finetune.json", out)
}

// TestUploadParamFiles writes upload's output parameter files as the
// launcher reads them (text, the file the output_file placeholder names);
// scripts/kfp_backend_check reads them through the KFP backend's own
// converter.
func TestUploadParamFiles(t *testing.T) {
	dir := t.TempDir()
	sha := "0123456789abcdef0123456789abcdef01234567"
	for name, v := range map[string]string{"commit_sha": sha, "repo_url": "https://huggingface.co/me/model"} {
		p := filepath.Join(dir, "kfp", "outputs", name)
		if err := WriteParamFile(p, v); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != v {
			t.Errorf("%s holds %q, %v; want %q", name, b, err, v)
		}
		g := filepath.Join("testdata", "upload", name)
		if *update {
			os.MkdirAll(filepath.Dir(g), 0o755)
			if err := os.WriteFile(g, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if want, err := os.ReadFile(g); err != nil || string(want) != string(b) {
			t.Errorf("%s differs from %s (go test -update): %q, %v", name, g, want, err)
		}
	}
	if err := WriteParamFile("", "x"); err != nil {
		t.Errorf("no path: %v", err)
	}
}

func golden(t *testing.T, name, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(g, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := Read(g)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Read(path)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s differs (go test -update) (-want +got):\n%s", g, diff)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(`{"metrics": [{"name": "x"}]}`), 0o644)
	out := filepath.Join(dir, "o.json")
	for name, o := range map[string]*Output{
		"missing metrics file": New().MetricsFile("metrics", filepath.Join(dir, "none")),
		"metric without value": New().MetricsFile("metrics", bad),
		"NaN":                  New().Metadata("metrics", "loss", nanValue()),
		"bad type":             New().Metadata("metrics", "p", []int{1}),
	} {
		if err := o.Write(out); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: a file was written", name)
		}
	}
	// protojson is strict: a misspelt field is an error, as in the launcher.
	os.WriteFile(out, []byte(`{"parameterValue": {}}`), 0o644)
	if _, err := Read(out); err == nil || !strings.Contains(err.Error(), "parameterValue") {
		t.Errorf("Read accepted an unknown field: %v", err)
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// launcherInput is an executor input as the KFP 2.15 driver and launcher
// give it through {{$}} (protojson; the output file in the task root).
const launcherInput = `{"inputs":{"parameterValues":{"hf_repo":"me/model"},"artifacts":{"model_dir":{"artifacts":[{"name":"output_model_dir","type":{"schemaTitle":"system.Model","schemaVersion":"0.0.1"},"uri":"minio://mlpipeline/v2/artifacts/p/r/finetune/u/output_model_dir"}]}}},` +
	`"outputs":{"parameters":{"commit_sha":{"outputFile":"/tmp/kfp/outputs/commit_sha"}},"artifacts":{"metrics":{"artifacts":[{"name":"metrics","type":{"schemaTitle":"system.Metrics"},"uri":"minio://mlpipeline/v2/artifacts/p/r/finetune/u2/metrics"}]}},` +
	`"outputFile":"/minio/mlpipeline/v2/artifacts/p/r/finetune/u2/output_metadata.json"},"someFieldOfALaterBackend":1}`

// TestOutputFile: a component writes its executor output where the
// executor input says (KFP 2.15: the task root), else, without one, where
// KFP 2.14 reads it inside a pod, else nowhere.
func TestOutputFile(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pod := map[string]string{"KFP_POD_NAME": "run-abc-123"}
	var in Input
	if err := in.Set(launcherInput); err != nil {
		t.Fatal(err)
	}
	if got, want := in.OutputFile(env(pod)), "/minio/mlpipeline/v2/artifacts/p/r/finetune/u2/output_metadata.json"; got != want {
		t.Errorf("OutputFile = %q, want the executor input's %q", got, want)
	}
	if got := in.Proto().GetOutputs().GetParameters()["commit_sha"].GetOutputFile(); got != "/tmp/kfp/outputs/commit_sha" {
		t.Errorf("output parameter file %q", got)
	}
	var none Input
	if got := none.OutputFile(env(pod)); got != LauncherPath {
		t.Errorf("no executor input in a pod: %q, want %s", got, LauncherPath)
	}
	if got := none.OutputFile(env(nil)); got != "" {
		t.Errorf("no executor input, no pod: %q, want nothing", got)
	}
	for _, bad := range []string{"", "{{$}}", `{"outputs": {"outputFile": 3}}`} {
		if err := new(Input).Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
