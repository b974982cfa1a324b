// Command peer measures kfllm's serving beside another OpenAI-compatible
// server (llama.cpp's llama-server) on the same weights: the same prompts,
// greedy, the same number of new tokens per request, 1 client and then N
// concurrent clients. bench/llamacpp_vs_kfllm.sh drives it.
//
//	peer convert -gguf F -out DIR          GGUF -> Hugging Face dir (float32) for kfllm
//	peer run -url U -route R -model M ...  one measurement, a JSON line on stdout
//	peer report -o docs/benchmarks.md FILE...  the "## Serving vs llama.cpp" section
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peer convert|run|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "convert":
		err = convertCmd(ctx, os.Args[2:])
	case "run":
		err = runCmd(ctx, os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q (want convert, run or report)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}
