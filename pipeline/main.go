// Command pipeline builds kfllm's fine-tuning pipeline (fetch -> tokenize ->
// finetune -> upload) for Kubeflow Pipelines and runs it:
//
//	pipeline compile -o FILE          write the KFP v2 IR (YAML)
//	pipeline run --host URL [-f FILE] upload it to KFP and start a run
//	pipeline local -f FILE            run the compiled YAML on this machine
//
// Each subcommand binds its flags and makes one call into internal/kfp.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfllm/kfllm/internal/kfp/local"
)

// env is every environment variable the command reads, read once here.
type env struct {
	ImageRegistry, ImageTag  string // IMAGE_REGISTRY, IMAGE_TAG
	Host, Namespace          string // KFP_HOST, KFP_NAMESPACE
	Token, TokenPath, Cookie string // KF_PIPELINES_TOKEN, KF_PIPELINES_SA_TOKEN_PATH, KF_PIPELINES_COOKIE
}

const envHelp = `Environment: IMAGE_REGISTRY, IMAGE_TAG (compile, run); KFP_HOST or KF_PIPELINES_ENDPOINT, KFP_NAMESPACE,
KF_PIPELINES_TOKEN, KF_PIPELINES_SA_TOKEN_PATH, KF_PIPELINES_COOKIE (run);
local: a task gets PATH, the locale, TMPDIR and its own HOME, what --env gives, and the secrets its
platform spec maps (hf-secret's HF_TOKEN) from --secret NAME=FILE or else the variable named like the key.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{
		ImageRegistry: os.Getenv("IMAGE_REGISTRY"), ImageTag: os.Getenv("IMAGE_TAG"),
		Host: or(os.Getenv("KFP_HOST"), os.Getenv("KF_PIPELINES_ENDPOINT")), Namespace: os.Getenv("KFP_NAMESPACE"),
		Token: os.Getenv("KF_PIPELINES_TOKEN"), TokenPath: os.Getenv("KF_PIPELINES_SA_TOKEN_PATH"),
		Cookie: os.Getenv("KF_PIPELINES_COOKIE"),
	}
	os.Exit(exitCode(dispatch(ctx, os.Args[1:], e, os.Stdout, os.Stderr), os.Stderr))
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, e env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: pipeline compile|run|local [flags]  (pipeline CMD -h for flags)\n%s\n", envHelp)
		return errUsage
	}
	switch args[0] {
	case "compile":
		return compileCmd(args[1:], e, stderr)
	case "run":
		return runCmd(ctx, args[1:], e, stdout, stderr)
	case "local":
		return localCmd(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "pipeline: unknown command %q (want compile, run or local)\n", args[0])
	return errUsage
}

// exitCode maps an error to the process exit code: a local task's own exit
// code, 2 for usage errors, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	fmt.Fprintln(stderr, "pipeline:", err)
	var te *local.TaskError
	if errors.As(err, &te) && te.ExitCode > 0 {
		return te.ExitCode
	}
	return 1
}
