package model

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/safetensors"
)

// ggufGolden reads input_ids and the named float tensors of a golden file
// written by scripts/golden/gguf_fixture.py.
func ggufGolden(t *testing.T, path string, names ...string) (ids []int64, vals map[string][]float32) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := f.Data("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	vals = map[string][]float32{}
	for _, n := range names {
		b, err := f.Data(n)
		if err != nil {
			t.Fatal(err)
		}
		vals[n] = safetensors.Float32s(b)
	}
	return safetensors.Int64s(raw), vals
}

// ggufLogits converts a GGUF with internal/gguf, loads the result and returns
// the logits [T, V] of one unpadded sequence.
func ggufLogits(t *testing.T, src string, ids []int64) (*Model, []float32) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := gguf.ConvertLlama(context.Background(), src, dir, gguf.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	m := loadCPU(t, dir)
	shape := []int64{1, int64(len(ids))}
	mask := make([]int64, len(ids))
	for i := range mask {
		mask[i] = 1
	}
	logits, err := m.Forward(tensorOf(t, ids, shape), tensorOf(t, mask, shape))
	if err != nil {
		t.Fatal(err)
	}
	defer logits.MustDrop()
	return m, valuesOf(t, logits)
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestGGUFParityTiny: the tiny llama GGUF of internal/gguf/testdata (block
// tensors in F32, F16, BF16, Q8_0, Q4_0, Q4_1; GQA; tied embeddings),
// converted by internal/gguf and run here, gives the logits transformers
// gives when it loads the same GGUF itself (gguf_file=, lm_head tied by
// hand). Golden: testdata/gguf/expected.safetensors.
func TestGGUFParityTiny(t *testing.T) {
	ids, want := ggufGolden(t, "testdata/gguf/expected.safetensors", "logits")
	m, got := ggufLogits(t, "../gguf/testdata/llama_tiny.gguf", ids)
	if len(got) != len(ids)*m.Config.VocabSize || len(got) != len(want["logits"]) {
		t.Fatalf("%d logits, want %d", len(got), len(want["logits"]))
	}
	d := maxAbsDiff(got, want["logits"])
	t.Logf("max |logit delta| %g", d)
	if d > logitTol {
		t.Errorf("max |logit delta| %g > %g", d, logitTol)
	}
}

// TestGGUFParitySmolLM2: the real SmolLM2-135M-Instruct Q4_1 GGUF (skipped
// when $KFLLM_CACHE/smollm2 does not have it), converted and run here, gives
// transformers' logits (GGUF loaded by transformers, lm_head tied by hand) on
// a chat prompt: the first position's first 64 and the whole last position.
// Golden: testdata/gguf/smollm2_logits.safetensors, from
// scripts/golden/gguf_fixture.py --real.
func TestGGUFParitySmolLM2(t *testing.T) {
	src := filepath.Join(os.Getenv("KFLLM_CACHE"), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no real GGUF at $KFLLM_CACHE/smollm2 (make setup puts it there): %v", err)
	}
	ids, want := ggufGolden(t, "testdata/gguf/smollm2_logits.safetensors", "first_logits", "last_logits")
	m, got := ggufLogits(t, src, ids)
	v := m.Config.VocabSize
	last := got[(len(ids)-1)*v:]
	dFirst, dLast := maxAbsDiff(got[:64], want["first_logits"]), maxAbsDiff(last, want["last_logits"])
	t.Logf("max |logit delta|: first position %g, last position %g", dFirst, dLast)
	// 30 float32 layers on logits up to ~36: allow more than the tiny model's 1e-4.
	if dFirst > 5e-4 || dLast > 5e-4 {
		t.Errorf("max |logit delta| first %g, last %g > 5e-4", dFirst, dLast)
	}
	argmax := func(x []float32) int {
		best := 0
		for i, y := range x {
			if y > x[best] {
				best = i
			}
		}
		return best
	}
	if g, w := argmax(last), argmax(want["last_logits"]); g != w {
		t.Errorf("next token %d, transformers %d", g, w)
	}
}
