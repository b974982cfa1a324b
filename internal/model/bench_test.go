package model

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/torch"
)

var (
	benchThreads  = flag.Int("threads", 1, "libtorch intra-op threads for benchmarks")
	tuneMalloc    = flag.Bool("tune-malloc", true, "BenchmarkDecodeRSS calls torch.TuneAllocatorForServing first")
	rssTokens     = flag.Int("rss-tokens", 10000, "tokens BenchmarkDecodeRSS generates")
	benchModelDir = flag.String("bench-model-dir", "", "TestWriteBenchModel saves the benchmark model here (for bench/model_vs_transformers.sh)")
)

const (
	benchPrompt = 128 // prefill prompt length
	benchDecode = 128 // decode steps per iteration
)

// benchConfig is a ~10M-parameter Llama (GQA): hidden 256, 6 layers, 8
// heads over 4 KV heads, MLP 1024, vocab 8000, untied lm_head.
func benchConfig() *Config {
	return &Config{Architecture: ArchLlama, VocabSize: 8000, HiddenSize: 256, IntermediateSize: 1024,
		NumLayers: 6, NumHeads: 8, NumKVHeads: 4, MaxPositions: 2048, RopeTheta: 10000, RMSNormEps: 1e-5,
		BOS: []int{1}, EOS: []int{2}, Pad: -1}
}

func benchModel(b testing.TB) *Model {
	torch.SetThreads(*benchThreads)
	m, err := NewRandom(benchConfig(), 1, LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchTokens(n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]int, n)
	for i := range p {
		p[i] = 3 + r.IntN(7997)
	}
	return p
}

// TestWriteBenchModel saves the benchmark model for the side-by-side
// script; skipped unless -bench-model-dir is given.
func TestWriteBenchModel(t *testing.T) {
	if *benchModelDir == "" {
		t.Skip("no -bench-model-dir")
	}
	m := benchModel(t)
	defer m.Close()
	var n int64
	for _, p := range m.Parameters() {
		n += torch.Numel(p.Tensor.MustSize())
	}
	t.Logf("benchmark model: %d parameters", n)
	if err := m.Save(*benchModelDir); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPrefill: a 128-token prompt through Prefill (which also samples
// the first token), as transformers' generate(max_new_tokens=1) does.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	defer m.Close()
	prompt := benchTokens(benchPrompt, 7)
	ctx := context.Background()
	run := func() {
		sq, err := m.NewSequence(prompt, GenerateOptions{MaxNewTokens: 1, EOS: []int{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
			b.Fatal(err)
		}
		sq.Release()
	}
	run() // warm up
	b.ResetTimer()
	cpu0 := cpuSeconds(b)
	for i := 0; i < b.N; i++ {
		run()
	}
	b.ReportMetric(float64(benchPrompt*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(benchPrompt*b.N)/(cpuSeconds(b)-cpu0), "tok/cpu-s")
}

// cpuSeconds is the process's user+system CPU time. Per CPU-second rates
// hold up on a shared machine, where wall-clock rates follow other load.
func cpuSeconds(b testing.TB) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkDecode: 128 greedy decode steps after a 16-token prompt (the
// prefill is not timed).
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	defer m.Close()
	prompt := benchTokens(16, 7)
	ctx := context.Background()
	var elapsed time.Duration
	var ops int64
	var cpu float64
	for i := -1; i < b.N; i++ { // i == -1 warms up
		sq, err := m.NewSequence(prompt, GenerateOptions{MaxNewTokens: benchDecode + 1, EOS: []int{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
			b.Fatal(err)
		}
		start, ops0, cpu0 := time.Now(), torch.OpCount(), cpuSeconds(b)
		for !sq.Done() {
			if err := m.DecodeStep(ctx, []*Sequence{sq}); err != nil {
				b.Fatal(err)
			}
		}
		if i >= 0 {
			elapsed += time.Since(start)
			ops += torch.OpCount() - ops0
			cpu += cpuSeconds(b) - cpu0
		}
		sq.Release()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(benchDecode*b.N)/elapsed.Seconds(), "tok/s")
	b.ReportMetric(float64(ops)/float64(benchDecode*b.N), "ops/tok")
	b.ReportMetric(float64(benchDecode*b.N)/cpu, "tok/cpu-s")
}

// BenchmarkDecodeRSS generates 10,000 tokens as a server would (sequences
// of 1,000 tokens, each released when done) and reports how resident
// memory grows per 1,000 tokens after the first sequence has warmed up.
func BenchmarkDecodeRSS(b *testing.B) {
	if *tuneMalloc {
		torch.TuneAllocatorForServing()
	}
	m := benchModel(b)
	defer m.Close()
	ctx := context.Background()
	total, perSeq := *rssTokens, 1000
	for i := 0; i < b.N; i++ {
		var samples []float64
		for done := 0; done < total; done += perSeq {
			sq, err := m.NewSequence(benchTokens(16, uint64(done)), GenerateOptions{MaxNewTokens: perSeq, EOS: []int{}, Temperature: 0.8, TopK: 50, Seed: int64(done)})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
				b.Fatal(err)
			}
			for !sq.Done() {
				if err := m.DecodeStep(ctx, []*Sequence{sq}); err != nil {
					b.Fatal(err)
				}
			}
			sq.Release()
			runtime.GC()
			samples = append(samples, rssKB(b))
		}
		// Growth per 1,000 tokens: over the whole run, and the least-squares
		// slope of the second half, after allocator pools have warmed up.
		growth := (samples[len(samples)-1] - samples[0]) / float64(len(samples)-1)
		b.ReportMetric(samples[0]/1024, "MB-rss-after-1k")
		b.ReportMetric(samples[len(samples)-1]/1024, "MB-rss-end")
		b.ReportMetric(slices.Max(samples)/1024, "MB-rss-max")
		b.ReportMetric(growth, "KB-rss/1k-tok")
		b.ReportMetric(slope(samples[len(samples)/2:]), "KB-rss/1k-tok-2nd-half")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MB-go-heap")
		b.Logf("RSS (KB) after each 1,000 tokens: %v", samples)
	}
}

// rssKB reads VmRSS from /proc/self/status.
func rssKB(b testing.TB) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkDecodeOverhead decodes with a tiny model of the benchmark's
// shape in layers, so that time is per-op overhead, not arithmetic.
func BenchmarkDecodeOverhead(b *testing.B) {
	torch.SetThreads(*benchThreads)
	c := benchConfig()
	c.HiddenSize, c.IntermediateSize, c.VocabSize, c.NumHeads, c.NumKVHeads = 32, 64, 100, 4, 2
	m, err := NewRandom(c, 1, LoadOptions{Device: "cpu", DType: "float32"})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	sq, err := m.NewSequence([]int{5, 6, 7}, GenerateOptions{MaxNewTokens: 2000, EOS: []int{}})
	if err != nil {
		b.Fatal(err)
	}
	defer sq.Release()
	ctx := context.Background()
	if err := m.Prefill(ctx, []*Sequence{sq}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N && !sq.Done(); i++ {
		if err := m.DecodeStep(ctx, []*Sequence{sq}); err != nil {
			b.Fatal(err)
		}
	}
}

// slope is the least-squares slope of ys against 0, 1, 2, ...
func slope(ys []float64) float64 {
	n := float64(len(ys))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}
