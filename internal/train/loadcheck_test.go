package train

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/torch"
)

var update = flag.Bool("update", false, "write testdata/loadcheck/* for scripts/golden/train_reference.py check")

// loadCheckRuns are the three kinds of output directory: full weights, an
// unmerged PEFT adapter (the adapter alone), merged LoRA.
func loadCheckRuns(t *testing.T, root string) map[string]string {
	shards := fixtureShards(t)
	dirs := map[string]string{}
	for _, c := range []string{"full", "lora", "merged"} {
		o := smallOptions(shards, filepath.Join(root, c), "", 5)
		o.EvalSteps = 0
		if c != "full" {
			o.LoRAR, o.LoRAAlpha, o.LearningRate = 4, 8, 1e-2
			o.LoRATargetModules = []string{"q_proj", "v_proj", "o_proj"}
			o.MergeLoRA = c == "merged"
		}
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		dirs[c] = o.OutputModelDir
	}
	return dirs
}

// loadWithAdapter loads the model in dir on the CPU in float32 and
// attaches the PEFT adapter that Run wrote into adapterDir, if set.
func loadWithAdapter(t *testing.T, dir, adapterDir string) *model.Model {
	t.Helper()
	m, err := model.Load(dir, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if adapterDir == "" {
		return m
	}
	var cfg struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"lora_alpha"`
		Targets []string `json:"target_modules"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(adapterDir, "adapter_config.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	ads, err := attachLoRA(m, cfg.R, cfg.Alpha, 0, cfg.Targets, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadAdapter(filepath.Join(adapterDir, "adapter_model.safetensors"), ads); err != nil {
		t.Fatal(err)
	}
	return m
}

// lastLogits runs a loaded model (plus an adapter dir's adapter when
// adapterDir is set) on ids and returns the logits at the last position.
func lastLogits(t *testing.T, dir, adapterDir string, ids []int64) []float64 {
	t.Helper()
	m := loadWithAdapter(t, dir, adapterDir)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	in := ts.MustOfSlice(ids).MustView([]int64{1, int64(len(ids))}, true)
	defer in.MustDrop()
	logits, err := m.Forward(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer logits.MustDrop()
	var o torch.Scope
	defer o.Free()
	all := o.ReadFloat32s(torch.Of(logits))
	if !o.OK() {
		t.Fatal(o.Err())
	}
	v := len(all) / len(ids)
	out := make([]float64, v)
	for i := range out {
		out[i] = float64(all[(len(ids)-1)*v+i])
	}
	return out
}

// TestOutputsLoadInTransformers: the model directories Run writes load in
// transformers (full, merged) and peft (the adapter), which compute the
// same logits as our model does (scripts/golden/train_reference.py check
// recorded theirs in testdata/load_check.json).
func TestOutputsLoadInTransformers(t *testing.T) {
	root := t.TempDir()
	if *update {
		root = filepath.Join("testdata", "loadcheck")
		os.RemoveAll(root)
	}
	dirs := loadCheckRuns(t, root)
	if *update {
		t.Log("wrote", root, "; now run scripts/golden/train_reference.py check")
		return
	}
	var rec struct {
		InputIDs []int64           `json:"input_ids"`
		Full     []float64         `json:"full"`
		Merged   []float64         `json:"merged"`
		LoRA     []float64         `json:"lora_peft"`
		Base     []float64         `json:"base"`
		Versions map[string]string `json:"versions"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join("testdata", "load_check.json")), &rec); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded with %v", rec.Versions)
	cmp := func(name string, got, want []float64) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d logits, recorded %d", name, len(got), len(want))
		}
		worst := 0.0
		for i := range got {
			worst = math.Max(worst, math.Abs(got[i]-want[i]))
		}
		t.Logf("%s: largest logit difference %.2e", name, worst)
		if worst > 1e-4 {
			t.Errorf("%s: logits differ from transformers/peft by up to %.2e", name, worst)
		}
	}
	cmp("full (transformers)", lastLogits(t, dirs["full"], "", rec.InputIDs), rec.Full)
	cmp("merged (transformers)", lastLogits(t, dirs["merged"], "", rec.InputIDs), rec.Merged)
	// The adapter directory holds no weights of its own: the base comes
	// from base_model_name_or_path, as PEFT loads it.
	var ac map[string]any
	if err := json.Unmarshal(mustRead(t, filepath.Join(dirs["lora"], "adapter_config.json")), &ac); err != nil {
		t.Fatal(err)
	}
	base, _ := ac["base_model_name_or_path"].(string)
	if want, _ := filepath.Abs(filepath.Join("testdata", "parity", "base")); base != want {
		t.Errorf("adapter_config.json base_model_name_or_path %q, want the base's absolute path %q", base, want)
	}
	for _, f := range []string{"model.safetensors", "config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(dirs["lora"], f)); err == nil {
			t.Errorf("the adapter directory carries %s: the unchanged base would pass for the fine-tuned model", f)
		}
	}
	cmp("adapter (peft)", lastLogits(t, base, dirs["lora"], rec.InputIDs), rec.LoRA)
	// peft applied the adapter (it only warns on keys it does not know).
	moved := 0.0
	for i := range rec.LoRA {
		moved = math.Max(moved, math.Abs(rec.LoRA[i]-rec.Base[i]))
	}
	if moved < 1e-3 {
		t.Errorf("peft's logits are the base model's (largest change %.2e): the adapter was not applied", moved)
	}
	// Merging is the adapter folded in: the same function.
	cmp("merged vs adapter", rec.Merged, rec.LoRA)

	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "training_args.json", "metrics.json", "training_log.jsonl", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(dirs["full"], f)); err != nil {
			t.Errorf("output dir: %v", err)
		}
	}
	if ac["peft_type"] != "LORA" || ac["task_type"] != "CAUSAL_LM" || !slices.Equal(toStrings(ac["target_modules"]), []string{"o_proj", "q_proj", "v_proj"}) {
		t.Errorf("adapter_config.json: %v", ac)
	}
	if _, err := os.Stat(filepath.Join(dirs["merged"], "adapter_config.json")); err == nil {
		t.Error("--merge-lora wrote an adapter too")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
