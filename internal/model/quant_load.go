package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/device"
	"github.com/kfllm/kfllm/internal/gguf"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

// GGUFOptions choose how LoadGGUF keeps the file's weights.
type GGUFOptions struct {
	LoadOptions
	// Dequantize turns every weight into the model's dtype at load, the
	// values gguf.ConvertLlama would write; without it the Q8_0, Q4_0 and
	// Q4_1 matrices (the projections, the embedding and a tied lm_head)
	// stay in their blocks and are multiplied as such (quant.go), which
	// needs float32 on the CPU and no training.
	Dequantize bool
}

// ErrQuantizedSave is returned by Save on a model that holds quantized
// weights: they have no float32 parameter to write.
var ErrQuantizedSave = errors.New("a model with quantized weights cannot be saved as safetensors")

// LoadGGUF loads the Llama-architecture GGUF file at path (what
// gguf.ConvertLlama converts) directly: the config from its metadata, the
// weights from its tensors. Tensors of other types (F32, F16, BF16: the
// norms, and any matrix the file keeps in floats) become ordinary
// parameters. GenerationConfig is the one ConvertLlama writes.
func LoadGGUF(path string, opts GGUFOptions) (*Model, error) {
	wrap := func(err error) error { return fmt.Errorf("load gguf model %s: %w", path, err) }
	if !opts.Dequantize && opts.Trainable {
		return nil, wrap(errors.New("quantized weights cannot be trained; dequantize them"))
	}
	g, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	cfgJSON, genJSON, err := gguf.LlamaConfig(g)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(cfgJSON)
	if err != nil {
		return nil, wrap(err)
	}
	choice, err := device.Select(opts.Device, opts.DType)
	if err == nil {
		err = checkChoice(choice)
	}
	if err == nil && !opts.Dequantize && (choice.Device.IsCuda() || choice.DType != gotch.Float) {
		err = errors.New("quantized weights run on the CPU in float32; dequantize them for another device or dtype")
	}
	if err != nil {
		return nil, wrap(err)
	}
	tensors, err := gguf.LlamaTensors(g)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]gguf.LlamaTensor, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	arch := cfg.arch()
	m := newModel(cfg, choice, opts.Trainable)
	m.quant = map[string]*quantWeight{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var f []float32
	var qws []*quantWeight
	for _, p := range arch.specs(cfg) {
		t, ok := byName[p.name]
		if !ok || !slices.Equal(t.Shape, p.shape) {
			m.Close()
			return nil, wrap(fmt.Errorf("tensor %s missing or not of shape %v", p.name, p.shape))
		}
		if _, q := quantTypes[t.Type]; q && !opts.Dequantize && len(p.shape) == 2 {
			w, err := newQuantWeight(t.Type, t.Shape, t.Data)
			if err != nil {
				m.Close()
				return nil, wrap(fmt.Errorf("%s: %w", p.name, err))
			}
			m.quant[p.name] = w // placed off the heap below
			qws = append(qws, w)
			continue
		}
		f = slices.Grow(f[:0], int(torch.Numel(p.shape)))[:torch.Numel(p.shape)]
		err := gguf.Dequantize(f, t.Type, t.Data)
		if err == nil {
			err = m.addParam(p, safetensors.F32, safetensors.BytesOfFloat32s(f))
		}
		if err != nil {
			m.Close()
			return nil, wrap(fmt.Errorf("%s: %w", p.name, err))
		}
	}
	// Copy the blocks out of the file's mapping (closed when this returns)
	// into one C allocation, packed for the kernels.
	if !placeOffHeap(qws) {
		m.Close()
		return nil, wrap(errors.New("no memory for the quantized weights"))
	}
	if err := m.bind(); err != nil {
		m.Close()
		return nil, wrap(err)
	}
	d := json.NewDecoder(bytes.NewReader(genJSON))
	if err := d.Decode(&m.GenerationConfig); err != nil {
		m.Close()
		return nil, wrap(err)
	}
	return m, nil
}

// Quantized reports whether the model holds weights in ggml blocks
// (LoadGGUF without Dequantize), and which types, by parameter count.
func (m *Model) Quantized() map[string]int {
	out := map[string]int{}
	for _, w := range m.quant {
		out[w.typ.String()]++
	}
	return out
}
