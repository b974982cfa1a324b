package gguf

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkConvertSmolLM2 converts the real 135M-parameter Q4_1 GGUF (98 MB
// in, 538 MB of float32 safetensors out). Peak memory: run the test binary
// under /usr/bin/time -v.
func BenchmarkConvertSmolLM2(b *testing.B) {
	src := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(src); err != nil {
		b.Skipf("no real GGUF: %v", err)
	}
	fi, _ := os.Stat(src)
	b.SetBytes(fi.Size())
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(b.TempDir(), "m")
		if err := ConvertLlama(context.Background(), src, out, ConvertOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDequantizeQ4_1(b *testing.B) {
	raw := make([]byte, 20*1024)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	dst := make([]float32, 32*1024)
	b.SetBytes(int64(len(dst) * 4))
	for b.Loop() {
		if err := Dequantize(dst, Q4_1, raw); err != nil {
			b.Fatal(err)
		}
	}
}
