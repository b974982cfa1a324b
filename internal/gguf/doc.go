// Package gguf reads GGUF files (the llama.cpp / ggml model format) and
// converts a Llama-architecture GGUF into a Hugging Face model directory that
// internal/model and internal/tokenizer load: config.json, model.safetensors
// (float32, Hugging Face tensor names), tokenizer.json,
// tokenizer_config.json and generation_config.json.
//
// A GGUF file is a little-endian header (magic "GGUF", version 2 or 3, tensor
// and metadata counts), typed metadata key/value pairs, tensor descriptions
// (name, dimensions innermost first, ggml type, offset), then the tensor data,
// aligned to general.alignment (32 by default). Open maps the file into
// memory and checks all of that before handing out tensor bytes: every
// length and count is checked against the bytes that are there, so a
// truncated or corrupt file is an error wrapping ErrMalformed, never a panic
// or an allocation larger than the file.
//
// Dequantize turns F32, F16, BF16, Q8_0, Q4_0 and Q4_1 tensors into float32;
// other types are an error wrapping ErrUnsupported that names the type and
// the tensor.
//
// ConvertLlama undoes what llama.cpp's converter does to a Hugging Face
// Llama: tensor names go back to Hugging Face's, the rows of the q and k
// projections are un-permuted (llama.cpp reorders them for its rotary
// layout), and the tokenizer is rebuilt as a Hugging Face byte-level BPE
// tokenizer.json from the vocabulary, merges and pre-tokenizer name in the
// metadata.
//
// The package is pure Go (no cgo, no libtorch).
package gguf
