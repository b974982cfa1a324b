package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTexts is the corpus for BenchmarkEncodeBatch: the JSON lines file in
// KFLLM_BENCH_CORPUS ({"text": ...} a line; bench/tokenizer_bench.sh makes a
// ~10 MB one), else the committed test corpus repeated to ~1 MB.
func benchTexts(b *testing.B) ([]string, int) {
	b.Helper()
	var texts []string
	if p := os.Getenv("KFLLM_BENCH_CORPUS"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				b.Fatal(err)
			}
			texts = append(texts, r.Text)
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	} else {
		var base []string
		for _, c := range corpusCases(b) {
			if c.line < 0 {
				base = append(base, c.text)
			}
		}
		for n := 0; n < 1<<20; {
			for _, t := range base {
				texts = append(texts, t+" "+strings.Repeat("x", len(texts)%7))
				n += len(t)
			}
		}
	}
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	return texts, n
}

// BenchmarkEncodeBatch measures EncodeBatch on all cores; MB/s is input
// bytes per second. bench/tokenizer_bench.sh compares it with Python's
// encode_batch on the same corpus.
func BenchmarkEncodeBatch(b *testing.B) {
	texts, n := benchTexts(b)
	for _, name := range testTokenizers {
		b.Run(name, func(b *testing.B) {
			tok := loadTest(b, name)
			b.SetBytes(int64(n))
			b.ResetTimer()
			cpu0 := cpuTime(b)
			defer func() {
				// CPU seconds per MB of input: steadier than wall time on a shared machine.
				b.ReportMetric((cpuTime(b)-cpu0).Seconds()/(float64(n)*float64(b.N)/1e6), "cpu-s/MB")
			}()
			for i := 0; i < b.N; i++ {
				// A fresh word cache each round, as a new Python process has.
				if tok.bpe != nil {
					tok.bpe.cache = newWordCache()
				}
				if _, err := tok.EncodeBatch(texts, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
