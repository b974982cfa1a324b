package gguf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kfllm/kfllm/internal/safetensors"
)

// ConvertOptions tune ConvertLlama. The zero value is ready to use.
type ConvertOptions struct {
	// Progress, when set, is called after each tensor is written, with the
	// number written so far, the total and the tensor's GGUF name.
	Progress func(done, total int, tensor string)
	// Overwrite replaces an existing output directory. Without it an
	// existing outDir is an error wrapping fs.ErrExist.
	Overwrite bool
	// MetadataOnly writes the JSON files (config, generation config,
	// tokenizer) and no model.safetensors: what a server that reads the
	// weights from the GGUF itself (model.LoadGGUF) needs beside it.
	MetadataOnly bool
}

// ProgressTo returns a ConvertOptions.Progress that writes a line to w each
// time another tenth of the tensors is done, and at the end.
func ProgressTo(w io.Writer) func(done, total int, tensor string) {
	start, last := time.Now(), -1
	return func(done, total int, tensor string) {
		if tenth := done * 10 / max(total, 1); tenth != last || done == total {
			last = tenth
			fmt.Fprintf(w, "gguf: %d/%d tensors (%s) %.1fs\n", done, total, tensor, time.Since(start).Seconds())
		}
	}
}

// ConvertLlama converts the Llama-architecture GGUF at ggufPath into a
// Hugging Face model directory at outDir: config.json (LlamaForCausalLM,
// torch_dtype float32, tied embeddings when the file has no output.weight),
// generation_config.json, model.safetensors (every tensor dequantized to
// float32 under its Hugging Face name, q and k projections un-permuted),
// tokenizer.json and tokenizer_config.json (see buildTokenizer).
//
// The directory is written beside outDir under a temporary name and renamed
// into place at the end, so outDir either does not exist or is complete.
// Tensors are streamed a row at a time from the memory-mapped file, so
// memory use stays near the size of the GGUF file however large the float32
// output is.
func ConvertLlama(ctx context.Context, ggufPath, outDir string, opts ConvertOptions) (err error) {
	if _, err := os.Stat(outDir); err == nil && !opts.Overwrite {
		return fmt.Errorf("gguf: convert %s: %s: %w", ggufPath, outDir, fs.ErrExist)
	}
	g, err := Open(ggufPath)
	if err != nil {
		return err
	}
	defer g.Close()
	wrap := func(err error) error { return fmt.Errorf("gguf: convert %s: %w", ggufPath, err) }

	hp, err := readLlamaParams(g)
	if err != nil {
		return wrap(err)
	}
	plan, err := planTensors(g, hp)
	if err != nil {
		return wrap(err)
	}
	tok, err := buildTokenizer(g.Metadata, hp.Vocab, hp.ContextLength)
	if err != nil {
		return wrap(err)
	}

	parent, base := filepath.Split(filepath.Clean(outDir))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return wrap(err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return wrap(err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return wrap(err)
	}
	files := map[string]any{
		"config.json":            hp.hfConfig(),
		"generation_config.json": hp.generationConfig(),
		"tokenizer.json":         tok.JSON,
		"tokenizer_config.json":  tok.Config,
	}
	for name, v := range files {
		if err := writeJSON(filepath.Join(tmp, name), v); err != nil {
			return wrap(err)
		}
	}
	if !opts.MetadataOnly {
		if err := writeTensors(ctx, g, plan, filepath.Join(tmp, safetensors.SingleFileName), opts.Progress); err != nil {
			return wrap(err)
		}
	}
	if err := replaceDir(tmp, outDir, opts.Overwrite); err != nil {
		return wrap(err)
	}
	return nil
}

// replaceDir renames tmp to dir; with overwrite an existing dir is moved
// aside first and removed once tmp is in place.
func replaceDir(tmp, dir string, overwrite bool) error {
	if _, err := os.Stat(dir); err == nil {
		if !overwrite {
			return fmt.Errorf("%s: %w", dir, fs.ErrExist)
		}
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return errors.Join(err, os.Rename(old, dir))
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

func writeJSON(path string, v any) error {
	b, ok := v.([]byte)
	if !ok {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep <|im_end|> readable
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
		}
		b = bytes.TrimRight(buf.Bytes(), "\n")
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeTensors streams every planned tensor into a float32 safetensors file.
func writeTensors(ctx context.Context, g *File, plan []tensorPlan, path string, progress func(int, int, string)) error {
	specs := make([]safetensors.Spec, len(plan))
	for i, p := range plan {
		specs[i] = safetensors.Spec{Name: p.hfName, DType: safetensors.F32, Shape: p.src.Shape()}
	}
	w, err := safetensors.Create(path, specs, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	defer w.Abort() // no-op after a successful Close
	for i, p := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.WriteTensorFrom(p.hfName, newRowReader(g, p)); err != nil {
			return fmt.Errorf("tensor %s: %w", p.src.Name, err)
		}
		if progress != nil {
			progress(i+1, len(plan), p.src.Name)
		}
	}
	return w.Close()
}
