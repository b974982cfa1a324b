package train

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

// adapter is one LoRA pair attached to a model Linear, named by the
// module path ("model.layers.0.self_attn.q_proj").
type adapter struct {
	path string
	lin  *model.Linear
}

// matchesTarget is PEFT's rule for a list of target_modules: the module
// path equals a target or ends with "." + target.
func matchesTarget(path string, targets []string) bool {
	for _, t := range targets {
		if path == t || strings.HasSuffix(path, "."+t) {
			return true
		}
	}
	return false
}

// AllLinear is PEFT's shorthand target: every Linear of the model but the
// output layer (lm_head).
const AllLinear = "all-linear"

// resolveTargets expands [AllLinear] into the module names it stands for
// (the last part of each Linear's path: q_proj, c_attn...), as PEFT writes
// them into adapter_config.json; other lists are returned as they are.
func resolveTargets(m *model.Model, targets []string) []string {
	if !slices.Contains(targets, AllLinear) {
		return targets
	}
	seen := map[string]bool{}
	for p := range m.Linears() {
		if name := p[strings.LastIndexByte(p, '.')+1:]; name != "lm_head" {
			seen[name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// attachLoRA puts a fresh adapter (PEFT's default init: A kaiming-uniform
// with a=sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), B zero) on every Linear
// whose path matches targets, in sorted path order from a Go RNG seeded by
// seed. Adapters live on the model's device in its compute dtype and
// require grad.
func attachLoRA(m *model.Model, r int, alpha, dropout float64, targets []string, seed int64) ([]adapter, error) {
	lins := m.Linears()
	paths := make([]string, 0, len(lins))
	for p := range lins {
		if matchesTarget(p, targets) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		names := slices.Sorted(func(yield func(string) bool) {
			for p := range lins {
				if !yield(p) {
					return
				}
			}
		})
		if len(names) > 6 {
			names = names[:6]
		}
		return nil, fmt.Errorf("lora: no module matches --lora-target-modules %s (modules look like %s)", strings.Join(targets, ","), strings.Join(names, ", "))
	}
	slices.Sort(paths)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x4c6f5241))
	dev := m.Device()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out []adapter
	for _, p := range paths {
		l := lins[p]
		in, outF := l.InFeatures(), l.OutFeatures()
		a := make([]float32, int64(r)*in)
		bound := 1 / math.Sqrt(float64(in))
		for i := range a {
			a[i] = float32((rng.Float64()*2 - 1) * bound)
		}
		b := make([]float32, outF*int64(r))
		ta, err := leaf(a, dev.Device, dev.DType, int64(r), in)
		if err != nil {
			return nil, fmt.Errorf("lora %s: %w", p, err)
		}
		tb, err := leaf(b, dev.Device, dev.DType, outF, int64(r))
		if err != nil {
			return nil, fmt.Errorf("lora %s: %w", p, err)
		}
		l.LoRA = &model.LoRA{A: torch.Wrap(ta), B: torch.Wrap(tb), Scale: alpha / float64(r), Dropout: dropout}
		out = append(out, adapter{path: p, lin: l})
	}
	return out, nil
}

// leaf makes a tensor from Go values that requires grad; the caller owns it.
func leaf(v []float32, dev gotch.Device, dt gotch.DType, dims ...int64) (torch.Tensor, error) {
	var o torch.Scope
	defer o.Free()
	c := o.Floats(dev, gotch.Float, v, dims...)
	if dt != gotch.Float {
		c = o.To(c, dev, dt)
	}
	c = o.Contiguous(c)
	rg := o.RequiresGrad(c, true)
	if !o.OK() {
		return nil, o.Err()
	}
	_ = rg
	return torch.ShallowClone(c), nil
}

// peftKey is the name PEFT gives an adapter weight in
// adapter_model.safetensors.
func peftKey(path, which string) string {
	return "base_model.model." + path + "." + which + ".weight"
}

// adapterConfig is PEFT 0.13's LoraConfig as save_pretrained writes it.
func adapterConfig(base string, r int, alpha, dropout float64, targets []string, fanInFanOut bool) map[string]any {
	return map[string]any{
		"alpha_pattern":           map[string]any{},
		"auto_mapping":            nil,
		"base_model_name_or_path": base,
		"bias":                    "none",
		"fan_in_fan_out":          fanInFanOut,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"layer_replication":       nil,
		"layers_pattern":          nil,
		"layers_to_transform":     nil,
		"loftq_config":            map[string]any{},
		"lora_alpha":              alpha,
		"lora_dropout":            dropout,
		"megatron_config":         nil,
		"megatron_core":           "megatron.core",
		"modules_to_save":         nil,
		"peft_type":               "LORA",
		"r":                       r,
		"rank_pattern":            map[string]any{},
		"revision":                nil,
		"target_modules":          slices.Sorted(slices.Values(targets)),
		"task_type":               "CAUSAL_LM",
		"use_dora":                false,
		"use_rslora":              false,
	}
}

// tensorBytes copies a tensor to CPU float32 bytes.
func tensorBytes(c torch.Tensor) ([]byte, []int64, error) {
	var o torch.Scope
	defer o.Free()
	v := o.ReadFloat32s(c)
	if !o.OK() {
		return nil, nil, o.Err()
	}
	return safetensors.BytesOfFloat32s(v), torch.Shape(c), nil
}

// saveAdapter writes adapter_model.safetensors (float32) and
// adapter_config.json into dir, weights first.
func saveAdapter(dir string, ads []adapter, cfg map[string]any) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var tensors []safetensors.Tensor
	for _, a := range ads {
		for _, w := range []struct {
			which string
			t     torch.Tensor
		}{{"lora_A", torch.Of(a.lin.LoRA.A)}, {"lora_B", torch.Of(a.lin.LoRA.B)}} {
			data, shape, err := tensorBytes(w.t)
			if err != nil {
				return fmt.Errorf("save adapter %s: %w", a.path, err)
			}
			tensors = append(tensors, safetensors.Tensor{Name: peftKey(a.path, w.which), DType: safetensors.F32, Shape: shape, Data: data})
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save adapter config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, "adapter_config.json"), append(b, '\n'))
}

// mergeLoRA folds each adapter into its weight (W += scale * B@A, the
// transpose for GPT-2's Conv1D) and detaches it, so that the model saves
// as plain weights.
func mergeLoRA(ads []adapter) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o torch.Scope
	defer o.Free()
	torch.NoGrad(func() {
		for _, a := range ads {
			l := a.lin
			delta := o.Matmul(torch.Of(l.LoRA.B), torch.Of(l.LoRA.A)) // [out,in]
			if l.Conv1D {
				delta = o.Contiguous(o.Transpose(delta, 0, 1))
			}
			o.MulScalarInPlace(delta, l.LoRA.Scale)
			o.AddInPlace(torch.Of(l.Weight), delta)
			o.Free()
		}
	})
	if !o.OK() {
		return fmt.Errorf("merge lora: %w", o.Err())
	}
	for _, a := range ads {
		a.lin.LoRA.A.MustDrop()
		a.lin.LoRA.B.MustDrop()
		a.lin.LoRA = nil
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := renameio.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadAdapter copies adapter weights saved under PEFT's key names (an
// adapter_model.safetensors) into attached adapters.
func loadAdapter(path string, ads []adapter) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("load adapter: %w", err)
	}
	defer f.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o torch.Scope
	defer o.Free()
	torch.NoGrad(func() {
		for _, a := range ads {
			for _, w := range []struct {
				which string
				t     torch.Tensor
			}{{"lora_A", torch.Of(a.lin.LoRA.A)}, {"lora_B", torch.Of(a.lin.LoRA.B)}} {
				key := peftKey(a.path, w.which)
				info, ok := f.Info(key)
				if !ok || info.DType != safetensors.F32 || !slices.Equal(info.Shape, torch.Shape(w.t)) {
					o.Fail(fmt.Errorf("%s: missing, or not float32 %v", key, torch.Shape(w.t)))
					return
				}
				data, err := f.Data(key)
				if err != nil {
					o.Fail(err)
					return
				}
				o.CopyInto(w.t, o.Floats(gotch.CPU, gotch.Float, safetensors.Float32s(data), info.Shape...))
				o.Free()
			}
		}
	})
	if !o.OK() {
		return fmt.Errorf("load adapter %s: %w", path, o.Err())
	}
	return nil
}
