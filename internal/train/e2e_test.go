package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/synth"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// qaFixture makes what the pipeline hands finetune for the demo, small:
// synthetic QA records tokenized with the shared prompt into right-padded
// shards, a held-out records file, and a random tiny Llama base model.
func qaFixture(t *testing.T, nTrain, nEval, maxLen int) (shards, base, heldout string) {
	t.Helper()
	root := t.TempDir()
	train, eval := synth.Generate(synth.Options{Seed: 3, Train: nTrain, Eval: nEval})
	var texts []string
	for _, r := range train {
		texts = append(texts, r.Context, r.Question, r.Answer)
	}
	tok, err := tokenizer.TrainBPE(texts, 400)
	if err != nil {
		t.Fatal(err)
	}
	shards = filepath.Join(root, "shards")
	writeQAShards(t, tok, shards, train, eval[:len(eval)/2], maxLen)
	heldout = filepath.Join(root, "heldout.jsonl")
	f, err := os.Create(heldout)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range eval {
		b, _ := json.Marshal(r)
		fmt.Fprintf(f, "%s\n", b)
	}
	f.Close()
	eos, _ := tok.EOS()
	cfg, err := model.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":%d,
		"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,
		"max_position_embeddings":256,"rms_norm_eps":1e-5,"tie_word_embeddings":true,"bos_token_id":%d,"eos_token_id":%d}`,
		tok.VocabSize(), eos, eos)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.NewRandom(cfg, 1, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base = filepath.Join(root, "base")
	if err := m.Save(base); err != nil {
		t.Fatal(err)
	}
	return shards, base, heldout
}

// writeQAShards writes what tokenize hands finetune: records tokenized
// with the shared prompt into right-padded shards (records longer than
// maxLen left out), and the tokenizer.
func writeQAShards(t *testing.T, tok *tokenizer.Tokenizer, shards string, train, eval []synth.Record, maxLen int) {
	t.Helper()
	if err := tok.Save(filepath.Join(shards, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	write := func(name string, recs []synth.Record) {
		var ids, labels, mask []int32
		n := 0
		for _, r := range recs {
			ex, err := prompt.Build(tok, prompt.Record{Context: r.Context, Question: r.Question, Answer: r.Answer}, maxLen)
			if err != nil {
				continue
			}
			n++
			for j := 0; j < maxLen; j++ {
				if j < len(ex.InputIDs) {
					ids, labels, mask = append(ids, int32(ex.InputIDs[j])), append(labels, int32(ex.Labels[j])), append(mask, 1)
				} else {
					ids, labels, mask = append(ids, int32(eos)), append(labels, -100), append(mask, 0)
				}
			}
		}
		if n == 0 {
			t.Fatalf("%s: no record fits in %d tokens", name, maxLen)
		}
		shape := []int64{int64(n), int64(maxLen)}
		err := safetensors.WriteFile(filepath.Join(shards, name), []safetensors.Tensor{
			{Name: "input_ids", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(ids)},
			{Name: "labels", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(labels)},
			{Name: "attention_mask", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(mask)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	write("train.safetensors", train)
	write("eval.safetensors", eval)
}

// TestQAEvalAndMetrics: a run with --qa-eval scores the held-out set
// before and after training, and writes metrics.json and the KFP metrics
// artifact with train/eval loss and EM/F1.
func TestQAEvalAndMetrics(t *testing.T) {
	shards, base, heldout := qaFixture(t, 64, 24, 160)
	tmp := t.TempDir()
	var progress strings.Builder
	o := Options{InputDataset: shards, BaseModel: base, OutputModelDir: filepath.Join(tmp, "model"),
		MaxSteps: 6, BatchSize: 8, LearningRate: 2e-3, Device: "cpu", Threads: 1, EvalSteps: 3, Progress: &progress,
		QAEval: heldout, QAEvalMax: 10, QAMaxNewTokens: 8, MetricsOutput: filepath.Join(tmp, "kfp", "metrics")}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Both evaluations show up in the progress, the scores when each is done.
	for _, want := range []string{"qa eval before fine-tuning: 10 held-out questions", "qa eval before fine-tuning: exact match",
		"qa eval after fine-tuning: 10 held-out questions", "qa eval after fine-tuning: exact match"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var met Metrics
	if err := json.Unmarshal(mustRead(t, filepath.Join(o.OutputModelDir, "metrics.json")), &met); err != nil {
		t.Fatal(err)
	}
	if met.QA == nil || met.QA.Before == nil || met.QA.After == nil || met.QA.Before.N != 10 || met.QA.After.N != 10 {
		t.Fatalf("metrics.json qa = %+v, want before and after over 10 questions", met.QA)
	}
	if met.Steps != 6 || met.TrainLoss <= 0 || met.EvalLoss <= 0 || met.EvalPerplexity <= 1 || met.TokensPerSec <= 0 {
		t.Errorf("metrics.json = %+v", met)
	}
	if !reflect.DeepEqual(met, res.Metrics) {
		t.Errorf("Run returned %+v, metrics.json has %+v", res.Metrics, met)
	}
	var kfp struct {
		Metrics []struct {
			Name        string  `json:"name"`
			NumberValue float64 `json:"numberValue"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(mustRead(t, o.MetricsOutput), &kfp); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range kfp.Metrics {
		got[m.Name] = m.NumberValue
	}
	if got["eval_loss"] != met.EvalLoss || got["train_loss"] != met.TrainLoss || got["qa_f1_after"] != met.QA.After.F1 {
		t.Errorf("KFP metrics %v do not match metrics.json %+v", got, met)
	}
	// The untrained random model answers nothing right.
	if met.QA.Before.ExactMatch != 0 {
		t.Errorf("exact match before training = %v, want 0 for a random model", met.QA.Before.ExactMatch)
	}
}
