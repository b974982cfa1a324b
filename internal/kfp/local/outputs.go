package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/kfllm/kfllm/internal/kfp/executor"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/types/known/structpb"
)

// readExecutorOutput reads a task's executor output as the KFP launcher
// does: a missing file is an empty output, a malformed one an error.
func readExecutorOutput(path string) (*pipelinespec.ExecutorOutput, error) {
	eo, err := executor.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &pipelinespec.ExecutorOutput{}, nil
	}
	return eo, err
}

// artifactMetadata is each output artifact's metadata in the executor output.
func artifactMetadata(eo *pipelinespec.ExecutorOutput) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, l := range eo.GetArtifacts() {
		if len(l.GetArtifacts()) > 0 && len(l.Artifacts[0].GetMetadata().GetFields()) > 0 {
			out[name] = l.Artifacts[0].GetMetadata().AsMap()
		}
	}
	return out
}

// pipelineOutputs resolves the pipeline's output parameters from the tasks'.
func pipelineOutputs(pl *plan, outParams map[string]map[string]*structpb.Value) map[string]*structpb.Value {
	out := map[string]*structpb.Value{}
	for name, spec := range pl.outputs {
		sel := spec.GetValueFromParameter()
		if v, ok := outParams[sel.GetProducerSubtask()][sel.GetOutputParameterKey()]; ok {
			out[name] = v
		}
	}
	return out
}

// writeMetrics prints the artifact metadata each task reported, as the KFP
// UI shows a Metrics artifact's scalar metrics.
func writeMetrics(w io.Writer, res *Result) {
	for _, t := range res.Tasks {
		for _, a := range sortedKeys(t.Metadata) {
			md := t.Metadata[a]
			parts := make([]string, 0, len(md))
			for _, k := range sortedKeys(md) {
				parts = append(parts, k+"="+formatValue(md[k]))
			}
			fmt.Fprintf(w, "%s %s: %s\n", t.Name, a, strings.Join(parts, " "))
		}
	}
}

// writeOutputs prints the pipeline's outputs and keeps them in
// RUNDIR/outputs.json.
func writeOutputs(w io.Writer, res *Result) error {
	if len(res.Outputs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\npipeline outputs:")
	m := map[string]any{}
	for _, k := range sortedKeys(res.Outputs) {
		m[k] = res.Outputs[k].AsInterface()
		fmt.Fprintf(w, "  %s: %s\n", k, formatValue(m[k]))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(res.Dir, "outputs.json")
	if err := renameio.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write pipeline outputs: %w", err)
	}
	fmt.Fprintf(w, "  (%s)\n", p)
	return nil
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', 6, 64)
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
