package kfp

import (
	"fmt"
	"time"
)

// ParamType is the type of a pipeline or component parameter.
type ParamType int

// Parameter types, as KFP's NUMBER_INTEGER, NUMBER_DOUBLE, STRING, BOOLEAN.
const (
	String ParamType = iota + 1
	Int
	Float
	Bool
	List
	Struct
)

func (t ParamType) String() string {
	switch t {
	case String:
		return "STRING"
	case Int:
		return "NUMBER_INTEGER"
	case Float:
		return "NUMBER_DOUBLE"
	case Bool:
		return "BOOLEAN"
	case List:
		return "LIST"
	case Struct:
		return "STRUCT"
	}
	return fmt.Sprintf("ParamType(%d)", int(t))
}

// ArtifactType is the schema title of a KFP artifact type.
type ArtifactType string

// Artifact types of KFP's system schema. Each is a path in the container: a
// directory for datasets and models, a file for metrics and visualizations.
const (
	Artifact ArtifactType = "system.Artifact"
	Dataset  ArtifactType = "system.Dataset"
	Model    ArtifactType = "system.Model"
	Metrics  ArtifactType = "system.Metrics"
	HTML     ArtifactType = "system.HTML"
	Markdown ArtifactType = "system.Markdown"
)

// schemaVersion is the version of every system.* artifact schema.
const schemaVersion = "0.0.1"

// port is one input or output of a component.
type port struct {
	name     string
	param    ParamType    // set for parameters
	artifact ArtifactType // set for artifacts
	optional bool         // inputs: a task may leave it unset
	def      any          // inputs: the default of an optional parameter, or nil
}

// Component is a containerized step: an image, a command, and arguments in
// which inputs and outputs appear as KFP placeholders. Build one with
// [NewComponent] and its chained methods; declaration order is argument
// order.
type Component struct {
	Name    string
	Image   string
	Command []string
	// Env holds constant environment variables for the container.
	Env map[string]string

	inputs  []port
	outputs []port
	args    []string
	err     error
}

// NewComponent starts a component named name running command in image.
func NewComponent(name, image string, command ...string) *Component {
	return &Component{Name: name, Image: image, Command: command}
}

// Param declares an input parameter and passes it as `flag VALUE` (or as a
// lone VALUE when flag is empty).
func (c *Component) Param(flag, name string, t ParamType) *Component {
	c.addInput(port{name: name, param: t})
	return c.arg(flag, fmt.Sprintf("{{$.inputs.parameters['%s']}}", name))
}

// BoolParam declares a boolean input parameter and passes it as one
// argument FLAG=VALUE ("--merge-lora=false"): Go's flag package reads a
// boolean flag's value only in that form.
func (c *Component) BoolParam(flag, name string) *Component {
	c.addInput(port{name: name, param: Bool})
	c.args = append(c.args, fmt.Sprintf("%s={{$.inputs.parameters['%s']}}", flag, name))
	return c
}

// InputParam declares an input parameter that the command line does not
// carry: a platform component (kfp-kubernetes' CreatePVC) reads it from its
// executor input. An optional input may be left unset by a task; def, when
// not nil, is its default.
func (c *Component) InputParam(name string, t ParamType, optional bool, def any) *Component {
	c.addInput(port{name: name, param: t, optional: optional, def: def})
	return c
}

// OutputParam declares an output parameter that the command line does not
// carry: a platform component (kfp-kubernetes' CreatePVC) reports it.
func (c *Component) OutputParam(name string, t ParamType) *Component {
	c.addOutput(port{name: name, param: t})
	return c
}

// OutputParamFile declares an output parameter and passes the path of the
// file the container writes its value to, as text: the placeholder
// {{$.outputs.parameters['NAME'].output_file}} (the KFP SDK's
// OutputPath(str)), which the KFP v2 launcher reads after the command exits.
func (c *Component) OutputParamFile(flag, name string, t ParamType) *Component {
	c.addOutput(port{name: name, param: t})
	return c.arg(flag, fmt.Sprintf("{{$.outputs.parameters['%s'].output_file}}", name))
}

// ExecutorInput passes the whole executor input as JSON (the placeholder
// {{$}}, the KFP SDK's PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER). Its
// outputs.outputFile is where the launcher reads the executor output, which
// carries output artifacts' metadata (package kfp/executor): KFP 2.15 moved
// it into the task root, and no other placeholder names it.
func (c *Component) ExecutorInput(flag string) *Component {
	return c.arg(flag, "{{$}}")
}

// Input declares an input artifact and passes its local path.
func (c *Component) Input(flag, name string, t ArtifactType) *Component {
	c.addInput(port{name: name, artifact: t})
	return c.arg(flag, fmt.Sprintf("{{$.inputs.artifacts['%s'].path}}", name))
}

// Output declares an output artifact and passes the path the container
// writes it to.
func (c *Component) Output(flag, name string, t ArtifactType) *Component {
	c.addOutput(port{name: name, artifact: t})
	return c.arg(flag, fmt.Sprintf("{{$.outputs.artifacts['%s'].path}}", name))
}

func (c *Component) addOutput(p port) {
	if c.output(p.name) != nil {
		c.fail("output %q declared twice", p.name)
	}
	if !validName(p.name) {
		c.fail("output name %q: want [a-z0-9_]", p.name)
	}
	c.outputs = append(c.outputs, p)
}

// Arg appends literal arguments.
func (c *Component) Arg(literal ...string) *Component {
	c.args = append(c.args, literal...)
	return c
}

func (c *Component) arg(flag, placeholder string) *Component {
	if flag != "" {
		c.args = append(c.args, flag)
	}
	c.args = append(c.args, placeholder)
	return c
}

func (c *Component) addInput(p port) {
	if c.input(p.name) != nil {
		c.fail("input %q declared twice", p.name)
	}
	if !validName(p.name) {
		c.fail("input name %q: want [a-z0-9_]", p.name)
	}
	c.inputs = append(c.inputs, p)
}

func (c *Component) fail(format string, a ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("component %s: "+format, append([]any{c.Name}, a...)...)
	}
}

func (c *Component) input(name string) *port {
	for i := range c.inputs {
		if c.inputs[i].name == name {
			return &c.inputs[i]
		}
	}
	return nil
}

func (c *Component) output(name string) *port {
	for i := range c.outputs {
		if c.outputs[i].name == name {
			return &c.outputs[i]
		}
	}
	return nil
}

// Resources are a task's container requests and limits, written as in
// Kubernetes ("500m", "2", "8G", "16Gi"); empty means unset.
type Resources struct {
	CPURequest, CPULimit       string
	MemoryRequest, MemoryLimit string
	// Accelerator is a resource name such as nvidia.com/gpu; AcceleratorCount
	// defaults to 1 when Accelerator is set.
	Accelerator      string
	AcceleratorCount int
}

// RetryPolicy is KFP v2's task retry policy (PipelineTaskSpec.retryPolicy,
// what the KFP SDK's set_retry writes): up to MaxRetries more attempts after
// a failure, the n-th waiting Backoff*Factor^(n-1), at most MaxBackoff.
type RetryPolicy struct {
	MaxRetries int
	Backoff    time.Duration
	Factor     float64
	MaxBackoff time.Duration
}

// PVCMount mounts a PersistentVolumeClaim at Path in the task's container
// (kfp-kubernetes' mount_pvc). Claim names it: a constant, a pipeline
// parameter, or the name output of a [CreatePVC] task.
type PVCMount struct {
	Claim Value
	Path  string
}

// Toleration is a Kubernetes pod toleration as kfp-kubernetes' add_toleration
// writes it; Seconds is tolerationSeconds when not nil.
type Toleration struct {
	Key, Operator, Value, Effect string
	Seconds                      *int64
}

// SecretEnv exposes key of Kubernetes secret Secret as environment variable Env.
type SecretEnv struct {
	Secret, Key, Env string
}

// Value is what a task input receives: a pipeline parameter, a constant, or
// an upstream task's output.
type Value struct {
	kind     valueKind
	name     string // pipeline parameter or producer output
	task     *Task
	constant any
}

type valueKind int

const (
	valueNone valueKind = iota
	valueParam
	valueConst
	valueOutput
)

// Const is a constant parameter value (string, int, int64, float64 or bool).
func Const(v any) Value { return Value{kind: valueConst, constant: v} }

// Inputs maps a component's input names to values.
type Inputs map[string]Value

// Task is one node of the pipeline's DAG.
type Task struct {
	// Name is the task's name in the DAG, unique in the pipeline.
	Name      string
	Component *Component
	Inputs    Inputs
	Resources Resources
	// Cache enables KFP's execution cache for the task (default true).
	Cache   bool
	Secrets []SecretEnv
	// Retry is the task's retry policy; nil: a failure fails the run.
	Retry *RetryPolicy
	// Mounts, NodeSelector and Tolerations go to the task's pod through the
	// Kubernetes platform spec.
	Mounts       []PVCMount
	NodeSelector map[string]string
	Tolerations  []Toleration
	// NodeSelectorJSON and TolerationJSON are the same, given as a value the
	// KFP driver resolves when the task runs (a pipeline parameter): a STRUCT
	// of labels, and LISTs or STRUCTs of Kubernetes tolerations.
	NodeSelectorJSON Value
	TolerationJSON   []Value
	// AcceleratorType, when set, is the accelerator resource name as a value
	// the driver resolves (Resources.Accelerator must then be empty).
	AcceleratorType Value
	after           []*Task
}

// Output refers to the task's output artifact name.
func (t *Task) Output(name string) Value {
	return Value{kind: valueOutput, task: t, name: name}
}

// WithResources sets the task's requests and limits.
func (t *Task) WithResources(r Resources) *Task { t.Resources = r; return t }

// NoCache turns KFP's cache off for the task (for side effects such as an upload).
func (t *Task) NoCache() *Task { t.Cache = false; return t }

// WithSecretEnv exposes a Kubernetes secret key as an environment variable.
func (t *Task) WithSecretEnv(secret, key, env string) *Task {
	t.Secrets = append(t.Secrets, SecretEnv{Secret: secret, Key: key, Env: env})
	return t
}

// WithRetry sets the task's retry policy.
func (t *Task) WithRetry(r RetryPolicy) *Task { t.Retry = &r; return t }

// MountPVC mounts a PersistentVolumeClaim at path (kfp-kubernetes'
// mount_pvc). A claim made by a CreatePVC task orders the task after it.
func (t *Task) MountPVC(claim Value, path string) *Task {
	t.Mounts = append(t.Mounts, PVCMount{Claim: claim, Path: path})
	return t
}

// WithNodeSelector adds node selector labels (kfp-kubernetes' add_node_selector).
func (t *Task) WithNodeSelector(labels map[string]string) *Task {
	if t.NodeSelector == nil {
		t.NodeSelector = map[string]string{}
	}
	for k, v := range labels {
		t.NodeSelector[k] = v
	}
	return t
}

// WithTolerations adds pod tolerations (kfp-kubernetes' add_toleration).
func (t *Task) WithTolerations(tol ...Toleration) *Task {
	t.Tolerations = append(t.Tolerations, tol...)
	return t
}

// WithNodeSelectorJSON sets the node selector from v, a STRUCT pipeline
// parameter or constant of label -> value (kfp-kubernetes'
// add_node_selector_json); it takes precedence over [Task.WithNodeSelector].
func (t *Task) WithNodeSelectorJSON(v Value) *Task { t.NodeSelectorJSON = v; return t }

// WithTolerationJSON adds the tolerations of v, a LIST (of tolerations) or
// STRUCT (one toleration) pipeline parameter or constant in Kubernetes' JSON
// form (key, operator, value, effect, tolerationSeconds): kfp-kubernetes'
// add_toleration_json.
func (t *Task) WithTolerationJSON(v Value) *Task {
	t.TolerationJSON = append(t.TolerationJSON, v)
	return t
}

// WithAcceleratorType takes the accelerator resource name from v, a STRING
// pipeline parameter (the KFP SDK's set_accelerator_type on a pipeline
// parameter); the count is Resources.AcceleratorCount (default 1).
func (t *Task) WithAcceleratorType(v Value) *Task { t.AcceleratorType = v; return t }

// After orders the task after others it takes no artifact from.
func (t *Task) After(others ...*Task) *Task { t.after = append(t.after, others...); return t }

// pipelineParam is a pipeline input with its default.
type pipelineParam struct {
	name string
	typ  ParamType
	def  any
}

// Pipeline is a DAG of tasks with typed, defaulted parameters.
type Pipeline struct {
	Name        string
	Description string
	params      []pipelineParam
	tasks       []*Task
	outputs     []pipelineOutput
	err         error
}

// pipelineOutput is a pipeline output parameter taken from a task's output.
type pipelineOutput struct {
	name string
	from Value
}

// Output declares pipeline output parameter name, the value of a task's
// output parameter (the KFP SDK's pipeline return value): the KFP UI lists
// it with the run, and pipeline local prints it.
func (p *Pipeline) Output(name string, from Value) {
	if !validName(name) && p.err == nil {
		p.err = fmt.Errorf("pipeline %s: output name %q: want [a-z0-9_]", p.Name, name)
	}
	p.outputs = append(p.outputs, pipelineOutput{name: name, from: from})
}

// NewPipeline starts a pipeline; name is also the name it is uploaded under.
func NewPipeline(name, description string) *Pipeline {
	return &Pipeline{Name: name, Description: description}
}

// StringParam declares a string pipeline parameter with a default.
func (p *Pipeline) StringParam(name, def string) Value { return p.param(name, String, def) }

// IntParam declares an integer pipeline parameter with a default.
func (p *Pipeline) IntParam(name string, def int64) Value { return p.param(name, Int, def) }

// FloatParam declares a float pipeline parameter with a default.
func (p *Pipeline) FloatParam(name string, def float64) Value { return p.param(name, Float, def) }

// StructParam declares a STRUCT (JSON object) pipeline parameter with a
// default: a map[string]string or map[string]any of JSON values.
func (p *Pipeline) StructParam(name string, def any) Value { return p.param(name, Struct, def) }

// ListParam declares a LIST (JSON array) pipeline parameter with a default:
// a []string or []any of JSON values.
func (p *Pipeline) ListParam(name string, def any) Value { return p.param(name, List, def) }

// BoolParam declares a boolean pipeline parameter with a default.
func (p *Pipeline) BoolParam(name string, def bool) Value { return p.param(name, Bool, def) }

func (p *Pipeline) param(name string, t ParamType, def any) Value {
	for _, q := range p.params {
		if q.name == name && p.err == nil {
			p.err = fmt.Errorf("pipeline %s: parameter %q declared twice", p.Name, name)
		}
	}
	if !validName(name) && p.err == nil {
		p.err = fmt.Errorf("pipeline %s: parameter name %q: want [a-z0-9_]", p.Name, name)
	}
	p.params = append(p.params, pipelineParam{name: name, typ: t, def: def})
	return Value{kind: valueParam, name: name}
}

// Task adds a task running c, named after the component, with its inputs.
// Name it otherwise by setting Task.Name before compiling.
func (p *Pipeline) Task(c *Component, in Inputs) *Task {
	t := &Task{Name: c.Name, Component: c, Inputs: in, Cache: true}
	p.tasks = append(p.tasks, t)
	return t
}

// Tasks returns the pipeline's tasks in the order they were added.
func (p *Pipeline) Tasks() []*Task { return append([]*Task(nil), p.tasks...) }

// validName reports whether s is a KFP-friendly identifier: lower-case
// letters, digits and underscores, not starting with a digit.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
