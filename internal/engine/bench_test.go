package engine_test

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

var (
	servingBenchDir = flag.String("serving-bench-dir", "", "TestWriteServingBenchModel saves the benchmark model here (bench/serving_bench.sh)")
	benchThreads    = flag.Int("threads", 2, "libtorch intra-op threads for benchmarks")
	benchTokens     = flag.Int("bench-tokens", 128, "tokens each client generates per benchmark iteration")
	benchShape      = flag.String("serving-bench-shape", "small", "benchmark model: small (internal/model's benchmark shape, vocab 8000), gpt2vocab (the same with the GPT-2 tokenizer, vocab 50257), medium (hidden 768, 12 layers, vocab 8000) or smollm2 (SmolLM2-135M's layers, tied embeddings, GPT-2 tokenizer)")
)

// writeBenchModel saves a random Llama and its tokenizer into dir:
//
//	small      internal/model's benchmark shape (hidden 256, 6 layers, 8 heads
//	           over 4 KV heads, MLP 1024), a byte-level BPE of 8000 tokens trained
//	           on Go's own sources: ~10M parameters, its weights fit in cache
//	gpt2vocab  the same layers with the real GPT-2 tokenizer (vocab 50257):
//	           ~30M parameters, the LM head dominating
//	medium     hidden 768, 12 layers, 12 heads over 4 KV heads, MLP 2048, vocab
//	           8000: ~85M parameters (340 MB fp32), single-stream decoding
//	           bound by memory bandwidth as real models are
//	smollm2    SmolLM2-135M's layers (hidden 576, 30 layers, 9 heads over 3 KV
//	           heads, MLP 1536) and tied embeddings, with the GPT-2 tokenizer
//	           (vocab 50257): ~135M parameters, the lm_head the embedding
func writeBenchModel(t testing.TB, dir string) {
	t.Helper()
	var tok *tokenizer.Tokenizer
	var err error
	if *benchShape == "gpt2vocab" || *benchShape == "smollm2" {
		src := filepath.Join(os.Getenv("KFLLM_TOKENIZERS"), "gpt2")
		if tok, err = tokenizer.Load(src); err != nil {
			t.Skipf("GPT-2 tokenizer (make setup): %v", err)
		}
	} else if tok, err = tokenizer.TrainBPE(goSources(t, 1<<20), 8000); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	cfg := &model.Config{Architecture: model.ArchLlama, VocabSize: tok.VocabSize(), HiddenSize: 256, IntermediateSize: 1024,
		NumLayers: 6, NumHeads: 8, NumKVHeads: 4, MaxPositions: 2048, RopeTheta: 10000, RMSNormEps: 1e-5,
		BOS: []int{eos}, EOS: []int{eos}, Pad: -1}
	switch *benchShape {
	case "small", "gpt2vocab":
	case "medium":
		cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads = 768, 2048, 12, 12, 4
	case "smollm2":
		cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads = 576, 1536, 30, 9, 3
		cfg.TieWordEmbeddings = true
	default:
		t.Fatalf("unknown -serving-bench-shape %q", *benchShape)
	}
	m, err := model.NewRandom(cfg, 1, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
}

// goSources reads up to n bytes of Go's standard library sources: a text
// corpus that every machine with a Go toolchain has.
func goSources(t testing.TB, n int) []string {
	var texts []string
	total := 0
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(goroot)), "src", "net", "http")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || total >= n || !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil {
			texts = append(texts, string(b))
			total += len(b)
		}
		return nil
	})
	if total == 0 {
		t.Skipf("no Go sources under %s", root)
	}
	return texts
}

// TestWriteServingBenchModel saves the benchmark model for
// bench/serving_bench.sh; skipped unless -serving-bench-dir is given.
func TestWriteServingBenchModel(t *testing.T) {
	if *servingBenchDir == "" {
		t.Skip("no -serving-bench-dir")
	}
	writeBenchModel(t, *servingBenchDir)
}

// BenchmarkServingDecode measures generation through the scheduler and the
// langchaingo adapter, as the server runs it: one client alone, then 8 at
// once (continuous batching). tok/s is the aggregate over all clients,
// prefill included; each client asks for -bench-tokens new tokens.
func BenchmarkServingDecode(b *testing.B) {
	dir := *servingBenchDir
	if dir == "" || fileMissing(filepath.Join(dir, "config.json")) {
		dir = b.TempDir()
		writeBenchModel(b, dir)
	}
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			backend, err := engine.Load(context.Background(), engine.Options{ModelDir: dir, Device: "cpu", DType: "float32",
				Threads: *benchThreads, Scheduler: scheduler.Options{MaxBatch: 8, MaxNewTokens: *benchTokens}})
			if err != nil {
				b.Fatal(err)
			}
			defer backend.Close(context.Background())
			run := func() int {
				var wg sync.WaitGroup
				var mu sync.Mutex
				total := 0
				for c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						n, err := generate(backend, fmt.Sprintf("Client %d asks: what is the capital of France?", c))
						if err != nil {
							b.Error(err)
						}
						mu.Lock()
						total += n
						mu.Unlock()
					}()
				}
				wg.Wait()
				return total
			}
			run() // warm up
			b.ResetTimer()
			start, cpu0, steps0 := time.Now(), cpuTime(), backend.Stats().Steps
			tokens := 0
			for range b.N {
				tokens += run()
			}
			b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tok/s")
			// Tokens per CPU second of this process: what batching saves, much
			// less sensitive than wall time to other jobs on a shared machine.
			b.ReportMetric(float64(tokens)/(cpuTime()-cpu0).Seconds(), "tok/cpu-s")
			b.ReportMetric(float64(tokens)/float64(b.N*clients), "tokens/client")
			// Decode steps per iteration: 127 when every client shares every step.
			b.ReportMetric(float64(backend.Stats().Steps-steps0)/float64(b.N), "steps/op")
		})
	}
}

func generate(backend *server.Backend, prompt string) (int, error) {
	resp, err := backend.LLM.GenerateContent(context.Background(),
		[]llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, prompt)}, llms.WithMaxTokens(*benchTokens))
	if err != nil {
		return 0, err
	}
	n, _ := resp.Choices[0].GenerationInfo[server.InfoCompletionTokens].(int)
	return n, nil
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fileMissing(p string) bool { _, err := os.Stat(p); return err != nil }
