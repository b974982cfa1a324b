// Command finetune trains a causal LM on token shards (full fine-tuning or
// LoRA) and writes a Hugging Face model directory with metrics.json and
// training_log.jsonl; rerun with the same --checkpoint-dir, it resumes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/distjob"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/kfp/executor"
	"github.com/kfllm/kfllm/internal/report"
	"github.com/kfllm/kfllm/internal/torch"
	"github.com/kfllm/kfllm/internal/train"
)

const help = `
Environment:
  HF_TOKEN     Hub token for a private --base-model OWNER/NAME[@REV] (never printed)
  HF_ENDPOINT  the Hub's address (default https://huggingface.co)

  OMP_WAIT_POLICY  libgomp's; unset, finetune restarts itself with PASSIVE, so
                   that libtorch's threads sleep instead of spinning when the
                   CPUs are shared (2 threads on 2 busy cores: 19x faster)

Data-parallel training (docs/design.md, finetune):
  WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
               as torchrun, PyTorchJob and TrainJob set them: with WORLD_SIZE > 1
               this process is one rank; gradients are summed through libtorch's
               c10d (ProcessGroupNCCL on CUDA, in the CUDA image; ProcessGroupGloo
               on the CPU), rank 0 writes logs, checkpoints and outputs. With CUDA,
               each rank trains on cuda:LOCAL_RANK
  GLOO_SOCKET_IFNAME  the network interface Gloo uses (default: the host name's)
  OMP_NUM_THREADS     with --nproc-per-node and no --threads, set to CPUs / N
                      for each rank unless already set
  PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE, PET_MASTER_ADDR, PET_MASTER_PORT
               a TrainJob's torchrun variables, read when WORLD_SIZE is unset

With --workers N > 1 (the pipeline's workers), this process launches the
ranks as a PyTorchJob or TrainJob in its own namespace and waits for it:
  KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT  the API server (set in pods)
  KFLLM_SERVICE_ACCOUNT_DIR  token, ca.crt, namespace (default
               /var/run/secrets/kubernetes.io/serviceaccount)
  KFP_POD_NAME, KFP_POD_UID  this pod, the job's owner (set by KFP)

Exit status: 0 done, 1 failed, 2 bad usage, 3 loss or gradient not finite,
130 interrupted (a rerun resumes from the last checkpoint).
`

func main() {
	passiveOpenMP()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := train.Options{Progress: os.Stderr, Hub: hub.FromEnv(os.Getenv)}
	f := flag.CommandLine
	f.StringVar(&o.InputDataset, "input-dataset", "", "token shard directory (required)")
	f.StringVar(&o.BaseModel, "base-model", "", "model directory or Hub repository OWNER/NAME[@revision] (required)")
	f.StringVar(&o.OutputModelDir, "output-model-dir", "", "where the trained model directory goes (required)")
	f.IntVar(&o.Epochs, "epochs", 1, "passes over the training shard (when --max-steps is 0)")
	f.IntVar(&o.MaxSteps, "max-steps", 0, "optimizer steps (0: --epochs worth)")
	f.Float64Var(&o.LearningRate, "learning-rate", 5e-5, "peak AdamW learning rate")
	f.IntVar(&o.BatchSize, "batch-size", 8, "sequences per micro-batch")
	f.IntVar(&o.GradAccum, "grad-accum", 1, "micro-batches per optimizer step")
	f.IntVar(&o.WarmupSteps, "warmup-steps", 0, "linear warmup steps")
	f.Float64Var(&o.WeightDecay, "weight-decay", 0, "AdamW weight decay (not on biases and norm weights)")
	f.Float64Var(&o.MaxGradNorm, "max-grad-norm", 1, "clip the gradient norm to this (negative: no clipping)")
	f.Int64Var(&o.Seed, "seed", 42, "seed of data order, LoRA init and dropout")
	f.StringVar(&o.LRScheduler, "lr-scheduler", "linear", "linear|cosine|constant, after warmup")
	f.IntVar(&o.LoRAR, "lora-r", 0, "LoRA rank (0: full fine-tuning)")
	f.Float64Var(&o.LoRAAlpha, "lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	f.Float64Var(&o.LoRADropout, "lora-dropout", 0, "dropout on the LoRA input")
	f.Var(listFlag{&o.LoRATargetModules}, "lora-target-modules", "comma-separated module names (default q_proj,v_proj)")
	f.BoolVar(&o.MergeLoRA, "merge-lora", false, "write merged full weights instead of a PEFT adapter")
	f.StringVar(&o.Device, "device", "auto", "auto|cpu|cuda|cuda:N (auto: CUDA when present; auto and cuda mean cuda:LOCAL_RANK)")
	f.StringVar(&o.DType, "dtype", "auto", "auto|float32|bfloat16 (auto: float32 on CPU, bfloat16 on CUDA)")
	f.StringVar(&o.CheckpointDir, "checkpoint-dir", "", "checkpoint directory; a rerun resumes from it")
	f.IntVar(&o.SaveSteps, "save-steps", 500, "checkpoint every N steps")
	f.IntVar(&o.EvalSteps, "eval-steps", 0, "eval loss every N steps (0: at the end only)")
	f.StringVar(&o.MetricsOutput, "metrics-output", "", "KFP metrics artifact file")
	var htmlOut, mdOut string
	f.StringVar(&htmlOut, "html-output", "", "KFP HTML artifact file (system.HTML): loss curves, learning rate, evaluation table")
	f.StringVar(&mdOut, "markdown-output", "", "KFP Markdown artifact file (system.Markdown): the evaluation table")
	f.StringVar(&o.QAEval, "qa-eval", "", "held-out QA records JSONL (context, question, answer): EM/F1 before and after")
	f.IntVar(&o.QAEvalMax, "qa-eval-max", 100, "questions of --qa-eval to score")
	qaBefore := f.Bool("qa-eval-before", true, "score --qa-eval before training too (false: after only, when the base's score is known)")
	f.IntVar(&o.LogEvery, "log-every", 10, "progress line every N steps (off a terminal)")
	f.IntVar(&o.Threads, "threads", 0, "libtorch threads (0: libtorch's default)")
	var nproc int
	f.IntVar(&nproc, "nproc-per-node", 1, "start this many data-parallel ranks on this machine (torchrun's flag); --batch-size is per rank")
	f.DurationVar(&o.DistTimeout, "dist-timeout", 30*time.Minute, "data-parallel: bound on the rendezvous and on each allreduce")
	var ein executor.Input
	f.Var(&ein, "executor-input", "KFP executor input as JSON ({{$}}): the Metrics artifact's numbers go to the executor output at its outputs.outputFile")
	var job distjob.Flags
	job.Register(f)
	f.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: finetune --input-dataset DIR --base-model DIR|OWNER/NAME[@REV] --output-model-dir DIR [flags]")
		f.PrintDefaults()
		fmt.Fprint(os.Stderr, help)
	}
	flag.Parse()
	if flag.NArg() > 0 || o.InputDataset == "" || o.BaseModel == "" || o.OutputModelDir == "" {
		f.Usage()
		os.Exit(2)
	}
	env, err := dist.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(2)
	}
	if nproc > 1 {
		os.Exit(launch(ctx, nproc, env, o.Threads))
	}
	if job.Workers > 1 {
		os.Exit(launchJob(ctx, &job, o, ein.OutputFile(os.Getenv)))
	}
	o.Dist, o.DistIface = env, os.Getenv("GLOO_SOCKET_IFNAME")
	o.QASkipBefore = !*qaBefore
	torch.TuneAllocatorForTraining()
	res, err := train.Run(ctx, o)
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "finetune: interrupted; rerun the same command to resume from the last checkpoint")
		os.Exit(130)
	case errors.Is(err, train.ErrOptions):
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(2)
	case errors.Is(err, train.ErrNonFinite):
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(3)
	case err != nil:
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(1)
	}
	if env.Rank != 0 {
		return // rank 0 writes the artifacts and the summary
	}
	out := executor.New()
	if o.MetricsOutput != "" {
		out.MetricsFile("metrics", o.MetricsOutput)
	}
	if err := errors.Join(report.WriteCardAssets(o.OutputModelDir), report.WriteArtifacts(o.OutputModelDir, htmlOut, mdOut), out.Write(ein.OutputFile(os.Getenv))); err != nil {
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(1)
	}
	m := res.Metrics
	fmt.Printf("finetune: %d steps, train loss %.4f, eval loss %.4f, %.0f tokens/s -> %s\n", m.Steps, m.TrainLoss, m.EvalLoss, m.TokensPerSec, o.OutputModelDir)
}

// launchJob runs the training flags as a Kubernetes job of job.Workers
// ranks (internal/distjob) and reports its metrics artifact as a local run
// does, at executorOutput; the ranks' rank 0 wrote the outputs, which are
// now at o's paths.
func launchJob(ctx context.Context, job *distjob.Flags, o train.Options, executorOutput string) int {
	var rank []distjob.Flag
	flag.Visit(func(fl *flag.Flag) {
		if !job.Owns(fl.Name) {
			rank = append(rank, distjob.Flag{Name: fl.Name, Value: fl.Value.String()})
		}
	})
	err := job.Run(ctx, rank, o.CheckpointDir, os.Getenv, os.Getenv("KFLLM_SERVICE_ACCOUNT_DIR"), os.Stderr)
	if err == nil {
		out := executor.New()
		if o.MetricsOutput != "" {
			out.MetricsFile("metrics", o.MetricsOutput)
		}
		err = out.Write(executorOutput)
	}
	switch {
	case err == nil:
		fmt.Printf("finetune: %d workers done -> %s\n", job.Workers, o.OutputModelDir)
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "finetune: interrupted; the job was deleted; rerun to resume from the last checkpoint")
		return 130
	default:
		fmt.Fprintln(os.Stderr, "finetune:", err)
		return 1
	}
}

// listFlag is a comma-separated list flag whose String gives back what
// was set (the ranks of a job get the flag as text).
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error { *l.p = strings.Split(s, ","); return nil }

// launch runs nproc ranks of this command on this machine and returns
// the exit status: the first failed rank's (1 when it was killed), 130
// when interrupted.
func launch(ctx context.Context, nproc int, env dist.Env, threads int) int {
	if env.Distributed() {
		fmt.Fprintf(os.Stderr, "finetune: --nproc-per-node %d inside a distributed job (WORLD_SIZE=%d): run one rank per process, or drop WORLD_SIZE\n", nproc, env.WorldSize)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "finetune:", err)
		return 1
	}
	environ := os.Environ()
	if _, ok := os.LookupEnv("OMP_NUM_THREADS"); !ok && threads == 0 {
		environ = append(environ, "OMP_NUM_THREADS="+strconv.Itoa(max(1, runtime.NumCPU()/nproc)))
	}
	// The last --nproc-per-node wins: each rank runs as one process.
	err = dist.Launch(ctx, dist.LaunchOptions{Procs: nproc, Path: exe, Args: append(os.Args[1:], "--nproc-per-node=1"),
		Env: environ, Stdout: os.Stdout, Stderr: os.Stderr})
	var re *dist.RankError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		fmt.Fprintln(os.Stderr, "finetune:", err)
		if re.Code > 0 {
			return re.Code
		}
		return 1
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "finetune: interrupted; rerun the same command to resume from the last checkpoint")
		return 130
	default:
		fmt.Fprintln(os.Stderr, "finetune:", err)
		return 1
	}
}

// passiveOpenMP re-executes the binary with OMP_WAIT_POLICY=PASSIVE unless
// the variable is set: libgomp reads it when libtorch loads, before main.
func passiveOpenMP() {
	if _, ok := os.LookupEnv("OMP_WAIT_POLICY"); ok {
		return
	}
	os.Setenv("OMP_WAIT_POLICY", "PASSIVE")
	if exe, err := os.Executable(); err == nil {
		syscall.Exec(exe, os.Args, os.Environ()) // returns only on failure: carry on as is
	}
}
