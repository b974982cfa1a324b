package train

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kfllm/kfllm/internal/tokenizer"
)

// fixtureShards copies the parity shards into a temp dir and gives them a
// tokenizer/ (a small byte-level BPE), as the tokenize component would.
func fixtureShards(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"train.safetensors", "eval.safetensors"} {
		b, err := os.ReadFile(filepath.Join("testdata", "parity", "shards", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.TrainBPE([]string{"the context says where Ada was born", "Answer the question using the context."}, 260)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	return dir
}

type reference struct {
	Settings struct {
		BatchSize   int      `json:"batch_size"`
		GradAccum   int      `json:"grad_accum"`
		Steps       int      `json:"steps"`
		LR          float64  `json:"learning_rate"`
		Warmup      int      `json:"warmup_steps"`
		WeightDecay float64  `json:"weight_decay"`
		MaxGradNorm float64  `json:"max_grad_norm"`
		LoRAR       int      `json:"lora_r"`
		LoRAAlpha   float64  `json:"lora_alpha"`
		Targets     []string `json:"lora_target_modules"`
	} `json:"settings"`
	Full, LoRA struct {
		Loss     []float64 `json:"loss"`
		GradNorm []float64 `json:"grad_norm"`
	}
}

func readReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "parity", "losses.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func parityOptions(r reference, shards, out string) Options {
	s := r.Settings
	return Options{InputDataset: shards, BaseModel: filepath.Join("testdata", "parity", "base"), OutputModelDir: out,
		MaxSteps: s.Steps, LearningRate: s.LR, BatchSize: s.BatchSize, GradAccum: s.GradAccum,
		WarmupSteps: s.Warmup, WeightDecay: s.WeightDecay, MaxGradNorm: s.MaxGradNorm,
		Device: "cpu", DType: "float32", Threads: 1, noShuffle: true}
}

func readLog(t *testing.T, path string) (loss, norm []float64, evals int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("training_log.jsonl line %q: %v", sc.Text(), err)
		}
		if _, ok := l["eval_loss"]; ok {
			evals++
			continue
		}
		loss = append(loss, l["loss"])
		norm = append(norm, l["grad_norm"])
	}
	return loss, norm, evals
}

// TestLossParity: from the same initial weights, batches and AdamW
// settings, the first 20 losses (and grad norms) match the PyTorch
// reference (scripts/golden/train_reference.py) to 1e-4 relative, for
// full fine-tuning and for LoRA.
func TestLossParity(t *testing.T) {
	r := readReference(t)
	shards := fixtureShards(t)
	for _, tc := range []struct {
		name       string
		lora       bool
		loss, norm []float64
	}{{"full", false, r.Full.Loss, r.Full.GradNorm}, {"lora", true, r.LoRA.Loss, r.LoRA.GradNorm}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "model")
			o := parityOptions(r, shards, out)
			if tc.lora {
				o.LoRAR, o.LoRAAlpha, o.LoRATargetModules = r.Settings.LoRAR, r.Settings.LoRAAlpha, r.Settings.Targets
				o.initAdapter = filepath.Join("testdata", "parity", "lora_init.safetensors")
			}
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			loss, norm, _ := readLog(t, filepath.Join(out, "training_log.jsonl"))
			if len(loss) != len(tc.loss) {
				t.Fatalf("%d losses logged, reference has %d", len(loss), len(tc.loss))
			}
			worst, worstNorm := 0.0, 0.0
			for i := range loss {
				worst = math.Max(worst, math.Abs(loss[i]-tc.loss[i])/math.Abs(tc.loss[i]))
				worstNorm = math.Max(worstNorm, math.Abs(norm[i]-tc.norm[i])/math.Abs(tc.norm[i]))
				if d := math.Abs(loss[i]-tc.loss[i]) / math.Abs(tc.loss[i]); d > 1e-4 {
					t.Errorf("step %d: loss %.8f, PyTorch %.8f (relative %.2e)", i+1, loss[i], tc.loss[i], d)
				}
			}
			t.Logf("largest relative difference over %d steps: loss %.2e, grad norm %.2e", len(loss), worst, worstNorm)
			if worstNorm > 1e-3 {
				t.Errorf("grad norms differ from PyTorch by up to %.2e relative", worstNorm)
			}
		})
	}
}
