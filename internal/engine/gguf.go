package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// ggufFile is the GGUF model that path names (docs/design.md §5): path
// itself when it is a .gguf file, or the one .gguf file of a directory
// without a config.json. ok is false for a Hugging Face model directory.
func ggufFile(path string) (file string, ok bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", false, fmt.Errorf("model dir %s: %w", path, err)
	}
	if !st.IsDir() {
		if !strings.HasSuffix(path, ".gguf") {
			return "", false, fmt.Errorf("model %s: a file must be a .gguf", path)
		}
		return path, true, nil
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); err == nil {
		return "", false, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.gguf"))
	if err != nil {
		return "", false, fmt.Errorf("model dir %s: %w", path, err)
	}
	switch len(files) {
	case 0:
		return "", false, fmt.Errorf("model dir %s: no config.json and no .gguf file", path)
	case 1:
		return files[0], true, nil
	}
	return "", false, fmt.Errorf("model dir %s: no config.json and %d .gguf files (name one with --model-dir FILE)", path, len(files))
}

// loadGGUF loads a GGUF model and its tokenizer: the tokenizer files are
// made from the file's metadata (gguf.ConvertLlama, no weights) in a
// temporary directory, the weights read from the file, quantized blocks
// kept unless o.Dequantize.
func loadGGUF(ctx context.Context, path string, o Options) (*model.Model, *tokenizer.Tokenizer, error) {
	tmp, err := os.MkdirTemp("", "kfllm-gguf-*")
	if err != nil {
		return nil, nil, fmt.Errorf("load tokenizer: %w", err)
	}
	defer os.RemoveAll(tmp)
	meta := filepath.Join(tmp, "model")
	if err := gguf.ConvertLlama(ctx, path, meta, gguf.ConvertOptions{MetadataOnly: true}); err != nil {
		return nil, nil, fmt.Errorf("load tokenizer: %w", err)
	}
	tok, err := tokenizer.Load(meta)
	if err != nil {
		return nil, nil, fmt.Errorf("load tokenizer: %w", err)
	}
	m, err := model.LoadGGUF(path, model.GGUFOptions{LoadOptions: model.LoadOptions{Device: o.Device, DType: o.DType}, Dequantize: o.Dequantize})
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	return m, tok, nil
}
