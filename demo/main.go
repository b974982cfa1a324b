// Command demo runs kfllm's main job on this machine, offline: it makes a
// dataset and a base model, runs the fine-tuning pipeline with `pipeline
// local`, prints the held-out evaluation, then serves the uploaded model with
// the UI and asks it one question (see internal/demo). `make demo` runs it.
//
// Environment: DEMO_EXIT=1 exits after the sample question instead of
// serving until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfllm/kfllm/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o demo.Options
	flag.StringVar(&o.Dir, "dir", "out/demo", "where the demo writes its data, models, runs and repository")
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "the built commands (make build)")
	flag.IntVar(&o.Train, "train", 4000, "training records")
	flag.IntVar(&o.Eval, "eval", 200, "held-out records")
	flag.IntVar(&o.MaxSteps, "max-steps", 1500, "fine-tuning steps")
	flag.Int64Var(&o.Seed, "seed", 1, "seed for the data, the base model and the training")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: demo [flags]\n\nEnvironment: DEMO_EXIT=1 exits after the sample question.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.Exit = os.Getenv("DEMO_EXIT") == "1"
	if _, err := demo.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
