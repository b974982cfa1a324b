package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/gguf"
)

// BenchmarkQuantMatmul: one decode batch (1 or 8 rows) times SmolLM2's
// MLP up projection [1536,576] and its tied lm_head [49152,576], per type,
// in the layout LoadGGUF gives (Q4_0 packed); cpu-ns/block is per product
// of a 32-element weight block and an activation block.
func BenchmarkQuantMatmul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []gguf.Type{gguf.Q8_0, gguf.Q4_0, gguf.Q4_1} {
		for _, n := range []int64{1536, 49152} {
			const k = 576
			w, err := newQuantWeight(typ, []int64{n, k}, randomBlocks(r, typ, n, k))
			if err != nil {
				b.Fatal(err)
			}
			if !placeOffHeap([]*quantWeight{w}) { // as LoadGGUF does: packed where quant.c has a packed layout
				b.Fatal("no C memory")
			}
			defer w.free()
			for _, m := range []int64{1, 8} {
				b.Run(fmt.Sprintf("%s/%dx%d/rows=%d", typ, n, k, m), func(b *testing.B) {
					var s scope
					defer s.Free()
					x := s.Floats(gotch.CPU, gotch.Float, randFloats(r, m*k), m, k)
					b.SetBytes(int64(len(w.data)))
					cpu0 := cpuSeconds(b)
					for b.Loop() {
						mark := s.Mark()
						s.quantMatmul(x, w)
						s.Release(mark)
					}
					// CPU time holds up on a shared machine; wall time does not.
					cpu := cpuSeconds(b) - cpu0
					b.ReportMetric(cpu*1e6/float64(b.N), "cpu-us/op")
					b.ReportMetric(cpu*1e9/float64(b.N)/float64(m*n*k/qblock), "cpu-ns/block")
					if !s.OK() {
						b.Fatal(s.Err())
					}
				})
			}
		}
	}
}

// BenchmarkQuantStepProducts: the products of one SmolLM2-135M decode step
// from its GGUF ($KFLLM_CACHE/smollm2), kernels alone: every quantized
// matrix (30 layers' 7 projections and the tied Q8_0 lm_head) times 1 or 8
// rows, each input quantized once, on libtorch's threads. MB/s is the
// weights' bytes read per second: what a memory-bound decode step needs
// (llama-server's whole Q4_1 step at 89.3 tok/s reads 8.6 GB/s).
func BenchmarkQuantStepProducts(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range []string{"Q4_1", "Q8_0", "Q4_0"} {
		src := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct."+typ+".gguf")
		if _, err := os.Stat(src); err != nil {
			continue
		}
		m, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}})
		if err != nil {
			b.Fatal(err)
		}
		var ws []*quantWeight
		var bytes, blocks int64
		for _, w := range m.quant {
			ws = append(ws, w)
			bytes += int64(len(w.data))
			blocks += w.out * w.in / qblock
		}
		for _, rows := range []int64{1, 8} {
			b.Run(fmt.Sprintf("%s/rows=%d", typ, rows), func(b *testing.B) {
				var s scope
				defer s.Free()
				xs := map[int64]ct{}
				for _, w := range ws {
					if xs[w.in] == nil {
						xs[w.in] = s.Floats(gotch.CPU, gotch.Float, randFloats(r, rows*w.in), rows, w.in)
					}
				}
				b.SetBytes(bytes)
				cpu0 := cpuSeconds(b)
				for b.Loop() {
					mark := s.Mark()
					for _, w := range ws {
						s.quantMatmul(xs[w.in], w)
					}
					s.Release(mark)
				}
				cpu := cpuSeconds(b) - cpu0
				b.ReportMetric(cpu*1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(cpu*1e9/float64(b.N)/float64(rows*blocks), "cpu-ns/block")
				if !s.OK() {
					b.Fatal(s.Err())
				}
			})
		}
		m.Close()
	}
}

// BenchmarkDecodeGGUF: greedy decode steps of SmolLM2-135M-Instruct from
// its GGUF ($KFLLM_CACHE/smollm2; Q8_0 and Q4_0 when
// bench/llamacpp_vs_kfllm.sh has made them), quantized and dequantized to
// float32, for 1 and 8 sequences; tok/s and tok per CPU-second.
func BenchmarkDecodeGGUF(b *testing.B) {
	for _, typ := range []string{"Q4_1", "Q8_0", "Q4_0"} {
		src := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct."+typ+".gguf")
		if _, err := os.Stat(src); err != nil {
			continue
		}
		for _, deq := range []bool{false, true} {
			m, err := LoadGGUF(src, GGUFOptions{LoadOptions: LoadOptions{Device: "cpu", DType: "float32"}, Dequantize: deq})
			if err != nil {
				b.Fatal(err)
			}
			name := typ
			if deq {
				name += "-as-F32"
			}
			for _, batch := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/seqs=%d", name, batch), func(b *testing.B) { benchDecodeSeqs(b, m, batch, 32) })
			}
			m.Close()
		}
	}
}

func benchDecodeSeqs(b *testing.B, m *Model, batch, steps int) {
	ctx := context.Background()
	var elapsed time.Duration
	var cpu float64
	tokens := 0
	for i := -1; i < b.N; i++ {
		seqs := make([]*Sequence, batch)
		newSeq := m.NewBatchCache().NewSequence // as serving does: the C decode step where it applies
		for j := range seqs {
			sq, err := newSeq(benchTokens(16, uint64(j)), GenerateOptions{MaxNewTokens: steps + 1, EOS: []int{}})
			if err != nil {
				b.Fatal(err)
			}
			seqs[j] = sq
		}
		if err := m.Prefill(ctx, seqs); err != nil {
			b.Fatal(err)
		}
		start, cpu0 := time.Now(), cpuSeconds(b)
		for range steps {
			if err := m.DecodeStep(ctx, seqs); err != nil {
				b.Fatal(err)
			}
		}
		if i >= 0 {
			elapsed += time.Since(start)
			cpu += cpuSeconds(b) - cpu0
			tokens += steps * batch
		}
		for _, sq := range seqs {
			sq.Release()
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tok/s")
	b.ReportMetric(float64(tokens)/cpu, "tok/cpu-s")
}
