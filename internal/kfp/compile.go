package kfp

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// SchemaVersion is the PipelineSpec schema version [Compile] emits.
const SchemaVersion = "2.1.0"

// SDKVersion is written into the IR's sdkVersion field.
const SDKVersion = "kfllm-go"

// Compiled is a compiled pipeline: the IR and its Kubernetes platform spec
// (nil when no task needs one).
type Compiled struct {
	Spec     *pipelinespec.PipelineSpec
	Platform *pipelinespec.PlatformSpec
}

// Component and executor names follow the KFP SDK: one of each per task.
func componentName(task string) string { return "comp-" + task }
func executorName(task string) string  { return "exec-" + task }

var taskNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$`)

// Compile checks the pipeline (names, types, wiring, cycles) and builds its IR.
func Compile(p *Pipeline) (*Compiled, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	spec := &pipelinespec.PipelineSpec{
		PipelineInfo:  &pipelinespec.PipelineInfo{Name: p.Name, Description: p.Description},
		SchemaVersion: SchemaVersion,
		SdkVersion:    SDKVersion,
		Components:    map[string]*pipelinespec.ComponentSpec{},
	}
	deploy := &pipelinespec.PipelineDeploymentConfig{Executors: map[string]*pipelinespec.PipelineDeploymentConfig_ExecutorSpec{}}
	dag := &pipelinespec.DagSpec{Tasks: map[string]*pipelinespec.PipelineTaskSpec{}}
	platformExecs := map[string]*structpb.Struct{}

	for _, t := range p.tasks {
		spec.Components[componentName(t.Name)] = componentSpec(t)
		container, err := containerSpec(t)
		if err != nil {
			return nil, err
		}
		deploy.Executors[executorName(t.Name)] = &pipelinespec.PipelineDeploymentConfig_ExecutorSpec{
			Spec: &pipelinespec.PipelineDeploymentConfig_ExecutorSpec_Container{Container: container},
		}
		ts, err := taskSpec(t)
		if err != nil {
			return nil, err
		}
		dag.Tasks[t.Name] = ts
		if len(t.Secrets) > 0 || len(t.Mounts) > 0 || len(t.NodeSelector) > 0 || len(t.Tolerations) > 0 ||
			t.NodeSelectorJSON.kind != valueNone || len(t.TolerationJSON) > 0 {
			s, err := kubernetesConfig(t)
			if err != nil {
				return nil, err
			}
			platformExecs[executorName(t.Name)] = s
		}
	}

	for _, o := range p.outputs {
		if dag.Outputs == nil {
			dag.Outputs = &pipelinespec.DagOutputsSpec{}
		}
		if dag.Outputs.Parameters == nil {
			dag.Outputs.Parameters = map[string]*pipelinespec.DagOutputsSpec_DagOutputParameterSpec{}
		}
		dag.Outputs.Parameters[o.name] = &pipelinespec.DagOutputsSpec_DagOutputParameterSpec{
			Kind: &pipelinespec.DagOutputsSpec_DagOutputParameterSpec_ValueFromParameter{ValueFromParameter: &pipelinespec.DagOutputsSpec_ParameterSelectorSpec{
				ProducerSubtask: o.from.task.Name, OutputParameterKey: o.from.name,
			}},
		}
	}

	root := &pipelinespec.ComponentSpec{Implementation: &pipelinespec.ComponentSpec_Dag{Dag: dag}}
	if len(p.params) > 0 {
		root.InputDefinitions = &pipelinespec.ComponentInputsSpec{Parameters: map[string]*pipelinespec.ComponentInputsSpec_ParameterSpec{}}
		for _, q := range p.params {
			def, err := constValue(q.def, q.typ)
			if err != nil {
				return nil, fmt.Errorf("pipeline %s: parameter %s: %w", p.Name, q.name, err)
			}
			root.InputDefinitions.Parameters[q.name] = &pipelinespec.ComponentInputsSpec_ParameterSpec{
				ParameterType: protoParamType(q.typ), DefaultValue: def, IsOptional: true,
			}
		}
	}
	if dag.Outputs != nil {
		root.OutputDefinitions = &pipelinespec.ComponentOutputsSpec{}
		for _, o := range p.outputs {
			if root.OutputDefinitions.Parameters == nil {
				root.OutputDefinitions.Parameters = map[string]*pipelinespec.ComponentOutputsSpec_ParameterSpec{}
			}
			out := o.from.task.Component.output(o.from.name)
			root.OutputDefinitions.Parameters[o.name] = &pipelinespec.ComponentOutputsSpec_ParameterSpec{ParameterType: protoParamType(out.param)}
		}
	}
	spec.Root = root

	ds, err := toStruct(deploy)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: deployment spec: %w", p.Name, err)
	}
	spec.DeploymentSpec = ds

	out := &Compiled{Spec: spec}
	if len(platformExecs) > 0 {
		out.Platform = &pipelinespec.PlatformSpec{Platforms: map[string]*pipelinespec.SinglePlatformSpec{
			"kubernetes": {DeploymentSpec: &pipelinespec.PlatformDeploymentConfig{Executors: platformExecs}},
		}}
	}
	return out, nil
}

// check validates names, input wiring and types, and that the DAG is acyclic.
func (p *Pipeline) check() error {
	if p.err != nil {
		return p.err
	}
	if !taskNameRE.MatchString(p.Name) {
		return fmt.Errorf("pipeline name %q: want lower-case letters, digits, '-' or '_'", p.Name)
	}
	if len(p.tasks) == 0 {
		return fmt.Errorf("pipeline %s: no tasks", p.Name)
	}
	params := map[string]ParamType{}
	for _, q := range p.params {
		params[q.name] = q.typ
	}
	names := map[string]*Task{}
	for _, t := range p.tasks {
		if t.Component == nil {
			return fmt.Errorf("pipeline %s: task %q has no component", p.Name, t.Name)
		}
		if t.Component.err != nil {
			return fmt.Errorf("pipeline %s: %w", p.Name, t.Component.err)
		}
		for _, in := range t.Component.inputs {
			if in.def == nil {
				continue
			}
			if _, err := constValue(in.def, in.param); err != nil {
				return fmt.Errorf("pipeline %s: component %s: input %s default: %w", p.Name, t.Component.Name, in.name, err)
			}
		}
		if !taskNameRE.MatchString(t.Name) {
			return fmt.Errorf("pipeline %s: task name %q: want lower-case letters, digits, '-' or '_'", p.Name, t.Name)
		}
		if names[t.Name] != nil {
			return fmt.Errorf("pipeline %s: two tasks named %q (set Task.Name)", p.Name, t.Name)
		}
		names[t.Name] = t
	}
	for _, t := range p.tasks {
		c := t.Component
		for name := range t.Inputs {
			if c.input(name) == nil {
				return fmt.Errorf("task %s: component %s has no input %q", t.Name, c.Name, name)
			}
		}
		for _, in := range c.inputs {
			v, ok := t.Inputs[in.name]
			if (!ok || v.kind == valueNone) && in.optional {
				continue
			}
			if !ok || v.kind == valueNone {
				return fmt.Errorf("task %s: input %q not set", t.Name, in.name)
			}
			switch v.kind {
			case valueParam:
				pt, ok := params[v.name]
				if !ok {
					return fmt.Errorf("task %s: input %q: no pipeline parameter %q", t.Name, in.name, v.name)
				}
				if in.param == 0 {
					return fmt.Errorf("task %s: input %q is an artifact, given parameter %q", t.Name, in.name, v.name)
				}
				if pt != in.param {
					return fmt.Errorf("task %s: input %q is %s, parameter %q is %s", t.Name, in.name, in.param, v.name, pt)
				}
			case valueConst:
				if in.param == 0 {
					return fmt.Errorf("task %s: input %q is an artifact, given a constant", t.Name, in.name)
				}
				if _, err := constValue(v.constant, in.param); err != nil {
					return fmt.Errorf("task %s: input %q: %w", t.Name, in.name, err)
				}
			case valueOutput:
				if names[v.task.Name] != v.task {
					return fmt.Errorf("task %s: input %q comes from a task not in pipeline %s", t.Name, in.name, p.Name)
				}
				out := v.task.Component.output(v.name)
				if out == nil {
					return fmt.Errorf("task %s: input %q: task %s has no output %q", t.Name, in.name, v.task.Name, v.name)
				}
				if out.param != 0 {
					if in.param != out.param {
						return fmt.Errorf("task %s: input %q is not a %s parameter like %s.%s", t.Name, in.name, out.param, v.task.Name, v.name)
					}
					continue
				}
				if in.artifact == "" {
					return fmt.Errorf("task %s: input %q is a parameter, given artifact %s.%s", t.Name, in.name, v.task.Name, v.name)
				}
				if in.artifact != Artifact && in.artifact != out.artifact {
					return fmt.Errorf("task %s: input %q is %s, %s.%s is %s", t.Name, in.name, in.artifact, v.task.Name, v.name, out.artifact)
				}
			}
		}
		for _, a := range t.after {
			if names[a.Name] != a {
				return fmt.Errorf("task %s: runs after a task not in pipeline %s", t.Name, p.Name)
			}
		}
		for _, s := range t.Secrets {
			if s.Secret == "" || s.Key == "" || s.Env == "" {
				return fmt.Errorf("task %s: secret env %+v: secret, key and env are all required", t.Name, s)
			}
		}
		if err := checkPlatform(t, names, params); err != nil {
			return err
		}
	}
	for _, o := range p.outputs {
		if o.from.kind != valueOutput || names[o.from.task.Name] != o.from.task {
			return fmt.Errorf("pipeline %s: output %s: want an output parameter of a task in the pipeline", p.Name, o.name)
		}
		if out := o.from.task.Component.output(o.from.name); out == nil || out.param == 0 {
			return fmt.Errorf("pipeline %s: output %s: task %s has no output parameter %q", p.Name, o.name, o.from.task.Name, o.from.name)
		}
	}
	_, err := order(p.tasks)
	return err
}

// checkPlatform checks a task's retry policy, claims and scheduling.
func checkPlatform(t *Task, names map[string]*Task, params map[string]ParamType) error {
	if r := t.Retry; r != nil {
		if r.MaxRetries < 1 || r.Backoff < 0 || r.MaxBackoff < 0 || r.Factor < 0 || (r.MaxBackoff > 0 && r.Backoff > r.MaxBackoff) {
			return fmt.Errorf("task %s: retry policy %+v: want at least one retry and non-negative backoff not above its maximum", t.Name, *r)
		}
	}
	for _, m := range t.Mounts {
		if !strings.HasPrefix(m.Path, "/") {
			return fmt.Errorf("task %s: mount path %q is not absolute", t.Name, m.Path)
		}
		switch m.Claim.kind {
		case valueConst:
			if s, ok := m.Claim.constant.(string); !ok || s == "" {
				return fmt.Errorf("task %s: claim at %s: want a claim name", t.Name, m.Path)
			}
		case valueParam:
			if params[m.Claim.name] != String {
				return fmt.Errorf("task %s: claim at %s: no string pipeline parameter %q", t.Name, m.Path, m.Claim.name)
			}
		case valueOutput:
			if names[m.Claim.task.Name] != m.Claim.task {
				return fmt.Errorf("task %s: claim at %s comes from a task not in the pipeline", t.Name, m.Path)
			}
			if out := m.Claim.task.Component.output(m.Claim.name); out == nil || out.param != String {
				return fmt.Errorf("task %s: claim at %s: task %s has no string output %q", t.Name, m.Path, m.Claim.task.Name, m.Claim.name)
			}
		default:
			return fmt.Errorf("task %s: claim at %s not set", t.Name, m.Path)
		}
	}
	for k, v := range t.NodeSelector {
		if k == "" || v == "" {
			return fmt.Errorf("task %s: node selector %q=%q: want a label and a value", t.Name, k, v)
		}
	}
	if err := checkParamRef(t.NodeSelectorJSON, "node selector", names, params, Struct); err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	for _, v := range t.TolerationJSON {
		if err := checkParamRef(v, "tolerations", names, params, List, Struct); err != nil {
			return fmt.Errorf("task %s: %w", t.Name, err)
		}
	}
	switch v := t.AcceleratorType; v.kind {
	case valueNone:
	case valueParam:
		if params[v.name] != String {
			return fmt.Errorf("task %s: accelerator type: no string pipeline parameter %q", t.Name, v.name)
		}
	default:
		return fmt.Errorf("task %s: accelerator type: want a pipeline parameter (a constant goes in Resources.Accelerator)", t.Name)
	}
	for _, tol := range t.Tolerations {
		switch tol.Operator {
		case "Exists", "Equal", "":
		default:
			return fmt.Errorf("task %s: toleration operator %q: want Exists or Equal", t.Name, tol.Operator)
		}
		switch tol.Effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute", "":
		default:
			return fmt.Errorf("task %s: toleration effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Name, tol.Effect)
		}
	}
	return nil
}

// checkParamRef checks a platform field's value: a pipeline parameter or
// task output parameter of one of the types want, or a constant of one.
func checkParamRef(v Value, what string, names map[string]*Task, params map[string]ParamType, want ...ParamType) error {
	switch v.kind {
	case valueNone:
		return nil
	case valueParam:
		if pt, ok := params[v.name]; ok && slices.Contains(want, pt) {
			return nil
		}
		return fmt.Errorf("%s: no %s pipeline parameter %q", what, want[0], v.name)
	case valueOutput:
		if names[v.task.Name] != v.task {
			return fmt.Errorf("%s comes from a task not in the pipeline", what)
		}
		if out := v.task.Component.output(v.name); out != nil && slices.Contains(want, out.param) {
			return nil
		}
		return fmt.Errorf("%s: task %s has no %s output %q", what, v.task.Name, want[0], v.name)
	case valueConst:
		for _, t := range want {
			if _, err := constValue(v.constant, t); err == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: constant %v is not a %s", what, v.constant, want[0])
	}
	return nil
}

// order sorts tasks so that each comes after its dependencies, breaking ties
// by declaration order, or reports a cycle.
func order(tasks []*Task) ([]*Task, error) {
	state := map[*Task]int{} // 1 visiting, 2 done
	var out []*Task
	var visit func(t *Task, path []string) error
	visit = func(t *Task, path []string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("tasks form a cycle: %s", strings.Join(append(path, t.Name), " -> "))
		case 2:
			return nil
		}
		state[t] = 1
		for _, d := range dependencies(t) {
			if err := visit(d, append(path, t.Name)); err != nil {
				return err
			}
		}
		state[t] = 2
		out = append(out, t)
		return nil
	}
	for _, t := range tasks {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dependencies lists the tasks t takes outputs from or runs after.
func dependencies(t *Task) []*Task {
	var deps []*Task
	seen := map[*Task]bool{}
	add := func(d *Task) {
		if !seen[d] {
			seen[d] = true
			deps = append(deps, d)
		}
	}
	for _, in := range t.Component.inputs {
		if v := t.Inputs[in.name]; v.kind == valueOutput {
			add(v.task)
		}
	}
	for _, m := range t.Mounts {
		if m.Claim.kind == valueOutput {
			add(m.Claim.task)
		}
	}
	for _, v := range append([]Value{t.NodeSelectorJSON}, t.TolerationJSON...) {
		if v.kind == valueOutput {
			add(v.task)
		}
	}
	for _, a := range t.after {
		add(a)
	}
	return deps
}

func componentSpec(t *Task) *pipelinespec.ComponentSpec {
	c := t.Component
	cs := &pipelinespec.ComponentSpec{Implementation: &pipelinespec.ComponentSpec_ExecutorLabel{ExecutorLabel: executorName(t.Name)}}
	if len(c.inputs) > 0 {
		cs.InputDefinitions = &pipelinespec.ComponentInputsSpec{}
		for _, in := range c.inputs {
			if in.param != 0 {
				if cs.InputDefinitions.Parameters == nil {
					cs.InputDefinitions.Parameters = map[string]*pipelinespec.ComponentInputsSpec_ParameterSpec{}
				}
				ps := &pipelinespec.ComponentInputsSpec_ParameterSpec{ParameterType: protoParamType(in.param), IsOptional: in.optional}
				if in.def != nil {
					ps.DefaultValue, _ = constValue(in.def, in.param) // checked by Compile's check
				}
				cs.InputDefinitions.Parameters[in.name] = ps
				continue
			}
			if cs.InputDefinitions.Artifacts == nil {
				cs.InputDefinitions.Artifacts = map[string]*pipelinespec.ComponentInputsSpec_ArtifactSpec{}
			}
			cs.InputDefinitions.Artifacts[in.name] = &pipelinespec.ComponentInputsSpec_ArtifactSpec{ArtifactType: artifactSchema(in.artifact)}
		}
	}
	if len(c.outputs) > 0 {
		cs.OutputDefinitions = &pipelinespec.ComponentOutputsSpec{}
		for _, o := range c.outputs {
			if o.param != 0 {
				if cs.OutputDefinitions.Parameters == nil {
					cs.OutputDefinitions.Parameters = map[string]*pipelinespec.ComponentOutputsSpec_ParameterSpec{}
				}
				cs.OutputDefinitions.Parameters[o.name] = &pipelinespec.ComponentOutputsSpec_ParameterSpec{ParameterType: protoParamType(o.param)}
				continue
			}
			if cs.OutputDefinitions.Artifacts == nil {
				cs.OutputDefinitions.Artifacts = map[string]*pipelinespec.ComponentOutputsSpec_ArtifactSpec{}
			}
			cs.OutputDefinitions.Artifacts[o.name] = &pipelinespec.ComponentOutputsSpec_ArtifactSpec{ArtifactType: artifactSchema(o.artifact)}
		}
	}
	return cs
}

func containerSpec(t *Task) (*pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec, error) {
	c := t.Component
	cs := &pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec{
		Image:   c.Image,
		Command: append([]string(nil), c.Command...),
		Args:    append([]string(nil), c.args...),
	}
	if c.Image == "" {
		return nil, fmt.Errorf("task %s: component %s has no image", t.Name, c.Name)
	}
	envNames := make([]string, 0, len(c.Env))
	for k := range c.Env {
		envNames = append(envNames, k)
	}
	sort.Strings(envNames)
	for _, k := range envNames {
		cs.Env = append(cs.Env, &pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec_EnvVar{Name: k, Value: c.Env[k]})
	}
	var accel string
	if t.AcceleratorType.kind == valueParam {
		accel = t.AcceleratorType.name
	}
	r, err := resourceSpec(t.Resources, accel)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	cs.Resources = r
	return cs, nil
}

// resourceSpec fills the resource fields as the KFP SDK (2.14) writes them:
// the quantities as given (resourceCpuLimit "8", resourceMemoryLimit "32G",
// which the driver hands to Kubernetes) and, for older backends, the
// deprecated numbers (cpuLimit in cores, memoryLimit in decimal GB); the
// accelerator's resourceType and resourceCount, and its deprecated type and
// count. An accelerator type taken from a pipeline parameter (accel, a
// parameter name) is the placeholder of the task input
// pipelinechannel--NAME, resolved by the driver; it has no constant type.
func resourceSpec(r Resources, accel string) (*pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec_ResourceSpec, error) {
	if r == (Resources{}) && accel == "" {
		return nil, nil
	}
	rs := &pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec_ResourceSpec{
		ResourceCpuRequest: r.CPURequest, ResourceCpuLimit: r.CPULimit,
		ResourceMemoryRequest: r.MemoryRequest, ResourceMemoryLimit: r.MemoryLimit,
	}
	var err error
	if rs.CpuRequest, err = parseCPU(r.CPURequest); err != nil {
		return nil, fmt.Errorf("cpu request: %w", err)
	}
	if rs.CpuLimit, err = parseCPU(r.CPULimit); err != nil {
		return nil, fmt.Errorf("cpu limit: %w", err)
	}
	if rs.MemoryRequest, err = parseMemoryGB(r.MemoryRequest); err != nil {
		return nil, fmt.Errorf("memory request: %w", err)
	}
	if rs.MemoryLimit, err = parseMemoryGB(r.MemoryLimit); err != nil {
		return nil, fmt.Errorf("memory limit: %w", err)
	}
	if rs.CpuLimit > 0 && rs.CpuRequest > rs.CpuLimit {
		return nil, fmt.Errorf("cpu request %s exceeds limit %s", r.CPURequest, r.CPULimit)
	}
	if rs.MemoryLimit > 0 && rs.MemoryRequest > rs.MemoryLimit {
		return nil, fmt.Errorf("memory request %s exceeds limit %s", r.MemoryRequest, r.MemoryLimit)
	}
	if r.AcceleratorCount < 0 {
		return nil, fmt.Errorf("accelerator count %d is negative", r.AcceleratorCount)
	}
	if r.AcceleratorCount > 0 && r.Accelerator == "" && accel == "" {
		return nil, errors.New("accelerator count set without an accelerator type")
	}
	if r.Accelerator != "" && accel != "" {
		return nil, errors.New("accelerator type both a constant and a parameter")
	}
	if r.Accelerator != "" || accel != "" {
		n := int64(max(r.AcceleratorCount, 1))
		a := &pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec_ResourceSpec_AcceleratorConfig{
			Type: r.Accelerator, Count: n, ResourceType: r.Accelerator, ResourceCount: strconv.FormatInt(n, 10),
		}
		if accel != "" {
			a.ResourceType = inputPlaceholder(channelInput(accel))
		}
		rs.Accelerator = a
	}
	return rs, nil
}

var cpuRE = regexp.MustCompile(`^([0-9]*\.)?[0-9]+m?$`)

// parseCPU reads a Kubernetes CPU quantity ("2", "0.5", "500m") in cores.
func parseCPU(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	if !cpuRE.MatchString(s) {
		return 0, fmt.Errorf("%q: want a number of cores or millicores (500m)", s)
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseFloat(m, 64)
		return v / 1000, err
	}
	return strconv.ParseFloat(s, 64)
}

var memRE = regexp.MustCompile(`^([0-9]+)(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$`)

// parseMemoryGB reads a Kubernetes memory quantity ("16G", "8Gi", "512M") in
// decimal gigabytes, as the KFP SDK does.
func parseMemoryGB(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	m := memRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want an integer with an optional unit (K, M, G, T, P, E or Ki … Ei)", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	unit := map[string]float64{
		"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
	}[m[2]]
	return v * unit / 1e9, nil
}

func taskSpec(t *Task) (*pipelinespec.PipelineTaskSpec, error) {
	ts := &pipelinespec.PipelineTaskSpec{
		TaskInfo:       &pipelinespec.PipelineTaskInfo{Name: t.Name},
		ComponentRef:   &pipelinespec.ComponentRef{Name: componentName(t.Name)},
		CachingOptions: &pipelinespec.PipelineTaskSpec_CachingOptions{EnableCache: t.Cache},
	}
	deps := map[string]bool{}
	for _, d := range dependencies(t) {
		deps[d.Name] = true
	}
	for d := range deps {
		ts.DependentTasks = append(ts.DependentTasks, d)
	}
	sort.Strings(ts.DependentTasks)
	if r := t.Retry; r != nil {
		ts.RetryPolicy = &pipelinespec.PipelineTaskSpec_RetryPolicy{
			MaxRetryCount:      int32(r.MaxRetries),
			BackoffDuration:    durationpb.New(r.Backoff),
			BackoffFactor:      r.Factor,
			BackoffMaxDuration: durationpb.New(r.MaxBackoff),
		}
	}

	c := t.Component
	if len(c.inputs) > 0 {
		ts.Inputs = &pipelinespec.TaskInputsSpec{}
	}
	for _, in := range c.inputs {
		v := t.Inputs[in.name]
		switch v.kind {
		case valueOutput:
			if in.param != 0 {
				setParam(ts, in.name, &pipelinespec.TaskInputsSpec_InputParameterSpec{
					Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_TaskOutputParameter{TaskOutputParameter: &pipelinespec.TaskInputsSpec_InputParameterSpec_TaskOutputParameterSpec{
						ProducerTask: v.task.Name, OutputParameterKey: v.name,
					}},
				})
				continue
			}
			if ts.Inputs.Artifacts == nil {
				ts.Inputs.Artifacts = map[string]*pipelinespec.TaskInputsSpec_InputArtifactSpec{}
			}
			ts.Inputs.Artifacts[in.name] = &pipelinespec.TaskInputsSpec_InputArtifactSpec{
				Kind: &pipelinespec.TaskInputsSpec_InputArtifactSpec_TaskOutputArtifact{
					TaskOutputArtifact: &pipelinespec.TaskInputsSpec_InputArtifactSpec_TaskOutputArtifactSpec{ProducerTask: v.task.Name, OutputArtifactKey: v.name},
				},
			}
		case valueParam:
			setParam(ts, in.name, &pipelinespec.TaskInputsSpec_InputParameterSpec{
				Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_ComponentInputParameter{ComponentInputParameter: v.name},
			})
		case valueConst:
			cv, err := constValue(v.constant, in.param)
			if err != nil {
				return nil, fmt.Errorf("task %s: input %s: %w", t.Name, in.name, err)
			}
			setParam(ts, in.name, &pipelinespec.TaskInputsSpec_InputParameterSpec{
				Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_RuntimeValue{RuntimeValue: &pipelinespec.ValueOrRuntimeParameter{
					Value: &pipelinespec.ValueOrRuntimeParameter_Constant{Constant: cv},
				}},
			})
		}
	}
	// An accelerator type from a pipeline parameter reaches the driver as the
	// KFP SDK passes it: the parameter as task input pipelinechannel--NAME,
	// and input accelerator_type holding its placeholder.
	if v := t.AcceleratorType; v.kind == valueParam {
		if ts.Inputs == nil {
			ts.Inputs = &pipelinespec.TaskInputsSpec{}
		}
		setParam(ts, channelInput(v.name), &pipelinespec.TaskInputsSpec_InputParameterSpec{
			Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_ComponentInputParameter{ComponentInputParameter: v.name},
		})
		setParam(ts, "accelerator_type", &pipelinespec.TaskInputsSpec_InputParameterSpec{
			Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_RuntimeValue{RuntimeValue: &pipelinespec.ValueOrRuntimeParameter{
				Value: &pipelinespec.ValueOrRuntimeParameter_Constant{Constant: structpb.NewStringValue(inputPlaceholder(channelInput(v.name)))},
			}},
		})
	}
	return ts, nil
}

// channelInput is the task input through which the KFP SDK passes pipeline
// parameter param to a task field that is not a component input (a
// pipeline channel).
func channelInput(param string) string { return "pipelinechannel--" + param }

// inputPlaceholder is the placeholder of a task's input parameter.
func inputPlaceholder(name string) string { return "{{$.inputs.parameters['" + name + "']}}" }

func setParam(ts *pipelinespec.PipelineTaskSpec, name string, p *pipelinespec.TaskInputsSpec_InputParameterSpec) {
	if ts.Inputs.Parameters == nil {
		ts.Inputs.Parameters = map[string]*pipelinespec.TaskInputsSpec_InputParameterSpec{}
	}
	ts.Inputs.Parameters[name] = p
}

// kubernetesConfig builds the task's KubernetesExecutorConfig as a Struct,
// the form platforms.kubernetes.deploymentSpec.executors holds.
func kubernetesConfig(t *Task) (*structpb.Struct, error) {
	cfg := &kubernetesplatform.KubernetesExecutorConfig{}
	bySecret := map[string]*kubernetesplatform.SecretAsEnv{}
	for _, s := range t.Secrets {
		se := bySecret[s.Secret]
		if se == nil {
			se = &kubernetesplatform.SecretAsEnv{SecretName: s.Secret}
			bySecret[s.Secret] = se
			cfg.SecretAsEnv = append(cfg.SecretAsEnv, se)
		}
		se.KeyToEnv = append(se.KeyToEnv, &kubernetesplatform.SecretAsEnv_SecretKeyToEnvMap{SecretKey: s.Key, EnvVar: s.Env})
	}
	for _, m := range t.Mounts {
		pm := &kubernetesplatform.PvcMount{MountPath: m.Path}
		switch m.Claim.kind {
		case valueConst:
			pm.PvcReference = &kubernetesplatform.PvcMount_Constant{Constant: m.Claim.constant.(string)}
		case valueParam:
			pm.PvcReference = &kubernetesplatform.PvcMount_ComponentInputParameter{ComponentInputParameter: m.Claim.name}
		case valueOutput:
			pm.PvcReference = &kubernetesplatform.PvcMount_TaskOutputParameter{TaskOutputParameter: &kubernetesplatform.TaskOutputParameterSpec{
				ProducerTask: m.Claim.task.Name, OutputParameterKey: m.Claim.name,
			}}
		}
		cfg.PvcMount = append(cfg.PvcMount, pm)
	}
	if len(t.NodeSelector) > 0 {
		cfg.NodeSelector = &kubernetesplatform.NodeSelector{Labels: t.NodeSelector}
	}
	for _, tol := range t.Tolerations {
		cfg.Tolerations = append(cfg.Tolerations, &kubernetesplatform.Toleration{
			Key: tol.Key, Operator: tol.Operator, Value: tol.Value, Effect: tol.Effect, TolerationSeconds: tol.Seconds,
		})
	}
	s, err := toStruct(cfg)
	if err != nil {
		return nil, fmt.Errorf("task %s: kubernetes config: %w", t.Name, err)
	}
	if err := addParameterFields(t, s); err != nil {
		return nil, fmt.Errorf("task %s: kubernetes config: %w", t.Name, err)
	}
	return s, nil
}

// addParameterFields adds to a task's KubernetesExecutorConfig the fields
// kfp-kubernetes 2.14 writes that take a value the driver resolves when the
// task runs (kubernetes_executor_config.proto since kubeflow/pipelines#11621,
// read by the KFP 2.5+ driver): secretNameParameter beside each secretName,
// pvcNameParameter beside each claim reference, nodeSelector.nodeSelectorJson
// and tolerations[].tolerationJson. No kubernetes_platform Go module on the
// Go proxy has these fields (docs/design.md §10), so they are written here
// in their proto JSON form, each an InputParameterSpec of the pinned
// pipelinespec.
func addParameterFields(t *Task, s *structpb.Struct) error {
	set := func(m *structpb.Struct, key string, p *pipelinespec.TaskInputsSpec_InputParameterSpec) error {
		v, err := toStruct(p)
		if err != nil {
			return err
		}
		m.Fields[key] = structpb.NewStructValue(v)
		return nil
	}
	for _, se := range s.Fields["secretAsEnv"].GetListValue().GetValues() {
		m := se.GetStructValue()
		name := m.GetFields()["secretName"].GetStringValue()
		if err := set(m, "secretNameParameter", constParam(structpb.NewStringValue(name))); err != nil {
			return err
		}
	}
	for i, pm := range s.Fields["pvcMount"].GetListValue().GetValues() {
		p, err := paramSpec(t.Mounts[i].Claim, String)
		if err != nil {
			return fmt.Errorf("claim at %s: %w", t.Mounts[i].Path, err)
		}
		if err := set(pm.GetStructValue(), "pvcNameParameter", p); err != nil {
			return err
		}
	}
	if t.NodeSelectorJSON.kind != valueNone {
		p, err := paramSpec(t.NodeSelectorJSON, Struct)
		if err != nil {
			return fmt.Errorf("node selector: %w", err)
		}
		ns := s.Fields["nodeSelector"].GetStructValue()
		if ns == nil {
			ns = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			s.Fields["nodeSelector"] = structpb.NewStructValue(ns)
		}
		if err := set(ns, "nodeSelectorJson", p); err != nil {
			return err
		}
	}
	for _, v := range t.TolerationJSON {
		p, err := paramSpec(v, List)
		if err != nil {
			return fmt.Errorf("tolerations: %w", err)
		}
		tol := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		if err := set(tol, "tolerationJson", p); err != nil {
			return err
		}
		l := s.Fields["tolerations"].GetListValue()
		if l == nil {
			l = &structpb.ListValue{}
			s.Fields["tolerations"] = structpb.NewListValue(l)
		}
		l.Values = append(l.Values, structpb.NewStructValue(tol))
	}
	return nil
}

func constParam(v *structpb.Value) *pipelinespec.TaskInputsSpec_InputParameterSpec {
	return &pipelinespec.TaskInputsSpec_InputParameterSpec{
		Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_RuntimeValue{RuntimeValue: &pipelinespec.ValueOrRuntimeParameter{
			Value: &pipelinespec.ValueOrRuntimeParameter_Constant{Constant: v},
		}},
	}
}

// paramSpec is v as an InputParameterSpec; a constant is read as type t
// (a STRUCT constant is also accepted where t is LIST, as the driver takes
// one toleration or a list).
func paramSpec(v Value, t ParamType) (*pipelinespec.TaskInputsSpec_InputParameterSpec, error) {
	switch v.kind {
	case valueParam:
		return &pipelinespec.TaskInputsSpec_InputParameterSpec{
			Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_ComponentInputParameter{ComponentInputParameter: v.name},
		}, nil
	case valueOutput:
		return &pipelinespec.TaskInputsSpec_InputParameterSpec{
			Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_TaskOutputParameter{TaskOutputParameter: &pipelinespec.TaskInputsSpec_InputParameterSpec_TaskOutputParameterSpec{
				ProducerTask: v.task.Name, OutputParameterKey: v.name,
			}},
		}, nil
	case valueConst:
		c, err := constValue(v.constant, t)
		if err != nil && t == List {
			c, err = constValue(v.constant, Struct)
		}
		if err != nil {
			return nil, err
		}
		return constParam(c), nil
	}
	return nil, errors.New("not set")
}

// toStruct converts a message to a Struct through its protojson form, so the
// Struct's keys are the proto JSON (camelCase) names.
func toStruct(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

func protoParamType(t ParamType) pipelinespec.ParameterType_ParameterTypeEnum {
	switch t {
	case String:
		return pipelinespec.ParameterType_STRING
	case Int:
		return pipelinespec.ParameterType_NUMBER_INTEGER
	case Float:
		return pipelinespec.ParameterType_NUMBER_DOUBLE
	case Bool:
		return pipelinespec.ParameterType_BOOLEAN
	case List:
		return pipelinespec.ParameterType_LIST
	case Struct:
		return pipelinespec.ParameterType_STRUCT
	}
	return pipelinespec.ParameterType_PARAMETER_TYPE_ENUM_UNSPECIFIED
}

func artifactSchema(t ArtifactType) *pipelinespec.ArtifactTypeSchema {
	return &pipelinespec.ArtifactTypeSchema{
		Kind:          &pipelinespec.ArtifactTypeSchema_SchemaTitle{SchemaTitle: string(t)},
		SchemaVersion: schemaVersion,
	}
}

// constValue converts a Go value to a structpb.Value of parameter type t.
func constValue(v any, t ParamType) (*structpb.Value, error) {
	switch t {
	case String:
		if s, ok := v.(string); ok {
			return structpb.NewStringValue(s), nil
		}
	case Int:
		switch n := v.(type) {
		case int:
			return structpb.NewNumberValue(float64(n)), nil
		case int64:
			if n > 1<<53 || n < -(1<<53) {
				return nil, fmt.Errorf("integer %d does not fit a JSON number exactly", n)
			}
			return structpb.NewNumberValue(float64(n)), nil
		}
	case Float:
		switch n := v.(type) {
		case float64:
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return nil, fmt.Errorf("float %v is not a JSON number", n)
			}
			return structpb.NewNumberValue(n), nil
		case int:
			return structpb.NewNumberValue(float64(n)), nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return structpb.NewBoolValue(b), nil
		}
	case List:
		switch l := v.(type) {
		case []string:
			vals := make([]any, len(l))
			for i, s := range l {
				vals[i] = s
			}
			return structpb.NewValue(vals)
		case []any:
			return structpb.NewValue(l)
		}
	case Struct:
		switch m := v.(type) {
		case map[string]string:
			vals := make(map[string]any, len(m))
			for k, s := range m {
				vals[k] = s
			}
			return structpb.NewValue(vals)
		case map[string]any:
			return structpb.NewValue(m)
		}
	}
	return nil, fmt.Errorf("value %v (%T) is not a %s", v, v, t)
}
