package engine_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
)

// writeBenchModel saves a ~30M-parameter Llama (hidden 256, 6 layers, 8
// heads over 4 KV heads, MLP 1024: internal/model's benchmark shape) with
// the real GPT-2 tokenizer (vocab 50257) into dir.
func writeBenchModel(t testing.TB, dir string) {
	t.Helper()
	src := filepath.Join(os.Getenv("KFLLM_TOKENIZERS"), "gpt2")
	tok, err := tokenizer.Load(src)
	if err != nil {
		t.Skipf("GPT-2 tokenizer (make setup): %v", err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	cfg := &model.Config{Architecture: model.ArchLlama, VocabSize: tok.VocabSize(), HiddenSize: 256, IntermediateSize: 1024,
		NumLayers: 6, NumHeads: 8, NumKVHeads: 4, MaxPositions: 2048, RopeTheta: 10000, RMSNormEps: 1e-5,
		BOS: []int{eos}, EOS: []int{eos}, Pad: -1}
	m, err := model.NewRandom(cfg, 1, model.LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
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
			start := time.Now()
			tokens := 0
			for range b.N {
				tokens += run()
			}
			b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tok/s")
			b.ReportMetric(float64(tokens)/float64(b.N*clients), "tokens/client")
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

func fileMissing(p string) bool { _, err := os.Stat(p); return err != nil }
