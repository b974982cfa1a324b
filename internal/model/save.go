package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/renameio/v2"
	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/device"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

var saveKinds = map[gotch.DType]safetensors.DType{gotch.Float: safetensors.F32, gotch.Half: safetensors.F16, gotch.BFloat16: safetensors.BF16}

// Save writes dir/model.safetensors, generation_config.json and
// config.json, as transformers' save_pretrained does: its parameter names, a
// tied lm_head left out, GPT-2 under "transformer.". Each file is written
// to a temporary name and renamed; weights go first and config.json last,
// so a directory with a config.json from this call is complete. Other files
// in dir (a tokenizer, a model card) are left alone.
func (m *Model) Save(dir string) error {
	if m.closed {
		return fmt.Errorf("save model %s: %w", dir, errClosed)
	}
	if len(m.quant) > 0 {
		return fmt.Errorf("save model %s: %w", dir, ErrQuantizedSave)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	kind, ok := saveKinds[m.choice.DType]
	if !ok {
		return fmt.Errorf("save model %s: dtype %v", dir, m.choice.DType)
	}
	tensors := make([]safetensors.Tensor, 0, len(m.params))
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for _, p := range m.params {
			var s scope
			c := s.Contiguous(s.To(torch.Of(p.Tensor), gotch.CPU, m.choice.DType))
			sh := torch.Shape(c)
			data := make([]byte, torch.Numel(sh)*int64(m.choice.DType.Size()))
			if s.OK() && len(data) > 0 {
				torch.ReadBytes(c, data, m.choice.DType.Size())
			}
			s.Free()
			if s.Err() != nil {
				return fmt.Errorf("%s: %w", p.Name, s.Err())
			}
			tensors = append(tensors, safetensors.Tensor{Name: p.Name, DType: kind, Shape: sh, Data: data})
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	// Shards of an older save would shadow nothing (transformers prefers
	// model.safetensors) but would mislead a reader; remove their index.
	os.Remove(filepath.Join(dir, "model.safetensors.index.json"))

	gen := m.GenerationConfig
	if gen == nil {
		gen = map[string]any{"_from_model_config": true}
		setIDs(gen, "bos_token_id", m.Config.BOS)
		setIDs(gen, "eos_token_id", m.Config.EOS)
		if m.Config.Pad >= 0 {
			gen["pad_token_id"] = m.Config.Pad
		}
	}
	gb, err := json.MarshalIndent(gen, "", "  ")
	if err != nil {
		return fmt.Errorf("save model %s: generation config: %w", dir, err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, "generation_config.json"), append(gb, '\n'), 0o644); err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	cfg := *m.Config
	cfg.TorchDType = device.DTypeName(m.choice.DType)
	cb, err := cfg.JSON()
	if err != nil {
		return fmt.Errorf("save model %s: config: %w", dir, err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, "config.json"), append(cb, '\n'), 0o644); err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	return nil
}
