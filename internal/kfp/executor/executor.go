// Package executor writes the executor output a component leaves for the
// KFP v2 launcher: an ExecutorOutput message (pipelinespec, protojson) with
// output parameter values and metadata for output artifacts.
//
// The launcher of the KFP v2 backend (backend/src/v2/component/launcher_v2.go)
// reads the file at [LauncherPath] after the user program exits: its
// parameterValues win over the output parameter files, and each artifact's
// metadata is merged into the output artifact recorded in ML Metadata. The
// KFP UI shows a system.Metrics artifact's numeric metadata as its scalar
// metrics, and compares runs by them. `pipeline local` reads the same file,
// at the path it gives each task in [EnvPath].
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

// LauncherPath is where the KFP v2 launcher reads the executor output
// (OutputMetadataFilepath in launcher_v2.go; the driver sets it as the
// executor input's outputs.outputFile).
const LauncherPath = "/tmp/kfp_outputs/output_metadata.json"

// EnvPath names the environment variable that moves the file elsewhere;
// `pipeline local` sets it for every task.
const EnvPath = "KFLLM_EXECUTOR_OUTPUT"

// envPod is set by the KFP v2 Argo compiler in every executor container
// (KFP_POD_NAME, from the pod's metadata.name).
const envPod = "KFP_POD_NAME"

// Path returns where a component writes its executor output: $KFLLM_EXECUTOR_OUTPUT,
// else LauncherPath inside a KFP pod, else "" (run by hand: nothing to write).
func Path(getenv func(string) string) string {
	if p := getenv(EnvPath); p != "" {
		return p
	}
	if getenv(envPod) != "" {
		return LauncherPath
	}
	return ""
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

// Param sets output parameter name to v (string, bool, an integer or a
// float; integers and floats become JSON numbers as KFP stores them).
func (o *Output) Param(name string, v any) *Output {
	sv, err := value(v)
	if err != nil {
		o.fail(fmt.Errorf("output parameter %s: %w", name, err))
		return o
	}
	o.pb.ParameterValues[name] = sv
	return o
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
// of a Param, Metadata or MetricsFile call is returned here.
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
