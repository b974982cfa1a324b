// Command demo runs kfllm's main job on this machine, offline: it makes a
// dataset, converts the pretrained base model, runs the fine-tuning pipeline
// with `pipeline local`, prints the held-out evaluation, then serves the
// uploaded model with the UI and asks it one question (see internal/demo).
// `make demo` runs it.
//
// Environment: DEMO_EXIT=1 exits after the sample question instead of
// serving until interrupted; KFLLM_CACHE is where `make setup` put the base
// model's GGUF (default ~/.cache/kfllm).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kfllm/kfllm/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o demo.Options
	flag.StringVar(&o.Dir, "dir", "out/demo", "where the demo writes its data, models, runs and repository")
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "the built commands (make build)")
	flag.IntVar(&o.Train, "train", 1000, "training records")
	flag.IntVar(&o.Eval, "eval", 100, "held-out records (all are scored before and after)")
	flag.IntVar(&o.MaxSteps, "max-steps", 30, "fine-tuning steps of 8 examples")
	flag.Float64Var(&o.MinExactMatch, "min-exact-match", 0.9, "the check: held-out exact match after fine-tuning at least this, else exit 1")
	flag.StringVar(&o.BaseGGUF, "base-gguf", filepath.Join(cacheDir(), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "the pretrained base model (make setup fetches it)")
	flag.Int64Var(&o.Seed, "seed", 1, "seed for the data (the training's is the pipeline's default unless -param seed=N)")
	flag.Func("param", "a further pipeline parameter `NAME=VALUE` over the demo's (repeatable; for experiments: the demo runs the pipeline's defaults)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", s)
		}
		if o.Params == nil {
			o.Params = map[string]string{}
		}
		o.Params[k] = v
		return nil
	})
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: demo [flags]\n\nEnvironment: DEMO_EXIT=1 exits after the sample question;\nKFLLM_CACHE is make setup's cache (default ~/.cache/kfllm).\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.Exit = os.Getenv("DEMO_EXIT") == "1"
	if _, err := demo.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// cacheDir is make setup's cache: $KFLLM_CACHE, else the user cache dir's kfllm.
func cacheDir() string {
	if d := os.Getenv("KFLLM_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(".cache", "kfllm")
	}
	return filepath.Join(d, "kfllm")
}
