package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A GGUF is served from --model-dir FILE.gguf or from a directory holding
// one .gguf and no config.json (docs/design.md §5); anything ambiguous is
// a clear error.
func TestGGUFModelDir(t *testing.T) {
	const tiny = "../gguf/testdata/llama_tiny.gguf"
	raw, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	one := t.TempDir()
	if err := os.WriteFile(filepath.Join(one, "m.gguf"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	two := t.TempDir()
	for _, n := range []string{"a.gguf", "b.gguf"} {
		if err := os.WriteFile(filepath.Join(two, n), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hf := t.TempDir()
	if err := os.WriteFile(filepath.Join(hf, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want string // the GGUF file, "" for a Hugging Face dir
		err  bool
	}{
		{tiny, tiny, false},
		{one, filepath.Join(one, "m.gguf"), false},
		{two, "", true},
		{hf, "", false},
		{t.TempDir(), "", true},
		{filepath.Join(hf, "config.json"), "", true},
	} {
		got, ok, err := ggufFile(c.path)
		if (err != nil) != c.err || got != c.want || ok != (c.want != "") {
			t.Errorf("ggufFile(%s) = %q, %v, %v; want %q, error %v", c.path, got, ok, err, c.want, c.err)
		}
	}
	// The directory loads: quantized weights, tokenizer from the metadata.
	for _, deq := range []bool{false, true} {
		b, err := Load(context.Background(), Options{ModelDir: one, Device: "cpu", DType: "float32", Dequantize: deq})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
