package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/synth"
	"github.com/kfllm/kfllm/internal/tokenizer"
	"github.com/kfllm/kfllm/internal/torch"
)

// TestLoRAQwen3: LoRA fine-tuning of a tiny Qwen3 (internal/model's
// fixture, the real Qwen3 vocabulary) on QA shards tokenized with the
// Qwen3 tokenizer lowers the loss on its training data and writes a PEFT
// adapter for every attention projection.
func TestLoRAQwen3(t *testing.T) {
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	tok, err := tokenizer.Load(filepath.Join(base, "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	shards := filepath.Join(root, "shards")
	train, _ := synth.Generate(synth.Options{Seed: 5, Train: 12, Eval: 2})
	writeQAShards(t, tok, shards, train, train, 160) // eval = train: the loss the steps lower
	baseModel := filepath.Join("..", "model", "testdata", "qwen3")
	o := Options{InputDataset: shards, BaseModel: baseModel, OutputModelDir: filepath.Join(root, "out"),
		MaxSteps: 6, LearningRate: 2e-2, BatchSize: 4, Device: "cpu", DType: "float32", Threads: 1,
		LoRAR: 4, LoRAAlpha: 8, LoRATargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	before, after := shardLoss(t, baseModel, "", shards), shardLoss(t, baseModel, o.OutputModelDir, shards)
	t.Logf("loss on the training data: base %.4f, with the adapter %.4f", before, after)
	if !(after < before-0.01) {
		t.Errorf("loss with the adapter %.4f, base %.4f: training did not lower it", after, before)
	}

	var cfg struct {
		PeftType string   `json:"peft_type"`
		R        int      `json:"r"`
		Targets  []string `json:"target_modules"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(o.OutputModelDir, "adapter_config.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PeftType != "LORA" || cfg.R != 4 || !slices.Equal(cfg.Targets, []string{"k_proj", "o_proj", "q_proj", "v_proj"}) {
		t.Errorf("adapter_config.json: %+v", cfg)
	}
	f, err := safetensors.Open(filepath.Join(o.OutputModelDir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(f.Names()); n != 2*4*2 { // 2 layers, 4 projections, A and B
		t.Errorf("%d adapter tensors, want 16: %v", n, f.Names())
	}
	info, ok := f.Info("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")
	if !ok || !slices.Equal(info.Shape, []int64{8, 4}) { // k_proj out = 1 kv head * head_dim 8
		t.Errorf("k_proj lora_B: %v %v", ok, info.Shape)
	}
}

// shardLoss is the token-mean loss of the model in dir (with the PEFT
// adapter in adapterDir when set) on the eval shard in shards.
func shardLoss(t *testing.T, dir, adapterDir, shards string) float64 {
	t.Helper()
	m := loadWithAdapter(t, dir, adapterDir)
	sh, err := readShard(shards, "eval.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trainer{m: m}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var sum float64
	var n int
	torch.NoGrad(func() {
		for r := range sh.n {
			b := sh.makeBatch([]int{r})
			v, err := tr.lossSum(b, false, 1)
			if err != nil {
				t.Fatal(err)
			}
			sum += v
			n += len(b.at)
		}
	})
	return sum / float64(n)
}
