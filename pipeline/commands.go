package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kfllm/kfllm/internal/kfp/finetune"
	"github.com/kfllm/kfllm/internal/kfp/local"
	"github.com/kfllm/kfllm/internal/kfp/remote"
)

func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pipeline "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pipeline %s %s\n", name, usage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, envHelp)
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// pipelineFlags binds the flags that shape the compiled pipeline: images,
// the checkpoint claim, finetune's GPU and where it may run.
func pipelineFlags(fs *flag.FlagSet, e env) *finetune.Options {
	o := &finetune.Options{}
	fs.StringVar(&o.Registry, "image-registry", or(e.ImageRegistry, finetune.DefaultRegistry), "component images' registry (IMAGE_REGISTRY)")
	fs.StringVar(&o.Tag, "image-tag", or(e.ImageTag, finetune.DefaultTag), "component images' tag (IMAGE_TAG)")
	fs.StringVar(&o.CheckpointClaim, "checkpoint-claim", "", "mount this existing PersistentVolumeClaim (pipeline parameter checkpoint_pvc) for finetune's checkpoints instead of creating one per run")
	fs.StringVar(&o.GPU.Accelerator, "accelerator", finetune.DefaultAccelerator, "default of pipeline parameter accelerator, finetune's accelerator resource")
	fs.Func("node-selector", "a label of the default of pipeline parameter node_selector, finetune's node selector: LABEL=VALUE (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("want LABEL=VALUE, got %q", s)
		}
		if o.GPU.NodeSelector == nil {
			o.GPU.NodeSelector = map[string]string{}
		}
		o.GPU.NodeSelector[k] = v
		return nil
	})
	fs.Func("toleration", "a toleration of the default of pipeline parameter tolerations, finetune's: KEY[=VALUE]:EFFECT[:SECONDS] (repeatable; no VALUE: operator Exists; SECONDS: tolerationSeconds of NoExecute)", func(s string) error {
		t, err := parseToleration(s)
		if err == nil {
			o.GPU.Tolerations = append(o.GPU.Tolerations, t)
		}
		return err
	})
	return o
}

// parseToleration reads KEY[=VALUE]:EFFECT[:SECONDS], a taint as kubectl
// taint writes it and the seconds a NoExecute toleration lasts.
func parseToleration(s string) (kfp.Toleration, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || kv == "" {
		return kfp.Toleration{}, fmt.Errorf("want KEY[=VALUE]:EFFECT[:SECONDS], got %q", s)
	}
	var seconds *int64
	if e, secs, ok := strings.Cut(effect, ":"); ok {
		n, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || n < 0 {
			return kfp.Toleration{}, fmt.Errorf("toleration %q: seconds %q: want a whole number", s, secs)
		}
		effect, seconds = e, &n
	}
	switch effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		return kfp.Toleration{}, fmt.Errorf("toleration %q: effect %q: want NoSchedule, PreferNoSchedule or NoExecute", s, effect)
	}
	k, v, hasValue := strings.Cut(kv, "=")
	t := kfp.Toleration{Key: k, Operator: "Exists", Effect: effect, Seconds: seconds}
	if hasValue {
		t.Operator, t.Value = "Equal", v
	}
	return t, nil
}

func compileCmd(args []string, e env, stderr io.Writer) error {
	fs := newFlags("compile", "-o FILE", stderr)
	out := fs.String("o", "", "write the compiled pipeline YAML here (- for stdout)")
	po := pipelineFlags(fs, e)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "pipeline compile: -o FILE is required")
		return errUsage
	}
	return kfp.WriteFile(*out, finetune.New(*po))
}

func runCmd(ctx context.Context, args []string, e env, stdout, stderr io.Writer) error {
	fs := newFlags("run", "--host URL [-f FILE] [--namespace NS] [--experiment E] [--param k=v]... [--wait]", stderr)
	o := remote.Options{Out: stdout, Params: map[string]string{}}
	file := fs.String("f", "", "compiled pipeline YAML (default: compile the built-in pipeline)")
	fs.StringVar(&o.Host, "host", e.Host, "KFP API URL, e.g. http://localhost:8888 or https://KUBEFLOW/pipeline (KFP_HOST)")
	fs.StringVar(&o.Namespace, "namespace", or(e.Namespace, "kubeflow-user-example-com"), "profile namespace of the experiment and run (KFP_NAMESPACE)")
	fs.StringVar(&o.Experiment, "experiment", "kfllm", "experiment name (created when missing)")
	fs.StringVar(&o.PipelineName, "pipeline-name", "", "name of the pipeline on the server (default: the pipeline's own)")
	fs.StringVar(&o.PipelineNamespace, "pipeline-namespace", "", "upload the pipeline private to this namespace (default: shared)")
	fs.StringVar(&o.VersionName, "version", "", "pipeline version name (default: NAME-SHA12 of the YAML)")
	fs.StringVar(&o.RunName, "run-name", "", "run name (default: NAME DATE TIME)")
	fs.StringVar(&o.UIURL, "ui-url", "", "KFP UI URL for the run link (default: derived from --host)")
	fs.Var(paramFlag(o.Params), "param", "pipeline parameter k=v (repeatable)")
	fs.BoolVar(&o.Wait, "wait", false, "wait for the run to end; exit non-zero unless it succeeded")
	fs.DurationVar(&o.PollInterval, "poll", 15*time.Second, "poll interval with --wait")
	fs.StringVar(&o.Auth.Token, "token", e.Token, "bearer token (KF_PIPELINES_TOKEN)")
	tokenFile := fs.String("token-file", e.TokenPath, "file holding the bearer token (KF_PIPELINES_SA_TOKEN_PATH)")
	fs.StringVar(&o.Auth.Cookie, "session-cookie", e.Cookie, "session cookie NAME=VALUE, or a bare authservice_session value (KF_PIPELINES_COOKIE)")
	po := pipelineFlags(fs, e)
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.Auth.Token == "" && *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		o.Auth.Token = strings.TrimSpace(string(b))
	}
	if *file != "" {
		_, err := remote.SubmitFile(ctx, *file, o)
		return err
	}
	yaml, err := finetune.YAML(*po)
	if err != nil {
		return err
	}
	_, err = remote.Submit(ctx, yaml, o)
	return err
}

func localCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("local", "-f FILE [--param k=v]... [--secret NAME=FILE]... [--env NAME[=VALUE]]... [--work-dir DIR] [--bin-dir DIR] [--cache]", stderr)
	o := local.Options{Out: stdout, Params: map[string]string{}}
	file := fs.String("f", "", "compiled pipeline YAML (from pipeline compile or the KFP SDK)")
	fs.Var(paramFlag(o.Params), "param", "pipeline parameter k=v (repeatable)")
	fs.StringVar(&o.WorkDir, "work-dir", "work", "directory of runs: DIR/RUN/TASK/OUTPUT")
	fs.StringVar(&o.RunID, "run-id", "", "run directory name (default: PIPELINE-DATE-TIME)")
	fs.StringVar(&o.BinDir, "bin-dir", "bin", "binaries standing in for the images: REGISTRY/kfllm-NAME:TAG runs BINDIR/NAME")
	fs.BoolVar(&o.Cache, "cache", false, "skip tasks whose executor and inputs are unchanged since an earlier run")
	o.Secrets = map[string]map[string]string{}
	fs.Func("secret", "Kubernetes secret NAME from FILE of KEY=VALUE lines, for the tasks whose platform spec maps it (repeatable; default: the key from the environment)", func(s string) error {
		name, file, ok := strings.Cut(s, "=")
		if !ok || name == "" || file == "" {
			return fmt.Errorf("want NAME=FILE, got %q", s)
		}
		vals, err := local.ReadSecretFile(file)
		if err == nil {
			o.Secrets[name] = vals
		}
		return err
	})
	fs.Func("env", "give every task NAME=VALUE, or NAME from this environment, as a cluster sets for its pods (repeatable; e.g. HF_ENDPOINT)", func(s string) error {
		if strings.HasPrefix(s, "=") || s == "" {
			return fmt.Errorf("want NAME[=VALUE], got %q", s)
		}
		o.PassEnv = append(o.PassEnv, s)
		return nil
	})
	fs.DurationVar(&o.MaxBackoff, "max-backoff", 0, "cap each retry's wait (default: the task's retry policy)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		fmt.Fprintln(stderr, "pipeline local: -f FILE is required (make it with pipeline compile -o FILE)")
		return errUsage
	}
	_, err := local.RunFile(ctx, *file, o)
	return err
}

// paramFlag collects repeated --param k=v.
type paramFlag map[string]string

func (p paramFlag) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k+"="+p[k])
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want k=v, got %q", s)
	}
	if _, dup := p[k]; dup {
		return fmt.Errorf("parameter %s given twice", k)
	}
	p[k] = v
	return nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
