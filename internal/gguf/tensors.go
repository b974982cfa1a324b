package gguf

import (
	"encoding/json"
	"fmt"
)

// LlamaTensor is a tensor of a Llama GGUF under its Hugging Face name, in
// the file's own type (quantized blocks stay quantized), rows in Hugging
// Face order.
type LlamaTensor struct {
	Name  string  // Hugging Face name, as in ConvertLlama's model.safetensors
	Type  Type    // the file's type
	Shape []int64 // Hugging Face shape, outermost first
	// Data is the tensor's bytes in the file's type: a view of the mapped
	// file (valid until the File is closed), or, for the q and k
	// projections, whose rows are un-permuted, a copy.
	Data []byte
}

// LlamaConfig returns config.json and generation_config.json for the Llama
// GGUF g, as ConvertLlama writes them.
func LlamaConfig(g *File) (config, generation []byte, err error) {
	hp, err := readLlamaParams(g)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: config of %s: %w", g.path, err)
	}
	if config, err = json.Marshal(hp.hfConfig()); err == nil {
		generation, err = json.Marshal(hp.generationConfig())
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: config of %s: %w", g.path, err)
	}
	return config, generation, nil
}

// LlamaTensors lists the tensors of the Llama GGUF g under their Hugging
// Face names, in file order, without dequantizing them: what a loader that
// computes with the quantized blocks needs. The checks are ConvertLlama's:
// every tensor known, of its expected shape, of a type Dequantize handles.
func LlamaTensors(g *File) ([]LlamaTensor, error) {
	hp, err := readLlamaParams(g)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensors of %s: %w", g.path, err)
	}
	plan, err := planTensors(g, hp)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensors of %s: %w", g.path, err)
	}
	out := make([]LlamaTensor, len(plan))
	for i, p := range plan {
		r := newRowReader(g, p)
		data := r.raw
		if r.headDim > 0 {
			data = make([]byte, len(r.raw))
			for row := range r.rows {
				s := r.srcRow(row)
				copy(data[row*r.rowBytes:(row+1)*r.rowBytes], r.raw[s*r.rowBytes:(s+1)*r.rowBytes])
			}
		}
		out[i] = LlamaTensor{Name: p.hfName, Type: p.src.Type, Shape: p.src.Shape(), Data: data}
	}
	return out, nil
}
