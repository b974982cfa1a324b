package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/kfllm/kfllm/internal/device"
	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

// LoadOptions choose where and how a model lives.
type LoadOptions struct {
	Device string // auto|cpu|cuda|cuda:N
	DType  string // auto|float32|bfloat16|float16
	// Trainable makes every parameter require grad, so that Forward builds
	// an autograd graph. Off, no graph is built and memory stays flat.
	Trainable bool
}

// Param is one named parameter, in Hugging Face's naming.
type Param struct {
	Name      string
	Tensor    *ts.Tensor
	Trainable bool
	NoDecay   bool // biases and norm weights: no weight decay
}

// Model is a causal LM on libtorch, of one of the architectures the
// package runs (see the package doc). Forward and generation may run from several goroutines at
// once; Close must come after the last of them.
type Model struct {
	Config *Config
	// GenerationConfig is generation_config.json as read (or made from
	// Config), written back by Save.
	GenerationConfig map[string]any

	choice    device.Choice
	trainable bool
	training  bool
	act       string // silu, or a gelu approximation

	params  []Param
	byName  map[string]*ts.Tensor
	linears map[string]*Linear

	dec    decoder    // the architecture's forward pass
	embed  *ts.Tensor // the token embedding
	lmHead *Linear    // its Weight is embed when tied
	closed bool

	// Served LoRA adapters (adapter.go): their weights stacked per Linear.
	lora     map[*Linear]*loraStack
	adapters []*Adapter

	// quant holds the weights a model loaded by LoadGGUF keeps in ggml
	// blocks, by parameter name; they are not in params.
	quant map[string]*quantWeight

	// fused is the C decode step's view of the model (decode_amd64.go),
	// made on the first decode step; nil when it does not apply.
	fusedOnce sync.Once
	fused     *fusedModel
}

type initKind int

const (
	initNormal   initKind = iota
	initResidual          // GPT-2's c_proj: std/sqrt(2*n_layer)
	initZeros
	initOnes
)

type spec struct {
	name    string
	shape   []int64
	init    initKind
	noDecay bool
}

// ignorable names are buffers some checkpoints carry that are no parameters.
func ignorable(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") ||
		strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// Load reads a Hugging Face model directory: config.json,
// generation_config.json if present, and model.safetensors or its shards.
// Parameter names are transformers' own; GPT-2 checkpoints saved without
// the "transformer." prefix load too.
func Load(dir string, opts LoadOptions) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	choice, err := device.Select(opts.Device, opts.DType)
	if err == nil {
		err = checkChoice(choice)
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer set.Close()

	arch := cfg.arch()
	sp := arch.specs(cfg)
	want := make(map[string]bool, len(sp))
	for _, p := range sp {
		want[p.name] = true
	}
	// Map each file name to ours: GPT-2's prefix, tied lm_head dropped.
	fileName := make(map[string]string, len(sp))
	var unexpected []string
	for _, n := range set.Names() {
		ours := n
		if arch.fileName != nil {
			ours = arch.fileName(n)
		}
		switch {
		case want[ours]:
			fileName[ours] = n
		case ignorable(n), ours == "lm_head.weight" && cfg.TieWordEmbeddings:
		default:
			unexpected = append(unexpected, n)
		}
	}
	if len(unexpected) > 0 {
		return nil, fmt.Errorf("load model %s: weights %s are not parameters of %s with this config", dir, strings.Join(trimList(unexpected), ", "), cfg.Architecture)
	}
	var missing []string
	for _, p := range sp {
		if _, ok := fileName[p.name]; !ok {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("load model %s: weights missing: %s", dir, strings.Join(trimList(missing), ", "))
	}

	m := newModel(cfg, choice, opts.Trainable)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, p := range sp {
		n := fileName[p.name]
		info, _ := set.Info(n)
		if !slices.Equal(info.Shape, p.shape) {
			m.Close()
			return nil, fmt.Errorf("load model %s: %s has shape %v, config wants %v", dir, n, info.Shape, p.shape)
		}
		data, err := set.Data(n)
		if err == nil {
			err = m.addParam(p, info.DType, data)
		}
		if err == nil {
			// addParam copied it: the file's pages of it leave the RSS, so
			// that the file and the copies are not held at once.
			err = set.Release(n)
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("load model %s: %s: %w", dir, n, err)
		}
	}
	if err := m.bind(); err != nil {
		m.Close()
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	m.GenerationConfig, err = readGenerationConfig(dir)
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func trimList(names []string) []string {
	if len(names) > 8 {
		return append(names[:8:8], fmt.Sprintf("and %d more", len(names)-8))
	}
	return names
}

func readGenerationConfig(dir string) (map[string]any, error) {
	p := filepath.Join(dir, "generation_config.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load generation config: %w", err)
	}
	var g map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("load generation config %s: %w", p, err)
	}
	return g, nil
}

// NewRandom makes a model with transformers' initialisation (normal with
// std initializer_range, zero biases, unit norms; GPT-2's residual
// projections scaled by 1/sqrt(2*n_layer)), reproducible from seed.
func NewRandom(cfg *Config, seed int64, opts LoadOptions) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new random model: %w", err)
	}
	choice, err := device.Select(opts.Device, opts.DType)
	if err == nil {
		err = checkChoice(choice)
	}
	if err != nil {
		return nil, fmt.Errorf("new random model: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b666c6c6d))
	m := newModel(cfg, choice, opts.Trainable)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, p := range cfg.arch().specs(cfg) {
		v := make([]float32, torch.Numel(p.shape))
		switch p.init {
		case initNormal, initResidual:
			std := cfg.InitializerRange
			if p.init == initResidual {
				std /= math.Sqrt(2 * float64(cfg.NumLayers))
			}
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
			if p.name == "model.embed_tokens.weight" && cfg.Pad >= 0 && cfg.Pad < cfg.VocabSize {
				clear(v[cfg.Pad*cfg.HiddenSize : (cfg.Pad+1)*cfg.HiddenSize]) // nn.Embedding's padding_idx row
			}
		case initOnes:
			for i := range v {
				v[i] = 1
			}
		}
		if err := m.addParam(p, safetensors.F32, safetensors.BytesOfFloat32s(v)); err != nil {
			m.Close()
			return nil, fmt.Errorf("new random model: %s: %w", p.name, err)
		}
	}
	if err := m.bind(); err != nil {
		m.Close()
		return nil, fmt.Errorf("new random model: %w", err)
	}
	return m, nil
}

// checkChoice refuses what libtorch 2.1 cannot run: its CPU kernels have
// no float16 matmul ("addmm_impl_cpu_" not implemented for 'Half').
func checkChoice(c device.Choice) error {
	if c.DType == gotch.Half && !c.Device.IsCuda() {
		return errors.New("float16 needs CUDA (libtorch 2.1 has no float16 matmul on CPU); use bfloat16 or float32 on the CPU")
	}
	return nil
}

func newModel(cfg *Config, choice device.Choice, trainable bool) *Model {
	act, _ := activation(cfg.HiddenAct)
	return &Model{Config: cfg, choice: choice, trainable: trainable, act: act,
		byName: map[string]*ts.Tensor{}, linears: map[string]*Linear{}}
}

var fileKinds = map[safetensors.DType]gotch.DType{safetensors.F32: gotch.Float, safetensors.F16: gotch.Half, safetensors.BF16: gotch.BFloat16, safetensors.F64: gotch.Double}

// addParam makes a parameter from little-endian bytes of dtype, converted
// to the model's device and dtype.
func (m *Model) addParam(p spec, dtype safetensors.DType, data []byte) error {
	kind, ok := fileKinds[dtype]
	if !ok {
		return fmt.Errorf("dtype %s is not a float type", dtype)
	}
	if int64(len(data)) != torch.Numel(p.shape)*int64(kind.Size()) {
		return fmt.Errorf("%d bytes for shape %v of %s", len(data), p.shape, dtype)
	}
	var s scope
	defer s.Free()
	c := s.Contiguous(s.To(s.FromBytes(data, kind, p.shape...), m.choice.Device, m.choice.DType))
	if m.trainable {
		s.RequiresGrad(c, true)
	}
	if !s.OK() {
		return s.Err()
	}
	// A fresh handle for gotch to own; the scope frees its own.
	t := torch.Wrap(torch.ShallowClone(c))
	m.params = append(m.params, Param{Name: p.name, Tensor: t, Trainable: m.trainable, NoDecay: p.noDecay})
	m.byName[p.name] = t
	return nil
}

// bind builds the architecture's decoder over the parameters, and lm_head.
func (m *Model) bind() error {
	c := m.Config
	arch := c.arch()
	m.embed = m.param(arch.embedding)
	dec, err := arch.build(m)
	if err != nil {
		return err
	}
	m.dec = dec
	if c.TieWordEmbeddings {
		m.lmHead = &Linear{Weight: m.embed, quant: m.quant[arch.embedding]}
	} else {
		m.lmHead = m.linear("lm_head", false)
	}
	m.hugeWeights() // hugepage_linux.go
	return nil
}

// Parameters lists the parameters in transformers' state_dict order (a
// tied lm_head is not listed: it is the embedding).
func (m *Model) Parameters() []Param { return slices.Clone(m.params) }

// Linears maps module paths ("model.layers.0.self_attn.q_proj",
// "transformer.h.0.attn.c_attn", "lm_head" when untied) to their layers;
// training attaches LoRA adapters through them. To change a weight (say,
// merge an adapter), write into Weight in place (copy_, add_): Parameters
// and Save read the tensors the model holds, not reassigned fields.
func (m *Model) Linears() map[string]*Linear {
	out := make(map[string]*Linear, len(m.linears))
	for k, v := range m.linears {
		out[k] = v
	}
	return out
}

// Device reports where the model lives and its compute dtype.
func (m *Model) Device() device.Choice { return m.choice }

// SetTraining switches dropout (LoRA's, and GPT-2's attention, residual
// and embedding dropout) on or off; off by default.
func (m *Model) SetTraining(on bool) { m.training = on }

// Close frees the model's tensors. The model is unusable afterwards.
func (m *Model) Close() {
	if m.closed {
		return
	}
	m.closed = true
	for _, p := range m.params {
		p.Tensor.MustDrop()
	}
	if m.fused != nil {
		m.fused.free()
	}
	if m.dec != nil {
		m.dec.close()
	}
	m.freeAdapters()
	for _, w := range m.quant {
		w.free()
	}
	m.params, m.byName, m.linears, m.dec, m.quant = nil, nil, nil, nil, nil
}
