// Command rehearse runs the kfllm CPU images on this machine under runc, as
// the cluster would run them (make rehearse): each binary's --help, the
// compiled pipeline task by task in its image as the KFP v2 launcher runs
// it, then serving and the UI from their manifests, one question through
// the UI and the UI's browser test against it. See package
// internal/rehearse.
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

	"github.com/kfllm/kfllm/internal/rehearse"
)

func main() {
	var o rehearse.Options
	var names, browser string
	flag.StringVar(&o.Images, "images", "out/rehearse/images", "the CPU images' OCI layouts (make images IMAGE_FLAVOR=cpu)")
	flag.StringVar(&names, "names", "", "the component images whose --help is checked, space-separated")
	flag.StringVar(&o.Work, "work", "out/rehearse", "work directory (root file systems, data, runs, the model)")
	flag.StringVar(&o.Rootfs, "rootfs", "", "where the images' root file systems are unpacked, one per digest (default WORK/rootfs)")
	flag.StringVar(&o.Pipeline, "pipeline", "out/rehearse/pipeline.yaml", "the compiled pipeline YAML (pipeline compile)")
	flag.StringVar(&o.Manifests, "manifests", "manifests", "the manifests directory (api/, ui/)")
	flag.StringVar(&o.BaseGGUF, "base-gguf", filepath.Join(cacheDir(), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "the demo's base model (make setup fetches it)")
	flag.StringVar(&o.Runtime, "runtime", "runc", "the OCI runtime")
	flag.IntVar(&o.Train, "train", 1000, "training records (make demo's)")
	flag.IntVar(&o.Eval, "eval", 100, "held-out records (make demo's)")
	flag.Int64Var(&o.Seed, "seed", 1, "seed of the data and the training (make demo's)")
	flag.IntVar(&o.MaxSteps, "max-steps", 30, "fine-tuning steps (make demo's)")
	flag.BoolVar(&o.Launcher.ExecutorOutputInTaskRoot, "kfp-2.15", false, "lay the pods out as KFP 2.15 and later do: the executor input names TASKROOT/output_metadata.json as the executor output, and it is read there")
	flag.StringVar(&browser, "browser-test", "", "command run against the UI container (KFLLM_UI_URL...), space-separated")
	flag.Parse()
	o.Names, o.BrowserTest = strings.Fields(names), strings.Fields(browser)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := rehearse.Run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rehearse: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "\nrehearse: passed; held-out exact match %.3f -> %.3f, F1 %.3f -> %.3f; answer %q (expected %q)\n",
		res.Metrics.QA.Before.ExactMatch, res.Metrics.QA.After.ExactMatch, res.Metrics.QA.Before.F1, res.Metrics.QA.After.F1, res.Answer, res.Expected)
}

func cacheDir() string {
	if d := os.Getenv("KFLLM_CACHE"); d != "" {
		return d
	}
	d, _ := os.UserCacheDir()
	return filepath.Join(d, "kfllm")
}
