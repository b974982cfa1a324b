package model

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/torch"
)

var benchHuge = flag.Bool("huge-weights", true, "BenchmarkFusedStep: the weights on transparent huge pages (hugepage_linux.go)")

// anonHugeMB is the process's memory on transparent huge pages.
func anonHugeMB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb float64
		if _, err := fmt.Sscanf(sc.Text(), "AnonHugePages: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkFusedStep: the C decode step of SmolLM2-135M in float32 (its
// Q4_1 GGUF from $KFLLM_CACHE/smollm2, dequantized: the shapes and bytes
// of the F32 model the serving benchmark runs), 1 and 8 sequences of one
// BatchCache as the server runs them, on -threads threads. Besides ms a
// step, it reports each phase kind's share of a step as thread 0 sees it
// (decode_amd64.c's kf_prof_ns: a phase ends when all threads are done
// with it) and, for the phases that are weight products, the weights'
// GB/s (one step reads every weight once), and the process's memory on
// huge pages (-huge-weights=false: the weights left on small pages) and
// its resident set after the steps.
func BenchmarkFusedStep(b *testing.B) {
	src := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(src); err != nil {
		b.Skip("no SmolLM2 GGUF in $KFLLM_CACHE/smollm2 (make setup fetches it)")
	}
	torch.SetThreads(*benchThreads)
	hugePages = *benchHuge
	defer func() { hugePages = true }()
	t0 := time.Now()
	m, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}, Dequantize: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("load (huge pages %v): %v", hugePages, time.Since(t0))
	defer m.Close()
	c := m.Config
	h, inter, v, l := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize), int64(c.NumLayers)
	qd, kd := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	bytes := map[string]int64{"qkv": 4 * l * h * (qd + 2*kd), "o": 4 * l * qd * h, "gateup": 4 * l * 2 * h * inter,
		"down": 4 * l * inter * h, "head": 4 * v * h}
	const steps = 32
	for _, rows := range []int{1, 8} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			ctx := context.Background()
			var elapsed time.Duration
			var prof [len(fusedProfileKinds)]int64
			n := 0
			for i := -1; i < b.N; i++ { // i == -1 warms up
				bc := m.NewBatchCache()
				seqs := make([]*Sequence, rows)
				for j := range seqs {
					sq, err := bc.NewSequence(benchTokens(16, uint64(j)), GenerateOptions{MaxNewTokens: steps + 1, EOS: []int{}})
					if err != nil {
						b.Fatal(err)
					}
					seqs[j] = sq
				}
				if err := m.Prefill(ctx, seqs); err != nil {
					b.Fatal(err)
				}
				fusedProfile(i >= 0)
				start := time.Now()
				for range steps {
					if err := m.DecodeStep(ctx, seqs); err != nil {
						b.Fatal(err)
					}
				}
				if i >= 0 {
					elapsed += time.Since(start)
					n += steps
				}
				p := fusedProfile(false)
				for k := range p {
					prof[k] += p[k]
				}
				if m.fused == nil {
					b.Fatal("the decode step did not take the C path")
				}
				for _, sq := range seqs {
					sq.Release()
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(anonHugeMB(b), "huge-MB")
			b.ReportMetric(rssKB(b)/1024, "rss-MB")
			b.ReportMetric(elapsed.Seconds()*1e3/float64(n), "ms/step")
			var products, all int64
			for k, name := range fusedProfileKinds {
				all += prof[k]
				b.ReportMetric(float64(prof[k])/1e6/float64(n), name+"-ms")
				if by, ok := bytes[name]; ok {
					products += prof[k]
					b.ReportMetric(float64(by)*float64(n)/float64(prof[k]), name+"-GB/s")
				}
			}
			var total int64
			for _, by := range bytes {
				total += by
			}
			b.ReportMetric(float64(total)*float64(n)/float64(products), "products-GB/s")
			b.ReportMetric(float64(elapsed.Nanoseconds()-all)/1e6/float64(n), "outside-ms")
		})
	}
}
