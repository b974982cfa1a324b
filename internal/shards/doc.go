// Package shards makes and reads the Token shards artifact, tokenize's
// output and finetune's input (docs/design.md §3): train.safetensors and
// eval.safetensors of int32 input_ids, labels (IgnoreIndex on prompt and
// padding) and attention_mask, the tokenizer's files and metadata.json.
//
// Tokenize turns a Records artifact (package records) into shards: each
// record through the one prompt template (internal/prompt) and the
// tokenizer named by a model reference (hub.ParseRef; a Hub tokenizer is
// fetched without weights), on all cores, with a deterministic train/eval
// split; the output is staged and renamed into place. ReadShards and
// ReadShard are finetune's side.
package shards
