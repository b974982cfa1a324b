// Command fetch turns a dataset (a Hugging Face dataset repository, an
// https URL or local files in JSONL, JSON, CSV or Parquet) into a Records
// artifact: data.jsonl and metadata.json in --output-records.
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
)

const help = `
Environment:
  HF_TOKEN     Hub token for private and gated datasets (never printed);
               unset: the token file of 'hf auth login' ($HF_TOKEN_PATH,
               $HF_HOME/token, ~/.cache/huggingface/token)
  HF_ENDPOINT  the Hub's address (default https://huggingface.co)

Exit status: 0 done, 1 failed (network, disk), 2 bad usage, 3 source not
found or not accessible, 4 data rejected (too many bad rows, no usable row,
unreadable file, over --max-bytes, a line over --max-line-bytes).
Rows that are not valid UTF-8 are skipped and counted ("invalid UTF-8").
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := records.FetchOptions{Fields: map[string]string{}, Progress: hub.ProgressLines(os.Stderr, "fetch"),
		RowProgress: func(file string, read, written int64) {
			fmt.Fprintf(os.Stderr, "fetch: %s: %d rows read, %d records so far\n", file, read, written)
		}}
	o.MaxBadRows, _ = records.ParseBadRowLimit(records.DefaultMaxBadRows)
	flag.StringVar(&o.Source, "source", "", "hf://datasets/OWNER/NAME[@REV][/PATH], https://..., a local path or file://... (required)")
	flag.StringVar(&o.OutputDir, "output-dataset", "", "directory to write data.jsonl and metadata.json to (required)")
	flag.Func("format", "auto|jsonl|json|csv|parquet (default auto: from file names)", func(s string) (err error) { o.Format, err = records.ParseFormat(s); return })
	flag.StringVar(&o.Split, "split", "", "split to read (default train)")
	flag.StringVar(&o.Subset, "subset", "", "subset (config) of a Hub dataset")
	flag.StringVar(&o.Revision, "revision", "", "branch, tag or commit of a Hub dataset (default main)")
	flag.Func("task", "qa (context, question, answer) or lm (text) (default qa)", func(s string) (err error) { o.Task, err = records.ParseTask(s); return })
	for _, f := range []string{"context", "question", "answer", "text"} {
		flag.Func(f+"-field", "source path of the "+f+" field: keys and [N] indexes, as answers.text[0] (default: common layouts)", func(s string) error { o.Fields[f] = s; return nil })
	}
	flag.Func("max-bad-rows", "skipped rows allowed: N, P% of rows read, or none (default "+records.DefaultMaxBadRows+")", func(s string) (err error) { o.MaxBadRows, err = records.ParseBadRowLimit(s); return })
	flag.Int64Var(&o.MaxBytes, "max-bytes", 0, "fail when the source files exceed this many bytes in all, checked while reading (0: no limit)")
	flag.Int64Var(&o.MaxLineBytes, "max-line-bytes", records.DefaultMaxLineBytes, "fail when a JSONL line, CSV record or JSON array element is longer (memory per record: about 3 times the longest line, 6.5 for CSV)")
	var ein executor.Input
	flag.Var(&ein, "executor-input", "KFP executor input as JSON ({{$}}): the output dataset's metadata goes to the executor output at its outputs.outputFile")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fetch --source SRC --output-dataset DIR [flags]")
		flag.PrintDefaults()
		fmt.Fprint(os.Stderr, help)
	}
	flag.Parse()
	if o.Source == "" || o.OutputDir == "" || flag.NArg() > 0 || o.MaxLineBytes <= 0 || o.MaxBytes < 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.Hub = hub.New(hub.EnvOptions(os.Getenv))
	meta, err := records.Fetch(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(exitCode(err))
	}
	fmt.Printf("fetch: %d records (%d rows read, %d skipped) from %s %s-> %s\n",
		meta.RowsWritten, meta.RowsRead, meta.RowsSkipped, meta.Source, meta.Commit, o.OutputDir)
	if err := executor.New().Metadata("output_dataset", "records", meta.RowsWritten).Metadata("output_dataset", "rows_skipped", meta.RowsSkipped).
		Metadata("output_dataset", "source", meta.Source).Metadata("output_dataset", "commit", meta.Commit).Write(ein.OutputFile(os.Getenv)); err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
}

func exitCode(err error) int {
	for _, e := range []error{records.ErrSource, hub.ErrRepoNotFound, hub.ErrRevisionNotFound, hub.ErrEntryNotFound,
		hub.ErrGatedRepo, hub.ErrDisabledRepo, hub.ErrUnauthorized, hub.ErrForbidden, hub.ErrNotFound, os.ErrNotExist} {
		if errors.Is(err, e) {
			return 3
		}
	}
	for _, e := range []error{records.ErrTooManyBadRows, records.ErrNoRecords, records.ErrBadFile, records.ErrLineTooLong, hub.ErrTooLarge, hub.ErrChecksum} {
		if errors.Is(err, e) {
			return 4
		}
	}
	return 1
}
