// Package train fine-tunes a causal language model (internal/model) on the
// token shards that tokenize writes: full fine-tuning or LoRA, AdamW with
// the Hugging Face Trainer's schedules, gradient accumulation and clipping,
// evaluation loss and perplexity, a held-out QA evaluation before and
// after, checkpoints that a rerun resumes from, and the model directory,
// metrics.json, training_log.jsonl and KFP metrics artifact that the rest
// of the pipeline reads. Run is the one entry point; components/finetune
// is a thin main over it.
//
// Semantics, where the Trainer leaves a choice:
//   - The loss of an optimizer step is the token mean over all its
//     micro-batches: each contributes its cross-entropy sum divided by the
//     step's count of labelled tokens (transformers >= 4.46's
//     num_items_in_batch), so --grad-accum 4 --batch-size 8 trains exactly
//     as --batch-size 32.
//   - eval_loss is the token mean over the whole eval shard;
//     eval_perplexity is exp(eval_loss).
//   - learning_rate in training_log.jsonl is the rate the step used (the
//     Trainer logs the next step's).
//   - Batches come from a per-epoch permutation seeded by (seed, epoch);
//     dropout is reseeded per micro-batch from (seed, step). A checkpoint
//     therefore needs only the step to put data and randomness back where
//     they were, and a resumed run ends with the same bytes as one that
//     never stopped.
//
// Devices: --device auto takes CUDA when libtorch sees it, and --dtype auto
// then computes in bfloat16. Parameters and AdamW state stay in the compute
// dtype (there is no float32 master copy of the weights on CUDA); the loss
// is computed in float32; checkpoints are stored as float32. On CPU
// everything is float32.
//
// Speed: training runs on libtorch through internal/torch (gotch's C
// bindings called directly), so that a step makes no Go tensor garbage, and the last decoder
// layer, the final norm, lm_head and the loss run only at the positions
// whose next-token label is not -100 (model.ForwardAt).
package train
