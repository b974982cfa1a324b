// Command ui serves kfllm's web UI: a page to ask the fine-tuned model a
// question about a context, which it answers by calling the serving API.
//
//	ui [--port 8081] [--api-url URL] [--model-name NAME] [--timeout 2m]
//
// Environment (ConfigMap llm-ui-config): API_URL, MODEL_NAME; a flag wins
// over its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfllm/kfllm/ui/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv))
}

// run parses the command line, serves until ctx ends and returns the exit
// code: 0 after a clean shutdown, 1 when serving fails, 2 for bad usage.
func run(ctx context.Context, args []string, getenv func(string) string) int {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	port := fs.Int("port", 8081, "TCP port to listen on")
	apiURL := fs.String("api-url", getenv("API_URL"), "base URL of the serving API (env API_URL)")
	model := fs.String("model-name", getenv("MODEL_NAME"), "model name on the serving API (env MODEL_NAME)")
	timeout := fs.Duration("timeout", server.DefaultTimeout, "longest time one answer may take")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "ui serves the kfllm web UI and calls the serving API for it.\n\nUsage: ui [flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := server.New(server.Options{APIURL: *apiURL, ModelName: *model, Timeout: *timeout, Logger: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ui: %v (set --api-url/API_URL and --model-name/MODEL_NAME)\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ui: listen: %v\n", err)
		return 1
	}
	log.Info("ui listening", "addr", ln.Addr().String(), "model", *model)
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintf(os.Stderr, "ui: %v\n", err)
		return 1
	}
	return 0
}
