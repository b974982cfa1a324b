// Command tokenize turns a Records artifact (fetch's data.jsonl) into a Token
// shards artifact for finetune: train.safetensors and eval.safetensors of
// int32 input_ids, labels and attention_mask, the tokenizer's files and
// metadata.json (docs/design.md §3). The work is shards.Tokenize.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/kfp/executor"
	"github.com/kfllm/kfllm/internal/records"
	"github.com/kfllm/kfllm/internal/shards"
)

const help = `
Environment (for a Hub repo id as --tokenizer):
  HF_TOKEN     Hub token for private and gated repositories (never printed)
  HF_ENDPOINT  the Hub's address (default https://huggingface.co)

Exit status: 0 done, 1 failed, 2 bad usage, 3 input or tokenizer not found,
4 data rejected (no records, too many bad rows, nothing fits --max-length,
a malformed metadata.json).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := shards.TokenizeOptions{Progress: os.Stderr}
	flag.StringVar(&o.InputDir, "input-dataset", "", "Records artifact directory (data.jsonl, metadata.json) (required)")
	flag.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer directory, or Hub repository OWNER/NAME[@revision] (its tokenizer files alone are fetched) (required)")
	flag.StringVar(&o.OutputDir, "output-dataset", "", "directory to write the token shards to; must be absent or empty (required)")
	flag.IntVar(&o.MaxLength, "max-length", shards.DefaultMaxLength, "tokens per example; longer contexts are cut")
	flag.Float64Var(&o.EvalFraction, "eval-fraction", 0.1, "share of examples held out in eval.safetensors")
	flag.Uint64Var(&o.Seed, "seed", 42, "seed of the train/eval split")
	flag.BoolVar(&o.Pack, "pack", false, "task lm: concatenate texts and cut rows of --max-length tokens")
	flag.StringVar(&o.MaxBadRows, "max-bad-rows", "0", "bad records allowed: N, P% of records read, or none")
	var ein executor.Input
	flag.Var(&ein, "executor-input", "KFP executor input as JSON ({{$}}): the output dataset's metadata goes to the executor output at its outputs.outputFile")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tokenize --input-dataset DIR --tokenizer DIR|OWNER/NAME[@REV] --output-dataset DIR [flags]")
		flag.PrintDefaults()
		fmt.Fprint(os.Stderr, help)
	}
	flag.Parse()
	if o.InputDir == "" || o.Tokenizer == "" || o.OutputDir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.Hub = hub.FromEnv(os.Getenv)
	meta, err := shards.Tokenize(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // shards.Tokenize errors start with "tokenize:"
		os.Exit(exitCode(err))
	}
	fmt.Printf("tokenize: %d train rows x %d, %d eval rows x %d (%d truncated, %d too long, %d bad) -> %s\n",
		meta.Train.Rows, meta.Train.Length, meta.Eval.Rows, meta.Eval.Length,
		meta.Counts.Truncated, meta.Counts.SkippedTooLong, meta.Counts.SkippedBad, o.OutputDir)
	if err := executor.New().Metadata("output_dataset", "train_rows", meta.Train.Rows).Metadata("output_dataset", "eval_rows", meta.Eval.Rows).
		Metadata("output_dataset", "max_length", meta.Train.Length).Write(ein.OutputFile(os.Getenv)); err != nil {
		fmt.Fprintln(os.Stderr, "tokenize:", err)
		os.Exit(1)
	}
}

func exitCode(err error) int {
	for _, e := range []error{os.ErrNotExist, hub.ErrNoClient, hub.ErrRepoNotFound, hub.ErrRevisionNotFound,
		hub.ErrGatedRepo, hub.ErrUnauthorized, hub.ErrForbidden, hub.ErrNotFound} {
		if errors.Is(err, e) {
			return 3
		}
	}
	for _, e := range []error{records.ErrTooManyBadRows, records.ErrNoRecords, records.ErrBadMetadata} {
		if errors.Is(err, e) {
			return 4
		}
	}
	return 1
}
