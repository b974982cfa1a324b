package engine_test

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kfllm/kfllm/internal/engine"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/server"
)

var (
	benchLoRARank    = flag.Int("lora-rank", 8, "BenchmarkServingAdapters: the adapters' rank")
	benchLoRATargets = flag.String("lora-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "BenchmarkServingAdapters: the modules the adapters change")
)

// BenchmarkServingAdapters is 8 concurrent clients (continuous batching,
// -bench-tokens each) in two setups: "merged", one model without adapters
// (a merged adapter changes the weights' values, not their shapes: it
// decodes as fast as its base), and "adapters=4", the same base with 4 LoRA
// adapters loaded and client c asking for adapter c%4, so that every
// prefill and decode step mixes 4 adapters. tok/s is the aggregate; the
// ratio adapters/merged is what docs/benchmarks.md reports (target >= 0.8).
func BenchmarkServingAdapters(b *testing.B) {
	dir := *servingBenchDir
	if dir == "" || fileMissing(filepath.Join(dir, "config.json")) {
		dir = b.TempDir()
		writeBenchModel(b, dir)
	}
	targets := strings.Split(*benchLoRATargets, ",")
	var refs []engine.AdapterRef
	for i := range 4 {
		ad := filepath.Join(b.TempDir(), fmt.Sprintf("a%d", i))
		writeAdapter(b, ad, dir, dir, targets, *benchLoRARank, uint64(10+i))
		refs = append(refs, engine.AdapterRef{Name: fmt.Sprintf("a%d", i), Ref: ad})
	}
	const clients = 8
	for _, setup := range []string{"merged", "adapters=4"} {
		b.Run(setup, func(b *testing.B) {
			o := engine.Options{ModelDir: dir, Device: "cpu", DType: "float32",
				Threads: *benchThreads, Scheduler: scheduler.Options{MaxBatch: 8, MaxNewTokens: *benchTokens}}
			if setup != "merged" {
				o.Adapters = refs
			}
			backend, err := engine.Load(context.Background(), o)
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
						opts := []llms.CallOption{llms.WithMaxTokens(*benchTokens)}
						if setup != "merged" {
							opts = append(opts, llms.WithModel(refs[c%len(refs)].Name))
						}
						resp, err := backend.LLM.GenerateContent(context.Background(), []llms.MessageContent{
							llms.TextParts(llms.ChatMessageTypeHuman, fmt.Sprintf("Client %d asks: what is the capital of France?", c))}, opts...)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := resp.Choices[0].GenerationInfo[server.InfoCompletionTokens].(int)
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
			b.ReportMetric(float64(tokens)/(cpuTime()-cpu0).Seconds(), "tok/cpu-s")
			b.ReportMetric(float64(backend.Stats().Steps-steps0)/float64(b.N), "steps/op")
		})
	}
}
