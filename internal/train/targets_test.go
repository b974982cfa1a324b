package train

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/safetensors"
)

// TestAllLinearTargets: --lora-target-modules all-linear (PEFT's shorthand)
// puts an adapter on every Linear of the model, and adapter_config.json and
// training_args.json name the modules it stands for, as PEFT writes them,
// so that a loader that does not know the shorthand still finds them.
func TestAllLinearTargets(t *testing.T) {
	o := smallOptions(fixtureShards(t), filepath.Join(t.TempDir(), "out"), "", 1)
	o.EvalSteps = 0
	o.LoRAR, o.LoRAAlpha, o.LoRATargetModules = 2, 4, []string{AllLinear}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := []string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}
	var ac struct {
		Targets []string `json:"target_modules"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(o.OutputModelDir, "adapter_config.json")), &ac); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ac.Targets, want) {
		t.Errorf("adapter_config.json target_modules %v, want %v", ac.Targets, want)
	}
	var args struct {
		Targets []string `json:"lora_target_modules"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(o.OutputModelDir, "training_args.json")), &args); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args.Targets, want) {
		t.Errorf("training_args.json lora_target_modules %v, want %v", args.Targets, want)
	}
	// Every Linear of every layer carries an adapter.
	f, err := safetensors.Open(filepath.Join(o.OutputModelDir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cfg struct {
		Layers int `json:"num_hidden_layers"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(o.BaseModel, "config.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, m := range want {
		n := 0
		for _, k := range f.Names() {
			if strings.HasSuffix(k, "."+m+".lora_A.weight") {
				n++
			}
		}
		if n != cfg.Layers {
			t.Errorf("%s: %d adapters, want one in each of %d layers", m, n, cfg.Layers)
		}
	}
}
