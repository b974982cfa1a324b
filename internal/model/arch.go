package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// architecture is everything that differs between the model families this
// package runs: config.json's fields, the parameters and their names, and
// the forward pass (a decoder). It is chosen once, from config.json's
// "architectures", by ParseConfig and Validate; Load and NewRandom build
// its decoder, and every forward pass runs through that. Adding an
// architecture is a file that defines one and an entry in architectures.
type architecture struct {
	name      string // as config.json's "architectures" spells it
	modelType string // config.json's "model_type"
	// parse reads the architecture's fields of config.json.
	parse func(c *Config, r *reader)
	// defaults fills what the architecture derives when a config leaves
	// it out (configs built in Go too); check then refuses what it cannot
	// run.
	defaults func(c *Config)
	check    func(c *Config) error
	// encode writes the architecture's fields into config.json.
	encode func(c *Config, out map[string]any)
	// specs lists the parameters in transformers' state_dict order.
	specs func(c *Config) []spec
	// fileName maps a checkpoint's tensor name to the one specs uses; nil
	// keeps names as they are.
	fileName func(name string) string
	// embedding names the token embedding: what a tied lm_head shares.
	embedding string
	// build binds a model's parameters (Model.param, Model.linear) into
	// its decoder.
	build func(m *Model) (decoder, error)
}

// architectures are the ones this package runs, by name.
var architectures = registry(llama, mistral, qwen2, qwen3, gpt2)

func registry(as ...*architecture) map[string]*architecture {
	out := make(map[string]*architecture, len(as))
	for _, a := range as {
		out[a.name] = a
	}
	return out
}

// archNames lists the architectures for error messages.
func archNames() string {
	names := make([]string, 0, len(architectures))
	for n := range architectures {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// arch is c's architecture (nil when this package does not run it).
func (c *Config) arch() *architecture { return architectures[c.Architecture] }

// decoder is an architecture's forward pass over a model's parameters,
// built once at load; pass drives it. Its methods add ops to the pass's
// scope.
type decoder interface {
	// positions prepares what the layers need for the pass's positions
	// pos [B*T] (rope's cos and sin), before embed.
	positions(p *pass, pos []int64)
	// embed is the hidden states [B,T,H] of ids [B,T].
	embed(p *pass, ids ct) ct
	// layer runs decoder layer i on x [B,T,H] and returns [B,T,H]. When
	// at (int64 indices into the flattened B*T positions) is not nil,
	// only those positions' outputs are wanted: it returns [len(at),H],
	// and may skip the work the others would need (training's last layer).
	layer(p *pass, i int, x, at ct) ct
	// norm is the final norm, before lm_head.
	norm(p *pass, x ct) ct
	// close frees what the decoder made; the model owns the parameters.
	close()
}

// param is the parameter name (nil if the model has none of that name).
func (m *Model) param(name string) *ts.Tensor { return m.byName[name] }

// linear makes the Linear of the module at path from path.weight and
// path.bias; training finds it in Linears.
func (m *Model) linear(path string, conv1D bool) *Linear {
	l := &Linear{Weight: m.param(path + ".weight"), Bias: m.param(path + ".bias"), Conv1D: conv1D, quant: m.quant[path+".weight"]}
	m.linears[path] = l
	return l
}

// layerNames formats the per-layer prefix ("model.layers.%d.") for every
// layer of c.
func layerNames(c *Config, format string) []string {
	out := make([]string, c.NumLayers)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}
