// Package executor writes what a component leaves for the KFP v2 launcher:
// the executor output (an ExecutorOutput message, pipelinespec, protojson)
// with metadata for output artifacts, and output parameter files.
//
// The launcher of the KFP v2 backend (backend/src/v2/component/launcher_v2.go)
// reads the executor output after the user program exits, at the path the
// driver put in the executor input's outputs.outputFile: its artifact
// metadata is merged into the output artifacts recorded in ML Metadata (the
// KFP UI shows a system.Metrics artifact's numbers as its scalar metrics and
// compares runs by them). That path was /tmp/kfp_outputs/output_metadata.json
// ([LauncherPath]) up to KFP 2.14; from KFP 2.15 it is
// TASKROOT/output_metadata.json, beside the task's output artifacts. No
// placeholder of the open-source launcher names it alone, so a component
// takes the whole executor input ({{$}}, [Input], its --executor-input flag)
// and writes where it says. An output parameter the executor output does not
// carry is read from its file, whose path the placeholder
// {{$.outputs.parameters['NAME'].output_file}} gives ([WriteParamFile]).
// `pipeline local` resolves both placeholders and reads the same files.
package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// LauncherPath is where the KFP v2 launcher of KFP 2.14 and before reads the
// executor output (OutputMetadataFilepath in launcher_v2.go, which the driver
// set as the executor input's outputs.outputFile).
const LauncherPath = "/tmp/kfp_outputs/output_metadata.json"

// Placeholder is the KFP placeholder the launcher replaces with the executor
// input as JSON (protojson of ExecutorInput).
const Placeholder = "{{$}}"

// envPod is set by the KFP v2 Argo compiler in every executor container
// (KFP_POD_NAME, from the pod's metadata.name).
const envPod = "KFP_POD_NAME"

// Input is the executor input a component is given through [Placeholder]:
// a flag.Value for its --executor-input flag.
type Input struct {
	pb *pipelinespec.ExecutorInput
}

// Set parses s, the executor input as the launcher writes it. Fields this
// build does not know are skipped (a newer backend may add some); malformed
// JSON is an error.
func (in *Input) Set(s string) error {
	pb := &pipelinespec.ExecutorInput{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(s), pb); err != nil {
		return fmt.Errorf("executor input: %w", err)
	}
	in.pb = pb
	return nil
}

// String returns the executor input as JSON, "" when none was given.
func (in *Input) String() string {
	if in == nil || in.pb == nil {
		return ""
	}
	return protojson.Format(in.pb)
}

// Proto returns the parsed executor input, nil when none was given.
func (in *Input) Proto() *pipelinespec.ExecutorInput { return in.pb }

// OutputFile returns where the component writes its executor output: the
// executor input's outputs.outputFile; without an executor input, inside a
// KFP pod (KFP_POD_NAME set) [LauncherPath], where KFP 2.14 and before read
// it; else "" (run by hand: nothing to write).
func (in *Input) OutputFile(getenv func(string) string) string {
	if p := in.pb.GetOutputs().GetOutputFile(); p != "" {
		return p
	}
	if getenv(envPod) != "" {
		return LauncherPath
	}
	return ""
}

// WriteParamFile writes an output parameter's file as the launcher reads it
// (the value as text) through a temporary file renamed into place; path ""
// writes nothing.
func WriteParamFile(path, value string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("output parameter file: %w", err)
	}
	if err := renameio.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("output parameter file: %w", err)
	}
	return nil
}

// Output collects what a component reports. The zero value is not usable;
// call [New].
type Output struct {
	pb  *pipelinespec.ExecutorOutput
	err error
}

// New returns an empty executor output.
func New() *Output {
	return &Output{pb: &pipelinespec.ExecutorOutput{
		ParameterValues: map[string]*structpb.Value{},
		Artifacts:       map[string]*pipelinespec.ArtifactList{},
	}}
}

// Metadata sets key of output artifact name's metadata to v. Numbers are
// what the KFP UI shows as a Metrics artifact's scalar metrics.
func (o *Output) Metadata(artifact, key string, v any) *Output {
	sv, err := value(v)
	if err != nil {
		o.fail(fmt.Errorf("artifact %s metadata %s: %w", artifact, key, err))
		return o
	}
	a := o.artifact(artifact)
	a.Metadata.Fields[key] = sv
	return o
}

// MetricsFile copies the scalar metrics of a KFP v1 metrics file
// ({"metrics": [{"name": N, "numberValue": V}, ...]}, what finetune writes
// as its Metrics artifact) into artifact's metadata, one number per name.
func (o *Output) MetricsFile(artifact, path string) *Output {
	b, err := os.ReadFile(path)
	if err != nil {
		o.fail(fmt.Errorf("metrics of %s: %w", artifact, err))
		return o
	}
	var f struct {
		Metrics []struct {
			Name        string   `json:"name"`
			NumberValue *float64 `json:"numberValue"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		o.fail(fmt.Errorf("metrics of %s: %s: %w", artifact, path, err))
		return o
	}
	o.artifact(artifact)
	for _, m := range f.Metrics {
		if m.Name == "" || m.NumberValue == nil {
			o.fail(fmt.Errorf("metrics of %s: %s: a metric without name or numberValue", artifact, path))
			return o
		}
		o.Metadata(artifact, m.Name, *m.NumberValue)
	}
	return o
}

func (o *Output) artifact(name string) *pipelinespec.RuntimeArtifact {
	l := o.pb.Artifacts[name]
	if l == nil {
		l = &pipelinespec.ArtifactList{Artifacts: []*pipelinespec.RuntimeArtifact{{Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{}}}}}
		o.pb.Artifacts[name] = l
	}
	return l.Artifacts[0]
}

func (o *Output) fail(err error) {
	o.err = errors.Join(o.err, err)
}

// Proto returns the message as built so far.
func (o *Output) Proto() *pipelinespec.ExecutorOutput { return o.pb }

// Write writes the executor output to path as protojson, through a
// temporary file renamed into place; path "" writes nothing. The first error
// of a Metadata or MetricsFile call is returned here.
func (o *Output) Write(path string) error {
	if o.err != nil {
		return fmt.Errorf("executor output: %w", o.err)
	}
	if path == "" {
		return nil
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(o.pb)
	if err != nil {
		return fmt.Errorf("executor output: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("executor output: %w", err)
	}
	if err := renameio.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("executor output: %w", err)
	}
	return nil
}

// Read reads an executor output file as the launcher does (protojson into
// ExecutorOutput, unknown fields an error).
func Read(path string) (*pipelinespec.ExecutorOutput, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read executor output: %w", err)
	}
	out := &pipelinespec.ExecutorOutput{}
	if err := protojson.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("read executor output %s: %w", path, err)
	}
	return out, nil
}

func value(v any) (*structpb.Value, error) {
	var f float64
	switch x := v.(type) {
	case string:
		return structpb.NewStringValue(x), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		return nil, fmt.Errorf("value %v (%T) is not a string, bool or number", v, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v is not a JSON number", f)
	}
	return structpb.NewNumberValue(f), nil
}
