// Command dataparallel measures data-parallel fine-tuning on this machine:
// finetune on one rank with one thread, on one rank with two threads, and
// on two ranks (--nproc-per-node 2) with one thread each, the same global
// batch, alternating the configurations round by round. It reports
// training tokens/s (the training loop's wall time), tokens per CPU-second
// (every process of the job, loading included; and the training loop's,
// rank 0's CPU time times the ranks) and the share of rank 0's
// training time spent in collectives, as a Markdown table (median of the
// rounds). bench/dataparallel.sh builds finetune and runs it.
//
//	go run ./bench/dataparallel -finetune bin/finetune -steps 20 -rounds 3
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

func main() {
	bin := flag.String("finetune", "bin/finetune", "the finetune binary")
	steps := flag.Int("steps", 20, "optimizer steps per run")
	rounds := flag.Int("rounds", 3, "rounds; each runs every configuration once")
	hidden := flag.Int("hidden", 256, "model width")
	layers := flag.Int("layers", 4, "decoder layers")
	vocab := flag.Int("vocab", 8000, "vocabulary size")
	batch := flag.Int("batch", 8, "global batch (rows per optimizer step)")
	seq := flag.Int("seq", 128, "tokens per row")
	lora := flag.Int("lora-r", 0, "LoRA rank (0: full fine-tuning)")
	flag.Parse()
	if err := run(*bin, *steps, *rounds, *hidden, *layers, *vocab, *batch, *seq, *lora); err != nil {
		fmt.Fprintln(os.Stderr, "dataparallel:", err)
		os.Exit(1)
	}
}

type config struct {
	name           string
	ranks, threads int
}

type result struct {
	tps, tpcpu, tploop, share float64
}

func run(bin string, steps, rounds, hidden, layers, vocab, batch, seq, lora int) error {
	work, err := os.MkdirTemp("", "dataparallel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	params, err := fixture(work, hidden, layers, vocab, steps*batch, seq)
	if err != nil {
		return err
	}
	configs := []config{{"1 rank × 1 thread", 1, 1}, {"1 rank × 2 threads", 1, 2}, {"2 ranks × 1 thread", 2, 1}}
	res := make([][]result, len(configs))
	for r := 0; r < rounds; r++ {
		for i, c := range configs {
			x, err := once(bin, work, c, steps, batch, lora)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %s: %.0f tok/s, %.0f tok/CPU-s (job), %.0f tok/CPU-s (loop), collectives %.1f%%\n", r+1, c.name, x.tps, x.tpcpu, x.tploop, 100*x.share)
			res[i] = append(res[i], x)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	mode := "full fine-tuning"
	if lora > 0 {
		mode = fmt.Sprintf("LoRA r=%d on q_proj,v_proj", lora)
	}
	fmt.Printf("Random Llama, hidden %d, %d layers, vocab %d (%.1fM parameters), %s, float32, CPU; global batch %d × %d tokens, %d steps, median of %d alternating rounds; load average at the end %s.\n\n",
		hidden, layers, vocab, float64(params)/1e6, mode, batch, seq, steps, rounds, strings.Fields(string(load))[0])
	fmt.Println("| configuration | train tokens/s | tokens per CPU-second, whole job | tokens per CPU-second, training loop | collectives share of a step (rank 0) |")
	fmt.Println("|---|---|---|---|---|")
	for i, c := range configs {
		med := func(f func(result) float64) float64 {
			v := make([]float64, len(res[i]))
			for k, x := range res[i] {
				v[k] = f(x)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		share := "-"
		if c.ranks > 1 {
			share = fmt.Sprintf("%.1f%%", 100*med(func(x result) float64 { return x.share }))
		}
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %s |\n", c.name, med(func(x result) float64 { return x.tps }),
			med(func(x result) float64 { return x.tpcpu }), med(func(x result) float64 { return x.tploop }), share)
	}
	return nil
}

// once runs finetune in configuration c and reads its metrics.json.
func once(bin, work string, c config, steps, batch, lora int) (result, error) {
	out := filepath.Join(work, "out")
	os.RemoveAll(out)
	args := []string{"--input-dataset", filepath.Join(work, "shards"), "--base-model", filepath.Join(work, "base"),
		"--output-model-dir", out, "--max-steps", strconv.Itoa(steps), "--batch-size", strconv.Itoa(batch / c.ranks),
		"--learning-rate", "1e-4", "--device", "cpu", "--dtype", "float32", "--threads", strconv.Itoa(c.threads),
		"--log-every", "1000", "--lora-r", strconv.Itoa(lora)}
	if c.ranks > 1 {
		args = append(args, "--nproc-per-node", strconv.Itoa(c.ranks))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(c.threads))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	// wait4's rusage covers the launcher and the ranks it reaped.
	cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	b, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		return result{}, err
	}
	var m struct {
		Tokens    float64 `json:"train_tokens"`
		TPS       float64 `json:"tokens_per_second"`
		Runtime   float64 `json:"train_runtime_seconds"`
		CPU       float64 `json:"train_cpu_seconds"`
		AllReduce float64 `json:"allreduce_seconds"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return result{}, err
	}
	// train_cpu_seconds is rank 0's process: the ranks do the same work.
	return result{tps: m.TPS, tpcpu: m.Tokens / cpu, tploop: m.Tokens / (m.CPU * float64(c.ranks)), share: m.AllReduce / m.Runtime}, nil
}

// fixture writes a random Llama base model and a token shard of n rows of
// random ids (every position labelled), with a small tokenizer beside it
// (finetune copies it into the output; the ids need not be its).
func fixture(work string, hidden, layers, vocab, n, seq int) (int64, error) {
	cfg, err := model.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":%d,
		"hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,
		"max_position_embeddings":%d,"rms_norm_eps":1e-5,"tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":2}`,
		vocab, hidden, hidden*8/3, layers, hidden/64, hidden/64, max(seq, 256))))
	if err != nil {
		return 0, err
	}
	m, err := model.NewRandom(cfg, 1, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	if err := m.Save(filepath.Join(work, "base")); err != nil {
		return 0, err
	}
	var params int64
	for _, p := range m.Parameters() {
		k := int64(1)
		for _, d := range p.Tensor.MustSize() {
			k *= d
		}
		params += k
	}
	rng := rand.New(rand.NewPCG(7, 7))
	ids := make([]int32, n*seq)
	mask := make([]int32, n*seq)
	for i := range ids {
		ids[i], mask[i] = int32(3+rng.IntN(vocab-3)), 1
	}
	shape := []int64{int64(n), int64(seq)}
	shards := filepath.Join(work, "shards")
	if err := os.MkdirAll(shards, 0o755); err != nil {
		return 0, err
	}
	err = safetensors.WriteFile(filepath.Join(shards, "train.safetensors"), []safetensors.Tensor{
		{Name: "input_ids", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(ids)},
		{Name: "labels", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(ids)},
		{Name: "attention_mask", DType: safetensors.I32, Shape: shape, Data: safetensors.BytesOfInt32s(mask)},
	}, nil)
	if err != nil {
		return 0, err
	}
	tok, err := tokenizer.TrainBPE([]string{"data-parallel fine-tuning benchmark"}, 260)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	defer func() { fmt.Fprintf(os.Stderr, "fixture written in %v\n", time.Since(start).Round(time.Millisecond)) }()
	return params, tok.Save(filepath.Join(shards, "tokenizer"))
}
