package model

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/torch"
)

// BenchmarkDecodeBatch: greedy decode steps of 1 and of 8 sequences (prompts
// of 10 to 17 tokens, prefilled together, not timed), as a serving batch
// runs them, with a BatchCache (as the server) and with caches of their
// own (stacked on every step); tok/s counts every sequence's tokens.
func BenchmarkDecodeBatch(b *testing.B) {
	m := benchModel(b)
	defer m.Close()
	ctx := context.Background()
	for _, bench := range []struct {
		n     int
		batch bool
	}{{1, true}, {8, true}, {1, false}, {8, false}} {
		n := bench.n
		cache := map[bool]string{true: "batch", false: "own"}[bench.batch]
		b.Run(fmt.Sprintf("cache=%s/seqs=%d", cache, n), func(b *testing.B) {
			var elapsed time.Duration
			var ops, tokens int64
			var cpu float64
			for i := -1; i < b.N; i++ { // i == -1 warms up
				seqs := make([]*Sequence, n)
				newSeq := m.NewSequence
				if bench.batch {
					newSeq = m.NewBatchCache().NewSequence
				}
				for j := range seqs {
					sq, err := newSeq(benchTokens(10+j, uint64(j)), GenerateOptions{MaxNewTokens: benchDecode + 1, EOS: []int{}})
					if err != nil {
						b.Fatal(err)
					}
					seqs[j] = sq
				}
				if err := m.Prefill(ctx, seqs); err != nil {
					b.Fatal(err)
				}
				start, ops0, cpu0 := time.Now(), torch.OpCount(), cpuSeconds(b)
				for !seqs[0].Done() {
					if err := m.DecodeStep(ctx, seqs); err != nil {
						b.Fatal(err)
					}
				}
				if i >= 0 {
					elapsed += time.Since(start)
					ops += torch.OpCount() - ops0
					cpu += cpuSeconds(b) - cpu0
					tokens += int64(benchDecode * n)
				}
				for _, sq := range seqs {
					sq.Release()
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tok/s")
			b.ReportMetric(float64(tokens)/cpu, "tok/cpu-s")
			b.ReportMetric(float64(ops)/float64(benchDecode*b.N), "ops/step")
			b.ReportMetric(elapsed.Seconds()*1e3/float64(benchDecode*b.N), "ms/step")
		})
	}
}
