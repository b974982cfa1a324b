package kfp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"google.golang.org/protobuf/testing/protocmp"
)

// twoStep is a second, unrelated pipeline written with the same API: a
// constant input, an explicit ordering, an HTML output and a bool parameter.
func twoStep() *Pipeline {
	p := NewPipeline("two-step", "")
	verbose := p.BoolParam("verbose", false)
	lr := p.FloatParam("lr", 1e-7)
	gen := p.Task(NewComponent("gen", "img/gen:1", "/bin/gen").
		Param("--verbose", "verbose", Bool).
		Param("--count", "count", Int).
		Param("--lr", "lr", Float).
		Output("--out", "data", Dataset).
		Output("--report", "report", HTML),
		Inputs{"verbose": verbose, "count": Const(3), "lr": lr})
	side := p.Task(NewComponent("side", "img/side:1", "/bin/side").Arg("--flag"), nil)
	p.Task(NewComponent("use", "img/use:1", "/bin/use").Input("", "data", Artifact), Inputs{"data": gen.Output("data")}).After(side)
	return p
}

func TestCompileSecondPipeline(t *testing.T) {
	c, err := Compile(twoStep())
	if err != nil {
		t.Fatal(err)
	}
	use := c.Spec.Root.GetDag().Tasks["use"]
	if diff := cmp.Diff([]string{"gen", "side"}, use.DependentTasks); diff != "" {
		t.Errorf("dependentTasks (-want +got):\n%s", diff)
	}
	count := c.Spec.Root.GetDag().Tasks["gen"].Inputs.Parameters["count"]
	if got := count.GetRuntimeValue().GetConstant().GetNumberValue(); got != 3 {
		t.Errorf("constant count = %v, want 3", got)
	}
	if c.Platform != nil {
		t.Errorf("platform spec without secrets: %v", c.Platform)
	}
	if got := c.Spec.Components["comp-gen"].OutputDefinitions.Artifacts["report"].ArtifactType.GetSchemaTitle(); got != "system.HTML" {
		t.Errorf("report type = %q", got)
	}
	args := c.Spec.DeploymentSpec.Fields["executors"].GetStructValue().Fields["exec-use"].GetStructValue().
		Fields["container"].GetStructValue().Fields["args"].GetListValue().Values
	if len(args) != 1 || args[0].GetStringValue() != "{{$.inputs.artifacts['data'].path}}" {
		t.Errorf("use args = %v", args)
	}
}

func TestMarshalRoundTripAndDeterminism(t *testing.T) {
	c, err := Compile(twoStep())
	if err != nil {
		t.Fatal(err)
	}
	first, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	// Maps are iterated in random order: compile and marshal again, many times.
	for i := 0; i < 20; i++ {
		c2, err := Compile(twoStep())
		if err != nil {
			t.Fatal(err)
		}
		again, err := Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("marshal %d differs:\n%s", i, cmp.Diff(string(first), string(again)))
		}
	}
	back, err := Unmarshal(first)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.Spec, back.Spec, protocmp.Transform()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// A float default without a '.' would be a string to PyYAML (YAML 1.1).
	if !strings.Contains(string(first), "defaultValue: 1.0e-7") {
		t.Errorf("lr default not written as a YAML 1.1 float:\n%s", first)
	}
	if !strings.Contains(string(first), "defaultValue: false") {
		t.Errorf("bool default missing:\n%s", first)
	}
}

func TestCompileErrors(t *testing.T) {
	comp := func() *Component {
		return NewComponent("a", "img", "/bin/a").Param("--n", "n", Int).Output("--o", "o", Dataset)
	}
	cases := []struct {
		name  string
		build func() *Pipeline
		want  string
	}{
		{"missing input", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), nil)
			return p
		}, `input "n" not set`},
		{"unknown input", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), Inputs{"n": Const(1), "m": Const(2)})
			return p
		}, `has no input "m"`},
		{"param type", func() *Pipeline {
			p := NewPipeline("p", "")
			s := p.StringParam("s", "x")
			p.Task(comp(), Inputs{"n": s})
			return p
		}, `is NUMBER_INTEGER, parameter "s" is STRING`},
		{"const type", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), Inputs{"n": Const("three")})
			return p
		}, `is not a NUMBER_INTEGER`},
		{"artifact type", func() *Pipeline {
			p := NewPipeline("p", "")
			a := p.Task(comp(), Inputs{"n": Const(1)})
			p.Task(NewComponent("b", "img", "/bin/b").Input("--i", "i", Model), Inputs{"i": a.Output("o")})
			return p
		}, `is system.Model, a.o is system.Dataset`},
		{"unknown output", func() *Pipeline {
			p := NewPipeline("p", "")
			a := p.Task(comp(), Inputs{"n": Const(1)})
			p.Task(NewComponent("b", "img", "/bin/b").Input("--i", "i", Dataset), Inputs{"i": a.Output("nope")})
			return p
		}, `has no output "nope"`},
		{"duplicate task", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), Inputs{"n": Const(1)})
			p.Task(comp(), Inputs{"n": Const(2)})
			return p
		}, `two tasks named "a"`},
		{"cycle", func() *Pipeline {
			p := NewPipeline("p", "")
			a := p.Task(NewComponent("a", "img", "/bin/a"), nil)
			b := p.Task(NewComponent("b", "img", "/bin/b"), nil).After(a)
			a.After(b)
			return p
		}, `cycle`},
		{"bad memory", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), Inputs{"n": Const(1)}).WithResources(Resources{MemoryLimit: "8GB"})
			return p
		}, `memory limit: "8GB"`},
		{"request over limit", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp(), Inputs{"n": Const(1)}).WithResources(Resources{CPURequest: "4", CPULimit: "2"})
			return p
		}, `exceeds limit`},
		{"bad param name", func() *Pipeline {
			p := NewPipeline("p", "")
			p.StringParam("Bad-Name", "")
			p.Task(comp(), Inputs{"n": Const(1)})
			return p
		}, `parameter name "Bad-Name"`},
		{"duplicate output", func() *Pipeline {
			p := NewPipeline("p", "")
			p.Task(comp().Output("--o2", "o", Model), Inputs{"n": Const(1)})
			return p
		}, `output "o" declared twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.build())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResourceUnits(t *testing.T) {
	for in, want := range map[string]float64{"2": 2, "0.5": 0.5, "500m": 0.5, "": 0} {
		got, err := parseCPU(in)
		if err != nil || got != want {
			t.Errorf("parseCPU(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]float64{"16G": 16, "512M": 0.512, "1Gi": 1.073741824, "1000000000": 1, "2T": 2000} {
		got, err := parseMemoryGB(in)
		if err != nil || got != want {
			t.Errorf("parseMemoryGB(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1.5G", "G", "-1", "8gb"} {
		if _, err := parseMemoryGB(bad); err == nil {
			t.Errorf("parseMemoryGB(%q) accepted", bad)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"no root":       "pipelineInfo:\n  name: x\n",
		"unknown field": "root:\n  dag: {}\nnotAField: 1\n",
		"bad yaml":      "root: [\n",
	} {
		if _, err := Unmarshal([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestParseParamJSON: --param values of STRUCT and LIST parameters (a node
// selector, tolerations) must be a JSON object and a JSON array.
func TestParseParamJSON(t *testing.T) {
	for _, tc := range []struct {
		in string
		t  pipelinespec.ParameterType_ParameterTypeEnum
		ok bool
	}{
		{`{"cloud.google.com/gke-accelerator": "nvidia-l4"}`, pipelinespec.ParameterType_STRUCT, true},
		{`{}`, pipelinespec.ParameterType_STRUCT, true},
		{`[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`, pipelinespec.ParameterType_LIST, true},
		{`[]`, pipelinespec.ParameterType_LIST, true},
		{`[]`, pipelinespec.ParameterType_STRUCT, false},
		{`"nvidia-l4"`, pipelinespec.ParameterType_STRUCT, false},
		{`{"key": "x"}`, pipelinespec.ParameterType_LIST, false},
		{`cloud.google.com/gke-accelerator=nvidia-l4`, pipelinespec.ParameterType_STRUCT, false},
	} {
		_, err := ParseParam(tc.in, tc.t)
		if (err == nil) != tc.ok {
			t.Errorf("ParseParam(%s, %s): err %v, want ok %v", tc.in, tc.t, err, tc.ok)
		}
	}
}

// TestSchedulingParameters: a task's node selector, tolerations and
// accelerator type taken from pipeline parameters are written as
// kfp-kubernetes 2.14 and the KFP SDK 2.14 write them, and parameters of the
// wrong type are refused at compile time.
func TestSchedulingParameters(t *testing.T) {
	build := func(f func(p *Pipeline, task *Task)) (*Compiled, error) {
		p := NewPipeline("gpu", "")
		task := p.Task(NewComponent("train", "img/train:1", "/bin/train"), Inputs{}).
			WithResources(Resources{AcceleratorCount: 2})
		f(p, task)
		return Compile(p)
	}
	c, err := build(func(p *Pipeline, task *Task) {
		task.WithAcceleratorType(p.StringParam("accelerator", "nvidia.com/gpu")).
			WithNodeSelectorJSON(p.StructParam("node_selector", map[string]any{})).
			WithTolerationJSON(p.ListParam("tolerations", []any{map[string]any{"key": "gpu", "operator": "Exists"}}))
	})
	if err != nil {
		t.Fatal(err)
	}
	y, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"resourceType: '{{$.inputs.parameters[''pipelinechannel--accelerator'']}}'",
		"resourceCount: \"2\"",
		"pipelinechannel--accelerator:\n              componentInputParameter: accelerator",
		"accelerator_type:\n              runtimeValue:\n                constant: '{{$.inputs.parameters[''pipelinechannel--accelerator'']}}'",
		"nodeSelector:\n            nodeSelectorJson:\n              componentInputParameter: node_selector",
		"tolerations:\n            - tolerationJson:\n                componentInputParameter: tolerations",
		"#    tolerations: LIST [Default: [{\"key\":\"gpu\",\"operator\":\"Exists\"}]]",
	} {
		if !strings.Contains(string(y), want) {
			t.Errorf("compiled YAML lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(string(y), "type: nvidia.com/gpu") {
		t.Errorf("a parameter's accelerator has a constant type:\n%s", y)
	}

	for name, f := range map[string]func(p *Pipeline, task *Task){
		"node selector from a string": func(p *Pipeline, task *Task) { task.WithNodeSelectorJSON(p.StringParam("ns", "")) },
		"tolerations from a number":   func(p *Pipeline, task *Task) { task.WithTolerationJSON(p.IntParam("tol", 1)) },
		"undeclared parameter":        func(p *Pipeline, task *Task) { task.WithNodeSelectorJSON(Value{kind: valueParam, name: "nope"}) },
		"accelerator from a list":     func(p *Pipeline, task *Task) { task.WithAcceleratorType(p.ListParam("acc", []string{})) },
		"accelerator constant value":  func(p *Pipeline, task *Task) { task.WithAcceleratorType(Const("nvidia.com/gpu")) },
		"accelerator twice": func(p *Pipeline, task *Task) {
			task.Resources.Accelerator = "nvidia.com/gpu"
			task.WithAcceleratorType(p.StringParam("acc", ""))
		},
		"list default not JSON": func(p *Pipeline, task *Task) {
			task.WithTolerationJSON(p.ListParam("tol", []any{make(chan int)}))
		},
	} {
		if _, err := build(f); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}
