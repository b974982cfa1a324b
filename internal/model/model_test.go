package model

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/safetensors"
)

// copyFixture copies a fixture dir so a test can damage its weights.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join("testdata", name, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewriteWeights rewrites dir/model.safetensors through edit.
func rewriteWeights(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		data, _ := f.Data(n)
		ts = append(ts, safetensors.Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: slices.Clone(data)})
	}
	f.Close()
	if err := safetensors.WriteFile(p, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := copyFixture(t, "llama_gqa")
	rewriteWeights(t, dir, func(in []safetensors.Tensor) []safetensors.Tensor {
		return slices.DeleteFunc(in, func(x safetensors.Tensor) bool { return x.Name == "model.layers.1.mlp.up_proj.weight" })
	})
	if _, err := Load(dir, LoadOptions{Device: "cpu"}); err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight") {
		t.Errorf("missing weight: %v", err)
	}
	dir = copyFixture(t, "llama_gqa")
	rewriteWeights(t, dir, func(in []safetensors.Tensor) []safetensors.Tensor {
		return append(in, safetensors.Tensor{Name: "model.layers.0.extra.weight", DType: safetensors.F32, Shape: []int64{1}, Data: make([]byte, 4)})
	})
	if _, err := Load(dir, LoadOptions{Device: "cpu"}); err == nil || !strings.Contains(err.Error(), "model.layers.0.extra.weight") {
		t.Errorf("unexpected weight: %v", err)
	}
	dir = copyFixture(t, "llama_gqa")
	rewriteWeights(t, dir, func(in []safetensors.Tensor) []safetensors.Tensor {
		for i := range in {
			if in[i].Name == "model.norm.weight" {
				in[i].Shape = []int64{4, 8}
			}
		}
		return in
	})
	if _, err := Load(dir, LoadOptions{Device: "cpu"}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
	if _, err := Load(t.TempDir(), LoadOptions{Device: "cpu"}); err == nil {
		t.Error("an empty dir loaded")
	}
	if _, err := Load(filepath.Join("testdata", "llama_gqa"), LoadOptions{Device: "tpu"}); err == nil {
		t.Error("device tpu accepted")
	}
}

// bfloat16 weights load into a float32 model and back; a bfloat16 model
// computes close to the float32 one (RMSNorm runs in float32 inside).
func TestDTypes(t *testing.T) {
	dir := copyFixture(t, "llama_gqa")
	m32 := loadCPU(t, dir)
	b := readBatches(t, filepath.Join("testdata", "llama_gqa"))["left"]
	want := forwardValues(t, m32, b)
	for _, dt := range []string{"bfloat16", "float16"} {
		m, err := Load(dir, LoadOptions{Device: "cpu", DType: dt})
		if dt == "float16" {
			if err == nil || !strings.Contains(err.Error(), "float16 needs CUDA") {
				t.Errorf("float16 on CPU: %v", err)
			}
			if err == nil {
				m.Close()
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Parameters()[0].Tensor.DType() == gotch.Float {
			t.Errorf("%s model holds float32", dt)
		}
		logits, err := m.Forward(tensorOf(t, b.ids, b.shape), tensorOf(t, b.mask, b.shape))
		if err != nil {
			t.Fatal(err)
		}
		d := maxDiff(valuesOf(t, logits), want, b.mask, m.Config.VocabSize)
		logits.MustDrop()
		t.Logf("%s: max |logits - float32| = %.3g", dt, d)
		if d > 0.5 {
			t.Errorf("%s logits differ from float32 by %g", dt, d)
		}
		if dt == "bfloat16" {
			out := t.TempDir()
			if err := m.Save(out); err != nil {
				t.Fatal(err)
			}
			st, _ := safetensors.OpenDir(out)
			info, _ := st.Info("model.norm.weight")
			st.Close()
			c, _ := LoadConfig(out)
			if info.DType != safetensors.BF16 || c.TorchDType != "bfloat16" {
				t.Errorf("bfloat16 save: %s, torch_dtype %s", info.DType, c.TorchDType)
			}
		}
	}
}

func TestNewRandomAndParameters(t *testing.T) {
	c, err := LoadConfig(filepath.Join("testdata", "llama_bias"))
	if err != nil {
		t.Fatal(err)
	}
	c.InitializerRange = 0.05
	m, err := NewRandom(c, 3, LoadOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ps := m.Parameters()
	if ps[0].Name != "model.embed_tokens.weight" || ps[len(ps)-1].Name != "lm_head.weight" {
		t.Errorf("order: first %s last %s", ps[0].Name, ps[len(ps)-1].Name)
	}
	byName := map[string]Param{}
	for _, p := range ps {
		byName[p.Name] = p
	}
	if len(byName) != len(ps) || len(ps) != 2+2*(7*2+2)+1 {
		t.Errorf("%d parameters (%d names)", len(ps), len(byName))
	}
	q := byName["model.layers.0.self_attn.q_proj.weight"]
	if q.NoDecay || !byName["model.layers.0.self_attn.q_proj.bias"].NoDecay || !byName["model.norm.weight"].NoDecay {
		t.Error("NoDecay should mark biases and norms only")
	}
	w := valuesOf(t, q.Tensor)
	var sum, sq float64
	for _, v := range w {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean, std := sum/float64(len(w)), math.Sqrt(sq/float64(len(w)))
	if math.Abs(mean) > 0.01 || math.Abs(std-0.05) > 0.01 {
		t.Errorf("q_proj init mean %.4f std %.4f, want 0 and 0.05", mean, std)
	}
	if v := valuesOf(t, byName["model.layers.0.self_attn.q_proj.bias"].Tensor); slices.ContainsFunc(v, func(x float32) bool { return x != 0 }) {
		t.Error("bias not zero")
	}
	if v := valuesOf(t, byName["model.norm.weight"].Tensor); slices.ContainsFunc(v, func(x float32) bool { return x != 1 }) {
		t.Error("norm not one")
	}
	// Reproducible from the seed.
	m2, _ := NewRandom(c, 3, LoadOptions{Device: "cpu"})
	defer m2.Close()
	if !m2.Parameters()[5].Tensor.MustEqual(ps[5].Tensor, false) {
		t.Error("same seed, different weights")
	}
	lin := m.Linears()
	if l := lin["model.layers.1.mlp.down_proj"]; l == nil || l.InFeatures() != 64 || l.OutFeatures() != 32 || l.Bias == nil {
		t.Errorf("Linears()[down_proj] = %+v", l)
	}
	if _, err := NewRandom(&Config{Architecture: "Nope"}, 1, LoadOptions{}); err == nil {
		t.Error("NewRandom accepted an unknown architecture")
	}
}

// Forward is differentiable when Trainable, and a LoRA adapter attached
// through Linears changes the output only once B is non-zero.
func TestTrainableAndLoRA(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "gpt2"), LoadOptions{Device: "cpu", Trainable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := readBatches(t, filepath.Join("testdata", "gpt2"))["right"]
	ids, mask := tensorOf(t, b.ids, b.shape), tensorOf(t, b.mask, b.shape)
	logits, err := m.Forward(ids, mask)
	if err != nil {
		t.Fatal(err)
	}
	loss := logits.MustMean(gotch.Float, true)
	loss.MustBackward()
	loss.MustDrop()
	for _, p := range m.Parameters() {
		if !p.Trainable {
			t.Fatalf("%s not trainable", p.Name)
		}
		g := p.Tensor.MustGrad(false)
		if !g.MustDefined() {
			t.Fatalf("%s has no gradient", p.Name)
		}
		g.MustDrop()
	}

	l := m.Linears()["transformer.h.0.attn.c_attn"]
	in, out := l.InFeatures(), l.OutFeatures()
	a := ts.MustRandn([]int64{4, in}, gotch.Float, gotch.CPU)
	z := ts.MustZeros([]int64{out, 4}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	defer z.MustDrop()
	m.SetTraining(false)
	base, _ := m.Forward(ids, mask)
	l.LoRA = &LoRA{A: a, B: z, Scale: 2}
	same, _ := m.Forward(ids, mask)
	if d := maxDiff(valuesOf(t, same), valuesOf(t, base), b.mask, m.Config.VocabSize); d > 1e-6 {
		t.Errorf("LoRA with B = 0 changed logits by %g", d)
	}
	one := ts.MustOnes([]int64{out, 4}, gotch.Float, gotch.CPU)
	defer one.MustDrop()
	l.LoRA.B = one
	moved, _ := m.Forward(ids, mask)
	if d := maxDiff(valuesOf(t, moved), valuesOf(t, base), b.mask, m.Config.VocabSize); d < 1e-3 {
		t.Errorf("LoRA with B = 1 changed logits by only %g", d)
	}
	for _, x := range []*ts.Tensor{base, same, moved} {
		x.MustDrop()
	}
}
