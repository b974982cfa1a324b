package validate

import (
	"fmt"
	"os"
	"sort"

	"sigs.k8s.io/yaml"
)

// Executor is one container executor of a compiled KFP v2 pipeline.
type Executor struct {
	Name    string
	Image   string
	Command []string
}

// PipelineExecutors reads the container executors of a compiled pipeline
// (the IR YAML `pipeline compile` writes: deploymentSpec.executors).
func PipelineExecutors(p string) ([]Executor, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read pipeline %s: %w", p, err)
	}
	docs, err := SplitYAML(data)
	if err != nil || len(docs) == 0 {
		return nil, fmt.Errorf("read pipeline %s: no document (%v)", p, err)
	}
	var spec struct {
		DeploymentSpec struct {
			Executors map[string]struct {
				Container struct {
					Image   string   `json:"image"`
					Command []string `json:"command"`
				} `json:"container"`
			} `json:"executors"`
		} `json:"deploymentSpec"`
	}
	// The first document is the PipelineSpec; a second one, if any, is the
	// platform spec.
	if err := yaml.Unmarshal(docs[0], &spec); err != nil {
		return nil, fmt.Errorf("read pipeline %s: %w", p, err)
	}
	var out []Executor
	for name, ex := range spec.DeploymentSpec.Executors {
		out = append(out, Executor{Name: name, Image: ex.Container.Image, Command: ex.Container.Command})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("read pipeline %s: no container executors", p)
	}
	return out, nil
}
