// Command upload publishes a fine-tuned model directory, with a generated
// model card, to a Hugging Face Hub repository or a git remote.
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
	"github.com/kfllm/kfllm/internal/upload"
)

const envHelp = `
Environment:
  HF_TOKEN      Hub token with write access (required for OWNER/NAME; never printed)
  HF_REPO       default for --repo
  HF_ENDPOINT   default for --endpoint (https://huggingface.co)
  GIT_USERNAME  user for an http(s) git remote
  GIT_PASSWORD  password or token for an http(s) git remote; on the Hub's own
                git host HF_TOKEN is used when it is unset
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := hub.EnvOptions(os.Getenv)
	o := upload.Options{GitUsername: os.Getenv("GIT_USERNAME"), GitPassword: os.Getenv("GIT_PASSWORD"), Progress: os.Stderr}
	flag.StringVar(&o.ModelDir, "model-dir", "", "model directory to upload (required)")
	flag.StringVar(&o.Repo, "repo", os.Getenv("HF_REPO"), "OWNER/NAME on the Hub, a git URL, or a bare repository path (created if missing)")
	flag.BoolVar(&o.Private, "private", false, "create the Hub repository private")
	flag.StringVar(&o.Revision, "revision", "", "branch to commit to (default: main on the Hub; the branch a git remote's HEAD names)")
	flag.StringVar(&o.CommitMessage, "commit-message", "Upload model with kfllm", "commit message")
	flag.StringVar(&env.Endpoint, "endpoint", env.Endpoint, "Hub endpoint")
	flag.Int64Var(&o.LFSThreshold, "lfs-threshold", 10<<20, "git remotes: files of this many bytes or more go through git-lfs (negative: never)")
	flag.BoolVar(&o.ModelCard, "model-card", true, "publish a generated README.md model card (a hand-written one is kept; --model-dir is never written to)")
	flag.StringVar(&o.Card.BaseModel, "base-model", "", "model card: base model id (default: from training_args.json or config.json)")
	flag.Func("dataset", "model card: dataset id or source (repeatable)", func(s string) error { o.Card.Datasets = append(o.Card.Datasets, s); return nil })
	flag.StringVar(&o.Card.License, "license", "", "model card: license id, e.g. apache-2.0")
	var shaOut, urlOut string
	flag.StringVar(&shaOut, "commit-sha-output", "", "file to write the commit made to (KFP output parameter commit_sha)")
	flag.StringVar(&urlOut, "repo-url-output", "", "file to write the repository's URL to (KFP output parameter repo_url)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: upload --model-dir DIR --repo OWNER/NAME|GIT-URL|PATH [flags]\n")
		flag.PrintDefaults()
		fmt.Fprint(os.Stderr, envHelp)
	}
	flag.Parse()
	if o.ModelDir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if k, _ := upload.Classify(o.Repo); k == upload.KindHub {
		if _, err := hub.ParseEndpoint(env.Endpoint); err != nil {
			fmt.Fprintln(os.Stderr, "upload:", err)
			os.Exit(1)
		}
	}
	env.UserAgent = "kfllm-upload"
	o.Hub = hub.New(env) // the one owner of HF_TOKEN and the endpoint
	res, err := upload.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
	fmt.Println(res.Summary())
	if err := errors.Join(executor.WriteParamFile(shaOut, res.Commit), executor.WriteParamFile(urlOut, res.RepoURL)); err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
}
