package train

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/model"
)

var loraRunOut = flag.String("lora-run-out", "", "TestServeLoRARun copies the LoRA run's output here with go_greedy.json, for scripts/golden/lora_fixtures.py check-run")

// TestServeLoRARun: the output directory of a LoRA finetune (the unchanged
// base weights beside a PEFT adapter) served as it is answers as the same
// run with merge_lora does (W + scale*B@A, what peft's merge_and_unload
// computes), and not as the base weights beside it do; before serving read
// adapters it answered as the base.
func TestServeLoRARun(t *testing.T) {
	root := t.TempDir()
	shards, base, _ := qaFixture(t, 16, 4, 96)
	dirs := map[string]string{}
	for _, c := range []string{"lora", "merged"} {
		o := smallOptions(shards, filepath.Join(root, c), "", 6)
		o.BaseModel, o.EvalSteps = base, 0
		o.LoRAR, o.LoRAAlpha, o.LearningRate = 4, 8, 1e-2
		o.LoRATargetModules = []string{"q_proj", "v_proj", "o_proj", "up_proj", "down_proj"}
		o.MergeLoRA = c == "merged"
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		dirs[c] = o.OutputModelDir
	}
	// The base: the model both runs started from, with the tokenizer the
	// runs wrote (the LoRA run's output is the adapter alone, its
	// adapter_config.json naming the base directory).
	dirs["base"] = filepath.Join(root, "base")
	os.MkdirAll(dirs["base"], 0o755)
	for _, from := range []string{base, dirs["lora"]} {
		entries, _ := os.ReadDir(from)
		for _, e := range entries {
			if e.IsDir() || e.Name() == "adapter_config.json" || e.Name() == "adapter_model.safetensors" {
				continue
			}
			b := mustRead(t, filepath.Join(from, e.Name()))
			if err := os.WriteFile(filepath.Join(dirs["base"], e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	prompts := []string{"Context: Ada was born in London.\nQuestion: Where was Ada born?\nAnswer:", "the context says", "Answer the question"}
	answers := map[string][]string{}
	for c, dir := range dirs {
		b, err := engine.Load(context.Background(), engine.Options{ModelDir: dir, Device: "cpu", DType: "float32", Threads: 1})
		if err != nil {
			t.Fatalf("serve %s: %v", c, err)
		}
		for _, p := range prompts {
			r, err := b.LLM.GenerateContent(context.Background(), []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, p)},
				llms.WithMaxTokens(16), llms.WithTemperature(0))
			if err != nil {
				t.Fatal(err)
			}
			answers[c] = append(answers[c], r.Choices[0].Content)
		}
		b.Close(context.Background())
	}
	t.Logf("answers: %q", answers)
	if !slices.Equal(answers["lora"], answers["merged"]) {
		t.Errorf("the LoRA run served %q, the merged run %q", answers["lora"], answers["merged"])
	}
	if slices.Equal(answers["lora"], answers["base"]) {
		t.Errorf("the LoRA run answers as its base weights: %q", answers["lora"])
	}
	if *loraRunOut != "" {
		writeRunCheck(t, dirs["lora"], *loraRunOut)
	}
}

// writeRunCheck copies the run's output to out with go_greedy.json: greedy
// token ids of the served adapter (what scripts/golden/lora_fixtures.py
// check-run compares with transformers + peft on the same directory).
func writeRunCheck(t *testing.T, run, out string) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(run)
	for _, e := range entries {
		if !e.IsDir() {
			os.WriteFile(filepath.Join(out, e.Name()), mustRead(t, filepath.Join(run, e.Name())), 0o644)
		}
	}
	m, err := model.Load(run, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := m.LoadAdapter("run", run)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{5, 17, 33, 60, 7}, {100, 3, 42}, {9, 8, 7, 6, 5, 4, 3, 2}}
	res := map[string]any{"prompts": prompts, "max_new_tokens": 12}
	for _, name := range []string{"base", "adapter"} {
		var ad *model.Adapter
		if name == "adapter" {
			ad = a
		}
		var outs [][]int
		for _, p := range prompts {
			o, err := m.Generate(context.Background(), [][]int{p}, model.GenerateOptions{MaxNewTokens: 12, Adapter: ad}, nil)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, o[0])
		}
		res[name] = outs
	}
	b, _ := json.MarshalIndent(res, "", " ")
	if err := os.WriteFile(filepath.Join(out, "go_greedy.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
