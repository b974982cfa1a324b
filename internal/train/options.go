package train

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/hub"
)

// Options configure Run. The zero value of a field means its default
// (listed beside it); Validate fills them in.
type Options struct {
	// InputDataset is the token shard directory (docs/design.md §3).
	InputDataset string
	// BaseModel is a model directory or a Hub repository
	// OWNER/NAME[@revision] (hub.ParseRef).
	BaseModel string
	// OutputModelDir receives the trained model directory.
	OutputModelDir string

	Epochs       int     // default 1; ignored when MaxSteps > 0
	MaxSteps     int     // optimizer steps; 0 = Epochs worth
	LearningRate float64 // default 5e-5 (the Hugging Face Trainer's)
	BatchSize    int     // per micro-batch, default 8
	GradAccum    int     // micro-batches per optimizer step, default 1
	WarmupSteps  int
	WeightDecay  float64 // AdamW's, not applied to biases and norm weights
	MaxGradNorm  float64 // default 1.0; negative disables clipping
	Seed         int64   // default 42
	LRScheduler  string  // linear (default), cosine or constant

	LoRAR             int     // 0 = full fine-tuning
	LoRAAlpha         float64 // default 16
	LoRADropout       float64
	LoRATargetModules []string // default q_proj, v_proj
	MergeLoRA         bool     // write merged full weights instead of an adapter

	Device string // auto|cpu|cuda|cuda:N (auto and cuda: cuda:Dist.LocalRank)
	DType  string // auto|float32|bfloat16

	CheckpointDir string // where checkpoints go; empty = no checkpoints
	SaveSteps     int    // default 500
	EvalSteps     int    // 0 = only at the end
	MetricsOutput string // KFP metrics artifact file, optional

	QAEval         string // records JSONL with context/question/answer
	QAEvalMax      int    // default 100
	QAMaxNewTokens int    // default 32
	QASkipBefore   bool   // score only after training (the base's score is known)

	LogEvery int // plain progress line every N steps, default 10
	Threads  int // libtorch intra-op threads; 0 = libtorch's default

	// Hub fetches a BaseModel on the Hub (hub.FromEnv in the binary).
	Hub *hub.Client

	// Dist is this process's rank (dist.FromEnv): with WorldSize > 1 Run
	// trains data-parallel, BatchSize rows per rank per micro-batch.
	Dist dist.Env
	// DistTimeout bounds the rendezvous and every collective (default 30
	// minutes, torch.distributed's); DistIface is the network interface
	// Gloo uses (GLOO_SOCKET_IFNAME), empty for the host name's address.
	DistTimeout time.Duration
	DistIface   string

	// Progress receives the progress bar (a terminal) or lines; nil = none.
	Progress io.Writer
	// Logger receives notices (resume, skipped checkpoints); nil discards.
	Logger *slog.Logger

	// Test hooks: batches in shard order, and adapter weights to start
	// from (PEFT key names) instead of a fresh initialisation.
	noShuffle   bool
	initAdapter string
}

// ErrOptions is returned (wrapped) by Validate and Run for bad options.
var ErrOptions = errors.New("bad finetune options")

// Validate checks o and fills defaults.
func (o *Options) Validate() error {
	var errs []string
	need := func(v, flag string) {
		if v == "" {
			errs = append(errs, flag+" is required")
		}
	}
	need(o.InputDataset, "--input-dataset")
	need(o.BaseModel, "--base-model")
	need(o.OutputModelDir, "--output-model-dir")
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.Epochs, 1)
	def(&o.BatchSize, 8)
	def(&o.GradAccum, 1)
	def(&o.SaveSteps, 500)
	def(&o.QAEvalMax, 100)
	def(&o.QAMaxNewTokens, 32)
	def(&o.LogEvery, 10)
	if o.LearningRate == 0 {
		o.LearningRate = 5e-5
	}
	if o.MaxGradNorm == 0 {
		o.MaxGradNorm = 1
	}
	if o.Seed == 0 {
		o.Seed = 42
	}
	if o.DistTimeout == 0 {
		o.DistTimeout = 30 * time.Minute
	}
	if o.DistTimeout < 0 {
		errs = append(errs, fmt.Sprintf("--dist-timeout %v must be positive", o.DistTimeout))
	}
	if o.LoRAAlpha == 0 {
		o.LoRAAlpha = 16
	}
	if len(o.LoRATargetModules) == 0 {
		o.LoRATargetModules = []string{"q_proj", "v_proj"}
	}
	if o.LRScheduler == "" {
		o.LRScheduler = "linear"
	}
	switch o.LRScheduler {
	case "linear", "cosine", "constant":
	default:
		errs = append(errs, fmt.Sprintf("--lr-scheduler %q: want linear, cosine or constant", o.LRScheduler))
	}
	pos := func(v int, flag string) {
		if v < 0 {
			errs = append(errs, fmt.Sprintf("%s %d must not be negative", flag, v))
		}
	}
	pos(o.Epochs, "--epochs")
	pos(o.MaxSteps, "--max-steps")
	pos(o.BatchSize, "--batch-size")
	pos(o.GradAccum, "--grad-accum")
	pos(o.WarmupSteps, "--warmup-steps")
	pos(o.LoRAR, "--lora-r")
	pos(o.SaveSteps, "--save-steps")
	pos(o.EvalSteps, "--eval-steps")
	pos(o.QAEvalMax, "--qa-eval-max")
	if o.LearningRate < 0 || o.WeightDecay < 0 || o.LoRADropout < 0 || o.LoRADropout >= 1 {
		errs = append(errs, "--learning-rate and --weight-decay must be >= 0, --lora-dropout in [0, 1)")
	}
	if o.MergeLoRA && o.LoRAR == 0 {
		errs = append(errs, "--merge-lora needs --lora-r > 0")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrOptions, strings.Join(errs, "; "))
	}
	return nil
}

// fingerprint names what a checkpoint must agree on to be resumed.
func (o *Options) fingerprint() string {
	f := fmt.Sprintf("bs=%d ga=%d seed=%d lora=%d/%g/%s", o.BatchSize, o.GradAccum, o.Seed, o.LoRAR, o.LoRAAlpha, strings.Join(o.LoRATargetModules, ","))
	if o.Dist.WorldSize > 1 {
		f += fmt.Sprintf(" world=%d", o.Dist.WorldSize)
	}
	return f
}
