package hub

import "slices"

// TokenizerFiles are the files of a tokenizer that internal/tokenizer reads
// (tokenizer.json and its configs, SentencePiece's tokenizer.model, GPT-2's
// vocab.json + merges.txt or encoder.json + vocab.bpe). Resolving a
// tokenizer alone fetches these and no weights.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"}

// ModelFiles are the files of a model repository that kfllm loads, the one
// list every component resolves a model with: configs (config.json,
// generation_config.json, the safetensors index, PEFT's
// adapter_config.json), safetensors weights (a PEFT adapter's too), chat
// templates, and TokenizerFiles. The duplicate weight formats many
// repositories also carry (.bin, .pt, .onnx, .gguf, .h5) are left out.
var ModelFiles = slices.Concat([]string{"*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"}, TokenizerFiles)
