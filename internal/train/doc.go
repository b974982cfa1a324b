// Package train fine-tunes a causal language model (internal/model) on the
// token shards that tokenize writes: full fine-tuning or LoRA, AdamW with
// the Hugging Face Trainer's schedules, gradient accumulation and clipping,
// evaluation loss and perplexity, a held-out QA evaluation before and
// after, checkpoints that a rerun resumes from, and the model directory,
// metrics.json, training_log.jsonl and KFP metrics artifact that the rest
// of the pipeline reads. Run is the one entry point; components/finetune
// is a thin main over it.
//
// Training runs on libtorch through gotch's C bindings directly (op.go),
// so that a step makes no Go tensor garbage: only the positions whose
// label is not -100 go through the final norm, lm_head and the loss.
package train
