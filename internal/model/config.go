package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ErrUnsupported is wrapped by errors about architectures, rope types or
// activations this package does not implement.
var ErrUnsupported = errors.New("unsupported")

// RopeScaling is the rope_scaling (transformers v4) or rope_parameters
// (transformers v5) block. Type "default" means none.
type RopeScaling struct {
	Type                 string  // default, linear, llama3
	Factor               float64 // linear, llama3
	LowFreqFactor        float64 // llama3
	HighFreqFactor       float64 // llama3
	OriginalMaxPositions int     // llama3: original_max_position_embeddings
}

// Config is a causal LM's config.json, typed. Raw keeps every field as read
// so that Save writes back what it did not interpret.
type Config struct {
	Architecture     string // as "architectures" names it: ArchLlama, ArchGPT2...
	ModelType        string // llama, gpt2...
	VocabSize        int
	HiddenSize       int
	IntermediateSize int
	NumLayers        int
	NumHeads         int
	NumKVHeads       int
	HeadDim          int
	MaxPositions     int
	RopeTheta        float64
	Rope             RopeScaling
	RMSNormEps       float64 // Llama family
	LayerNormEps     float64 // GPT-2
	HiddenAct        string  // silu (Llama), gelu_new (GPT-2), ...
	// TieWordEmbeddings makes lm_head share model.embed_tokens (or wte).
	TieWordEmbeddings bool
	AttentionBias     bool // bias on q, k, v and o projections (Llama)
	QKVBias           bool // bias on q, k, v only (Qwen2)
	MLPBias           bool // bias on gate, up, down (Llama)
	// ScaleAttnByInverseLayerIdx is GPT-2's scale_attn_by_inverse_layer_idx.
	ScaleAttnByInverseLayerIdx bool
	// SlidingWindow is Mistral's/Qwen's window, 0 when off. Attention here is
	// always full, which is the same while the context fits in the window:
	// ContextLength stops there.
	SlidingWindow    int
	InitializerRange float64
	BOS, EOS         []int
	Pad              int // pad_token_id, -1 when unset
	TorchDType       string
	Raw              map[string]any
}

// ContextLength is the longest context the model runs exactly as
// transformers does: max_position_embeddings, or a shorter sliding window.
func (c *Config) ContextLength() int {
	if c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPositions {
		return c.SlidingWindow
	}
	return c.MaxPositions
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", p, err)
	}
	return c, nil
}

// ParseConfig parses the bytes of a config.json.
func ParseConfig(b []byte) (*Config, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse config.json: %w", err)
	}
	r := reader{raw: raw}
	c := &Config{Raw: raw, Pad: -1}
	if archs, ok := raw["architectures"].([]any); ok && len(archs) > 0 {
		c.Architecture, _ = archs[0].(string)
	}
	c.ModelType = r.str("model_type", "")
	if c.Architecture == "" {
		for _, a := range architectures {
			if a.modelType == c.ModelType {
				c.Architecture = a.name
			}
		}
		if c.Architecture == "" {
			return nil, fmt.Errorf("config.json names no architecture (\"architectures\" and \"model_type\" %q): %w", c.ModelType, ErrUnsupported)
		}
	}
	a := c.arch()
	if a == nil {
		return nil, fmt.Errorf("architecture %q (want %s): %w", c.Architecture, archNames(), ErrUnsupported)
	}
	a.parse(c, &r)
	c.BOS = r.ids("bos_token_id")
	c.EOS = r.ids("eos_token_id")
	if p := r.ids("pad_token_id"); len(p) > 0 {
		c.Pad = p[0]
	}
	c.TorchDType = r.str("torch_dtype", r.str("dtype", "float32"))
	c.InitializerRange = r.float("initializer_range", 0.02)
	if r.err != nil {
		return nil, fmt.Errorf("%s config: %w", c.Architecture, r.err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate fills derived fields (HeadDim, NumKVHeads) and checks that the
// config describes a model this package can run. Configs built in Go (for
// NewRandom) go through it too.
func (c *Config) Validate() error {
	a := c.arch()
	if a == nil {
		return fmt.Errorf("architecture %q: %w", c.Architecture, ErrUnsupported)
	}
	if c.ModelType == "" {
		c.ModelType = a.modelType
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.Rope.Type == "" {
		c.Rope.Type = "default"
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if c.TorchDType == "" {
		c.TorchDType = "float32"
	}
	a.defaults(c)
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumLayers}, {"num_attention_heads", c.NumHeads}, {"num_key_value_heads", c.NumKVHeads},
		{"head_dim", c.HeadDim}, {"max_position_embeddings", c.MaxPositions}} {
		if f.v <= 0 {
			return fmt.Errorf("%s config: %s is %d, want > 0", c.Architecture, f.name, f.v)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("%s config: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Architecture, c.NumHeads, c.NumKVHeads)
	}
	if err := a.check(c); err != nil {
		return err
	}
	if _, err := activation(c.HiddenAct); err != nil {
		return fmt.Errorf("%s config: %w", c.Architecture, err)
	}
	switch c.Rope.Type {
	case "default":
	case "linear":
		if c.Rope.Factor <= 0 {
			return fmt.Errorf("%s config: linear rope scaling needs factor > 0", c.Architecture)
		}
	case "llama3":
		r := c.Rope
		if r.Factor <= 0 || r.LowFreqFactor <= 0 || r.HighFreqFactor <= r.LowFreqFactor || r.OriginalMaxPositions <= 0 {
			return fmt.Errorf("%s config: llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0; got %+v", c.Architecture, r)
		}
	default:
		return fmt.Errorf("rope type %q: %w", c.Rope.Type, ErrUnsupported)
	}
	return nil
}

// activation maps a hidden_act to the gelu approximation or "silu".
func activation(name string) (string, error) {
	switch name {
	case "silu", "swish":
		return "silu", nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return "tanh", nil
	case "gelu":
		return "none", nil
	}
	return "", fmt.Errorf("activation %q (want silu, gelu, gelu_new or gelu_pytorch_tanh): %w", name, ErrUnsupported)
}

// JSON renders the config as Hugging Face writes it: the fields read (Raw)
// with the typed fields written over them.
func (c *Config) JSON() ([]byte, error) {
	out := make(map[string]any, len(c.Raw)+16)
	for k, v := range c.Raw {
		out[k] = v
	}
	out["architectures"] = []string{c.Architecture}
	out["model_type"] = c.ModelType
	out["vocab_size"] = c.VocabSize
	out["torch_dtype"] = c.TorchDType
	out["initializer_range"] = c.InitializerRange
	out["tie_word_embeddings"] = c.TieWordEmbeddings
	setIDs(out, "bos_token_id", c.BOS)
	setIDs(out, "eos_token_id", c.EOS)
	if c.Pad >= 0 {
		out["pad_token_id"] = c.Pad
	}
	c.arch().encode(c, out)
	return json.MarshalIndent(out, "", "  ")
}

func setIDs(out map[string]any, key string, ids []int) {
	switch len(ids) {
	case 0:
	case 1:
		out[key] = ids[0]
	default:
		out[key] = ids
	}
}

// reader pulls typed fields from a decoded JSON object and remembers the
// first problem, naming the field.
type reader struct {
	raw map[string]any
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

// int reads key; def < 0 makes the field required.
func (r *reader) int(key string, def int) int {
	v, ok := r.raw[key]
	if !ok || v == nil {
		if def < 0 {
			r.fail("missing field %q", key)
		}
		return def
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) {
		r.fail("field %q is %v, want an integer", key, v)
		return def
	}
	return int(f)
}

func (r *reader) float(key string, def float64) float64 {
	v, ok := r.raw[key]
	if !ok || v == nil {
		if def < 0 {
			r.fail("missing field %q", key)
		}
		return def
	}
	f, ok := v.(float64)
	if !ok {
		r.fail("field %q is %v, want a number", key, v)
		return def
	}
	return f
}

func (r *reader) bool(key string, def bool) bool {
	v, ok := r.raw[key]
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		r.fail("field %q is %v, want true or false", key, v)
		return def
	}
	return b
}

func (r *reader) str(key, def string) string {
	v, ok := r.raw[key]
	if !ok || v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.fail("field %q is %v, want a string", key, v)
		return def
	}
	return s
}

// ids reads a token id that may be null, a number or a list of numbers.
func (r *reader) ids(key string) []int {
	switch v := r.raw[key].(type) {
	case nil:
		return nil
	case float64:
		return []int{int(v)}
	case []any:
		out := make([]int, 0, len(v))
		for _, e := range v {
			f, ok := e.(float64)
			if !ok {
				r.fail("field %q holds %v, want token ids", key, e)
				return nil
			}
			out = append(out, int(f))
		}
		return out
	default:
		r.fail("field %q is %v, want a token id or a list of them", key, v)
		return nil
	}
}
