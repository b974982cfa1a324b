package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// ImageBinDir is where the kfllm images keep their binaries; a command[0]
// under it is replaced by the local binary.
const ImageBinDir = "/usr/local/bin/"

var imageRE = regexp.MustCompile(`(?:^|/)kfllm-([a-z0-9][a-z0-9_-]*)(?::[^/@]+)?(?:@sha256:[0-9a-f]+)?$`)

// Binary returns the local binary that stands in for image: binDir/NAME for
// REGISTRY/kfllm-NAME:TAG.
func Binary(image, binDir string) (string, error) {
	m := imageRE.FindStringSubmatch(image)
	if m == nil {
		return "", fmt.Errorf("no local binary for image %q: pipeline local runs kfllm-NAME images as BINDIR/NAME", image)
	}
	return filepath.Join(binDir, m[1]), nil
}

// task is one planned DAG task.
type task struct {
	name      string
	spec      *pipelinespec.PipelineTaskSpec
	comp      *pipelinespec.ComponentSpec
	container *pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec
	binary    string // empty for kfp-kubernetes' PVC components
	k8s       *kubernetesplatform.KubernetesExecutorConfig
	deps      []string
}

// claimOp is what a kfp-kubernetes PVC component does, by image.
func (t *task) claimOp() string {
	switch t.container.GetImage() {
	case kfp.CreatePVCImage:
		return "create"
	case kfp.DeletePVCImage:
		return "delete"
	}
	return ""
}

// plan is a pipeline checked and ordered for running.
type plan struct {
	name   string
	params map[string]*structpb.Value
	types  map[string]pipelinespec.ParameterType_ParameterTypeEnum
	tasks  []*task // in run order
	// outputs are the pipeline's output parameters.
	outputs map[string]*pipelinespec.DagOutputsSpec_DagOutputParameterSpec
}

// newPlan checks that everything the run needs is there before any task runs:
// supported IR features, parameters, binaries (unless the tasks run in
// their images).
func newPlan(c *kfp.Compiled, overrides map[string]string, binDir string, inImages bool) (*plan, error) {
	spec := c.Spec
	dag := spec.GetRoot().GetDag()
	if dag == nil || len(dag.Tasks) == 0 {
		return nil, errors.New("pipeline has no tasks (root is not a DAG)")
	}
	pl := &plan{name: spec.GetPipelineInfo().GetName(), params: map[string]*structpb.Value{}, types: map[string]pipelinespec.ParameterType_ParameterTypeEnum{}, outputs: dag.GetOutputs().GetParameters()}
	if err := pl.bindParams(spec.GetRoot().GetInputDefinitions().GetParameters(), overrides); err != nil {
		return nil, err
	}

	deploy := &pipelinespec.PipelineDeploymentConfig{}
	if spec.DeploymentSpec != nil {
		b, err := protojson.Marshal(spec.DeploymentSpec)
		if err != nil {
			return nil, fmt.Errorf("read deployment spec: %w", err)
		}
		if err := protojson.Unmarshal(b, deploy); err != nil {
			return nil, fmt.Errorf("read deployment spec: %w", err)
		}
	}
	platform := map[string]*structpb.Struct{}
	if k := c.Platform.GetPlatforms()["kubernetes"]; k != nil {
		platform = k.GetDeploymentSpec().GetExecutors()
	}

	byName := map[string]*task{}
	for name, ts := range dag.Tasks {
		if ts.TriggerPolicy != nil && ts.TriggerPolicy.Condition != "" {
			return nil, fmt.Errorf("task %s: conditions (dsl.If) are not supported locally", name)
		}
		if ts.Iterator != nil {
			return nil, fmt.Errorf("task %s: loops (dsl.ParallelFor) are not supported locally", name)
		}
		comp := spec.Components[ts.GetComponentRef().GetName()]
		if comp == nil {
			return nil, fmt.Errorf("task %s: component %q not found", name, ts.GetComponentRef().GetName())
		}
		label := comp.GetExecutorLabel()
		if label == "" {
			return nil, fmt.Errorf("task %s: nested pipelines are not supported locally", name)
		}
		container := deploy.Executors[label].GetContainer()
		if container == nil {
			return nil, fmt.Errorf("task %s: executor %q is not a container (importers and resolvers are not supported locally)", name, label)
		}
		t := &task{name: name, spec: ts, comp: comp, container: container, k8s: &kubernetesplatform.KubernetesExecutorConfig{}}
		if t.claimOp() == "" && !inImages {
			bin, err := Binary(container.Image, binDir)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", name, err)
			}
			if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				return nil, fmt.Errorf("task %s: binary %s for image %s is missing or not executable (run `make build`, or point --bin-dir at the binaries)", name, bin, container.Image)
			}
			t.binary = bin
		}
		if s := platform[label]; s != nil {
			b, err := protojson.Marshal(s)
			if err != nil {
				return nil, fmt.Errorf("task %s: platform spec: %w", name, err)
			}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, t.k8s); err != nil {
				return nil, fmt.Errorf("task %s: platform spec: %w", name, err)
			}
			for _, m := range t.k8s.PvcMount {
				if !strings.HasPrefix(m.MountPath, "/") {
					return nil, fmt.Errorf("task %s: pvc mount path %q is not absolute", name, m.MountPath)
				}
				if m.GetTaskOutputParameter() == nil && m.GetConstant() == "" && m.GetComponentInputParameter() == "" {
					return nil, fmt.Errorf("task %s: pvc mount at %s names no claim", name, m.MountPath)
				}
			}
		}
		deps := map[string]bool{}
		for _, d := range ts.DependentTasks {
			deps[d] = true
		}
		for _, a := range ts.GetInputs().GetArtifacts() {
			if p := a.GetTaskOutputArtifact().GetProducerTask(); p != "" {
				deps[p] = true
			}
		}
		for _, p := range ts.GetInputs().GetParameters() {
			if pt := p.GetTaskOutputParameter().GetProducerTask(); pt != "" {
				deps[pt] = true
			}
		}
		for _, m := range t.k8s.PvcMount {
			if pt := m.GetTaskOutputParameter().GetProducerTask(); pt != "" {
				deps[pt] = true
			}
		}
		for d := range deps {
			t.deps = append(t.deps, d)
		}
		sort.Strings(t.deps)
		byName[name] = t
	}
	order, err := topoOrder(byName)
	if err != nil {
		return nil, err
	}
	pl.tasks = order
	return pl, nil
}

// topoOrder orders tasks after their dependencies; among tasks ready at the
// same time, by name, so the order is the same on every run.
func topoOrder(tasks map[string]*task) ([]*task, error) {
	indeg := map[string]int{}
	users := map[string][]string{}
	for name, t := range tasks {
		indeg[name] += 0
		for _, d := range t.deps {
			if tasks[d] == nil {
				return nil, fmt.Errorf("task %s depends on unknown task %q", name, d)
			}
			indeg[name]++
			users[d] = append(users[d], name)
		}
	}
	var ready []string
	for name, n := range indeg {
		if n == 0 {
			ready = append(ready, name)
		}
	}
	var out []*task
	for len(ready) > 0 {
		sort.Strings(ready)
		name := ready[0]
		ready = ready[1:]
		out = append(out, tasks[name])
		for _, u := range users[name] {
			if indeg[u]--; indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(out) != len(tasks) {
		var stuck []string
		for name, n := range indeg {
			if n > 0 {
				stuck = append(stuck, name)
			}
		}
		sort.Strings(stuck)
		return nil, fmt.Errorf("tasks form a cycle: %s", strings.Join(stuck, ", "))
	}
	return out, nil
}

// bindParams takes each pipeline parameter's default, overridden by
// --param values parsed according to the declared type.
func (pl *plan) bindParams(defs map[string]*pipelinespec.ComponentInputsSpec_ParameterSpec, overrides map[string]string) error {
	for name, raw := range overrides {
		d, ok := defs[name]
		if !ok {
			known := make([]string, 0, len(defs))
			for n := range defs {
				known = append(known, n)
			}
			sort.Strings(known)
			return fmt.Errorf("--param %s: the pipeline has no such parameter (it has %s)", name, strings.Join(known, ", "))
		}
		v, err := kfp.ParseParam(raw, d.ParameterType)
		if err != nil {
			return fmt.Errorf("--param %s: %w", name, err)
		}
		pl.params[name] = v
	}
	for name, d := range defs {
		pl.types[name] = d.ParameterType
		if _, ok := pl.params[name]; ok {
			continue
		}
		if d.DefaultValue == nil {
			if d.IsOptional {
				continue
			}
			return fmt.Errorf("pipeline parameter %s has no default: set it with --param %s=VALUE", name, name)
		}
		pl.params[name] = d.DefaultValue
	}
	return nil
}

// paramString is how a parameter value appears on a command line, as the KFP
// launcher writes it: strings as they are, numbers without exponent, JSON for
// lists and structs.
func paramString(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *structpb.Value_NullValue, nil:
		return ""
	}
	b, _ := json.Marshal(v.AsInterface())
	return string(b)
}
