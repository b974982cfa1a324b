package demo

import (
	"maps"
	"slices"
	"testing"

	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kfllm/kfllm/internal/kfp/finetune"
)

// TestDemoRunsThePipelinesDefaults: the demo sets only where the data and
// the base model are, the step count and the upload target; every other
// parameter (LoRA rank, alpha and targets, learning rate, merge_lora...) is
// the compiled pipeline's default, so that the demo shows what the cluster
// runs. Each name it sets is a parameter of the compiled pipeline.
func TestDemoRunsThePipelinesDefaults(t *testing.T) {
	d := &runner{o: Options{Dir: "/demo", MaxSteps: 30}}
	got := slices.Sorted(maps.Keys(d.overrides()))
	want := []string{"base_model", "hf_repo", "max_steps", "qa_eval", "source"}
	if !slices.Equal(got, want) {
		t.Errorf("the demo overrides %v, want only %v", got, want)
	}
	c, err := kfp.Compile(finetune.New(finetune.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	params := c.Spec.Root.InputDefinitions.Parameters
	for _, k := range got {
		if params[k] == nil {
			t.Errorf("the demo sets %s, which the compiled pipeline does not have", k)
		}
	}
	// -param adds to them (bench scripts try other settings with it).
	d.o.Params = map[string]string{"lora_r": "16"}
	if d.overrides()["lora_r"] != "16" {
		t.Error("Options.Params did not reach the pipeline parameters")
	}
}
