package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/device"
	"github.com/kfllm/kfllm/internal/dist"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/tokenizer"
	"github.com/kfllm/kfllm/internal/torch"
)

// ErrNonFinite is returned (wrapped) when a loss or gradient norm is NaN
// or Inf: training stops rather than writing a broken model.
var ErrNonFinite = errors.New("loss is not finite")

// Result is what Run reports: the metrics it wrote to metrics.json and
// the step it resumed from (0 for a fresh run).
type Result struct {
	Metrics     Metrics
	ResumedFrom int
}

// resolveBase returns a local directory for --base-model: a directory as
// is, OWNER/NAME[@revision] through the Hub cache at that revision.
func resolveBase(ctx context.Context, o *Options) (hub.Ref, string, error) {
	ref, err := hub.ParseRef(o.BaseModel)
	if err != nil {
		return hub.Ref{}, "", fmt.Errorf("base model: %w", err)
	}
	dir, _, err := ref.Resolve(ctx, o.Hub, hub.SnapshotOptions{})
	if err != nil {
		return hub.Ref{}, "", fmt.Errorf("base model: %w", err)
	}
	return ref, dir, nil
}

// trainer holds one run's state.
type trainer struct {
	o        *Options
	base     hub.Ref // o.BaseModel, parsed
	log      *slog.Logger
	m        *model.Model
	device   string // where the model goes: o.Device resolved for this rank (cpu, cuda:N)
	params   []*param
	adapters []adapter
	opt      *adamW
	train    *shard
	eval     *shard
	plan     plan
	total    int
	state    trainerState
	dp       *ddp // nil: one process
}

// Run fine-tunes a causal LM on token shards and writes the model
// directory, metrics.json, training_log.jsonl and the metrics artifact.
// With a checkpoint directory, a rerun of the same options resumes from
// the newest valid checkpoint and ends with the same weights as a run
// that was never interrupted.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Threads > 0 {
		torch.SetThreads(o.Threads)
	}
	// libtorch's grad mode and last error are per OS thread: the whole
	// run stays on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := &trainer{o: &o, log: log}
	defer t.close()
	// Each rank of a node on its own GPU: auto and cuda mean
	// cuda:LOCAL_RANK.
	dev, err := device.Pick(o.Device, o.Dist.LocalRank, device.CUDADevices())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	t.device = device.Name(dev)
	if o.Dist.Distributed() {
		// The backend follows the tensors: NCCL on CUDA, Gloo on the CPU.
		g, err := dist.NewGroup(dist.Config{Env: o.Dist, Timeout: o.DistTimeout, Iface: o.DistIface,
			CUDA: dev.IsCuda(), Device: dev.Value})
		if err != nil {
			return nil, fmt.Errorf("data-parallel training: %w", err)
		}
		t.dp = &ddp{g: g, dev: gotch.CPU}
		if g.Backend() == dist.NCCL {
			t.dp.dev = dev
		}
		// On stderr even when o.Logger is unset: where each rank runs.
		lg := o.Logger
		if lg == nil {
			lg = slog.Default()
		}
		lg.Info("data-parallel rank", "rank", g.Rank(), "local_rank", o.Dist.LocalRank, "world_size", g.Size(), "device", t.device, "backend", g.Backend())
		if g.Rank() != 0 {
			// Logs, progress and outputs come from rank 0 alone.
			o.Progress, o.MetricsOutput, o.QAEval = nil, "", ""
		}
	}
	res, err := t.run(ctx)
	if err != nil {
		// A failed collective leaves Gloo work queued, which c10d's
		// destructor would wait for: the process exits instead.
		return nil, err
	}
	if t.dp != nil {
		t.dp.g.Close()
	}
	return res, nil
}

func (t *trainer) close() {
	if t.opt != nil {
		t.opt.close()
	}
	if t.m != nil {
		t.m.Close()
	}
}

func (t *trainer) run(ctx context.Context) (*Result, error) {
	o := t.o
	lead := t.dp.rank() == 0
	if lead {
		if err := prepareOutput(filepath.Clean(o.OutputModelDir), false); err != nil {
			return nil, err
		}
	}
	var err error
	if t.train, err = readShard(o.InputDataset, "train.safetensors"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(o.InputDataset, "eval.safetensors")); err == nil && lead {
		if t.eval, err = readShard(o.InputDataset, "eval.safetensors"); err != nil {
			return nil, err
		}
	}
	var base string
	t.base, base, err = resolveBase(ctx, o)
	if err != nil {
		return nil, err
	}
	t.m, err = model.Load(base, model.LoadOptions{Device: t.device, DType: o.DType, Trainable: o.LoRAR == 0})
	if err != nil {
		return nil, err
	}
	if err := t.checkVocab(); err != nil {
		return nil, err
	}
	if o.LoRAR > 0 {
		o.LoRATargetModules = resolveTargets(t.m, o.LoRATargetModules)
		t.adapters, err = attachLoRA(t.m, o.LoRAR, o.LoRAAlpha, o.LoRADropout, o.LoRATargetModules, o.Seed)
		if err != nil {
			return nil, err
		}
		if o.initAdapter != "" {
			if err := loadAdapter(o.initAdapter, t.adapters); err != nil {
				return nil, err
			}
		}
		for _, a := range t.adapters {
			t.params = append(t.params,
				&param{name: a.path + ".lora_A", t: torch.Of(a.lin.LoRA.A)},
				&param{name: a.path + ".lora_B", t: torch.Of(a.lin.LoRA.B)})
		}
	} else {
		for _, p := range t.m.Parameters() {
			if p.Trainable {
				t.params = append(t.params, &param{name: p.Name, t: torch.Of(p.Tensor), noDecay: p.NoDecay})
			}
		}
	}
	if t.opt, err = newAdamW(t.params, o.WeightDecay); err != nil {
		return nil, err
	}

	// With several ranks, the plan's micro-batch is the global one.
	t.plan = plan{n: t.train.n, batchSize: o.BatchSize * t.dp.world(), gradAccum: o.GradAccum, seed: o.Seed, shuffle: !o.noShuffle}
	t.total = o.MaxSteps
	if t.total == 0 {
		t.total = o.Epochs * t.plan.stepsPerEpoch()
	}

	resumed := 0
	if o.CheckpointDir != "" && lead {
		st, err := resume(o.CheckpointDir, t.params, t.m.Device().Device, t.log)
		if err != nil {
			return nil, err
		}
		if st != nil {
			if st.Fingerprint != o.fingerprint() {
				return nil, fmt.Errorf("resume from %s: its checkpoints were made with other options (%s, now %s); use a fresh --checkpoint-dir",
					o.CheckpointDir, st.Fingerprint, o.fingerprint())
			}
			t.state = *st
			t.opt.steps = st.OptimizerStep
			resumed = st.Step
			t.log.Info("resumed from checkpoint", "step", st.Step, "dir", o.CheckpointDir)
		}
	}
	t.state.Fingerprint = o.fingerprint()
	if t.dp != nil {
		if err := t.syncStart(); err != nil {
			return nil, err
		}
		resumed = t.state.Step
		if !lead {
			return t.follow(ctx, resumed)
		}
	}

	stage := stagingDir(o.OutputModelDir)
	if resumed == 0 {
		os.RemoveAll(stage)
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	// The log lives beside the checkpoints when there are any, so that a
	// resumed run keeps the lines of the steps before the kill.
	logPath := filepath.Join(stage, "training_log.jsonl")
	if o.CheckpointDir != "" {
		if err := os.MkdirAll(o.CheckpointDir, 0o755); err != nil {
			return nil, fmt.Errorf("checkpoint dir: %w", err)
		}
		logPath = filepath.Join(o.CheckpointDir, "training_log.jsonl")
	}
	tlog, err := openLog(logPath, resumed)
	if err != nil {
		return nil, err
	}
	defer tlog.close()

	tokDir := filepath.Join(o.InputDataset, "tokenizer")
	var qa []qaRecord
	var tok *tokenizer.Tokenizer
	if o.QAEval != "" {
		if qa, err = readQA(o.QAEval, o.QAEvalMax); err != nil {
			return nil, err
		}
		if tok, err = tokenizer.Load(tokDir); err != nil {
			return nil, fmt.Errorf("qa eval: %w", err)
		}
		if t.state.QABefore == nil && !o.QASkipBefore {
			if t.state.QABefore, err = qaEvalNoted(ctx, o.Progress, "before", t.m, tok, qa, o.QAMaxNewTokens); err != nil {
				return nil, err
			}
		}
	}

	prog := newProgress(o.Progress, resumed, t.total, o.LogEvery)
	if resumed > 0 {
		prog.note("resuming at step %d of %d from %s", resumed, t.total, o.CheckpointDir)
	}
	cache := map[int][]int{}
	runStart, cpuStart := time.Now(), cpuSeconds()
	priorRuntime, priorCPU, priorAllReduce := t.state.Runtime, t.state.CPU, t.state.AllReduce
	for s := resumed; s < t.total; s++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("training stopped at step %d: %w", s, err)
		}
		t0 := time.Now()
		epoch, loss, tokens, gn, lr, err := t.step(s, cache)
		if err != nil {
			return nil, err
		}
		t.state.Step, t.state.Epoch, t.state.OptimizerStep = s+1, epoch, t.opt.steps
		t.state.LossSum += loss
		t.state.LossCount++
		t.state.Tokens += int64(tokens)
		t.state.Runtime = priorRuntime + time.Since(runStart).Seconds()
		t.state.CPU = priorCPU + cpuSeconds() - cpuStart
		if t.dp != nil {
			t.state.AllReduce = priorAllReduce + t.dp.busy.Seconds()
		}
		line := logLine{Step: s + 1, Epoch: float64(s+1) / float64(t.plan.stepsPerEpoch()), Loss: loss,
			LearningRate: lr, GradNorm: gn, TokensPerSec: float64(tokens) / time.Since(t0).Seconds()}
		if err := tlog.write(line); err != nil {
			return nil, err
		}
		prog.step(line)
		if o.EvalSteps > 0 && (s+1)%o.EvalSteps == 0 && s+1 < t.total && t.eval != nil {
			ev, err := t.evaluate(s + 1)
			if err != nil {
				return nil, err
			}
			t.state.LastEval = ev
			if err := tlog.write(ev); err != nil {
				return nil, err
			}
			prog.note("step %d: eval_loss %.4f perplexity %.3f", ev.Step, ev.EvalLoss, ev.EvalPerplexity)
		}
		if o.CheckpointDir != "" && ((s+1)%o.SaveSteps == 0 || s+1 == t.total) {
			if err := saveCheckpoint(o.CheckpointDir, t.params, t.state); err != nil {
				return nil, err
			}
		}
	}
	prog.finish()

	met := Metrics{Steps: t.state.Step, Runtime: t.state.Runtime, CPU: t.state.CPU, Tokens: t.state.Tokens,
		AllReduce: t.state.AllReduce}
	if t.dp != nil {
		met.WorldSize = t.dp.world()
	}
	if t.state.LossCount > 0 {
		met.TrainLoss = t.state.LossSum / float64(t.state.LossCount)
	}
	if t.state.Runtime > 0 {
		met.TokensPerSec = float64(t.state.Tokens) / t.state.Runtime
	}
	if t.eval != nil {
		ev, err := t.evaluate(t.state.Step)
		if err != nil {
			return nil, err
		}
		if err := tlog.write(ev); err != nil {
			return nil, err
		}
		met.EvalLoss, met.EvalPerplexity = finite(ev.EvalLoss), finite(ev.EvalPerplexity)
	}
	if qa != nil {
		after, err := qaEvalNoted(ctx, o.Progress, "after", t.m, tok, qa, o.QAMaxNewTokens)
		if err != nil {
			return nil, err
		}
		met.QA = &QAResult{Before: t.state.QABefore, After: after}
	}
	if err := tlog.close(); err != nil {
		return nil, fmt.Errorf("training log: %w", err)
	}
	if logPath != filepath.Join(stage, "training_log.jsonl") {
		b, err := os.ReadFile(logPath)
		if err == nil {
			err = writeFileAtomic(filepath.Join(stage, "training_log.jsonl"), b)
		}
		if err != nil {
			return nil, fmt.Errorf("training log: %w", err)
		}
	}
	if err := t.writeOutput(stage, base, tokDir, &met); err != nil {
		return nil, err
	}
	if o.MetricsOutput != "" {
		if err := kfpMetrics(o.MetricsOutput, &met); err != nil {
			return nil, err
		}
	}
	return &Result{Metrics: met, ResumedFrom: resumed}, nil
}

// step runs optimizer step s (0-based): the micro-batches' forward and
// backward passes, the gradients' allreduce when there are several ranks,
// clipping and the AdamW update.
func (t *trainer) step(s int, cache map[int][]int) (epoch int, loss float64, tokens int, gn, lr float64, err error) {
	o := t.o
	epoch, micro := t.plan.step(s, cache)
	if t.dp != nil {
		for i, rows := range micro {
			micro[i] = localRows(rows, t.dp.rank(), o.BatchSize)
		}
	}
	if loss, tokens, err = t.accumulate(s, micro); err != nil {
		return
	}
	if gn, err = clipGradNorm(t.params, o.MaxGradNorm); err != nil {
		return
	}
	if math.IsNaN(gn) || math.IsInf(gn, 0) {
		err = fmt.Errorf("step %d: gradient norm %v: %w", s+1, gn, ErrNonFinite)
		return
	}
	lr = schedule(o.LRScheduler, o.LearningRate, s, o.WarmupSteps, t.total)
	if err = t.opt.step(lr); err != nil {
		return
	}
	err = t.opt.zeroGrad()
	return
}

// follow is the training loop of a rank other than 0: the same steps,
// collectives and updates, and nothing written.
func (t *trainer) follow(ctx context.Context, resumed int) (*Result, error) {
	cache := map[int][]int{}
	for s := resumed; s < t.total; s++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("training stopped at step %d: %w", s, err)
		}
		_, loss, tokens, _, _, err := t.step(s, cache)
		if err != nil {
			return nil, fmt.Errorf("rank %d: %w", t.dp.rank(), err)
		}
		t.state.Step = s + 1
		t.state.LossSum += loss
		t.state.LossCount++
		t.state.Tokens += int64(tokens)
	}
	met := Metrics{Steps: t.state.Step, Tokens: t.state.Tokens}
	if t.state.LossCount > 0 {
		met.TrainLoss = t.state.LossSum / float64(t.state.LossCount)
	}
	return &Result{Metrics: met, ResumedFrom: resumed}, nil
}

// cpuSeconds is the process's user + system CPU time (all threads).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// checkVocab makes sure every token id of the shards has an embedding.
func (t *trainer) checkVocab() error {
	v := int32(t.m.Config.VocabSize)
	for _, sh := range []*shard{t.train, t.eval} {
		if sh == nil {
			continue
		}
		for _, id := range sh.ids {
			if id < 0 || id >= v {
				return fmt.Errorf("token id %d in the shards is outside the model's vocabulary of %d: was the dataset tokenized with this model's tokenizer?", id, v)
			}
		}
	}
	return nil
}

// accumulate runs the micro-batches of optimizer step s, leaving the
// gradients of their loss in the parameters. The loss is the token mean
// over all the step's micro-batches: each micro-batch contributes its
// cross-entropy sum divided by the step's label count (the Hugging Face
// Trainer's num_items_in_batch semantics since transformers 4.46).
func (t *trainer) accumulate(s int, micro [][]int) (loss float64, tokens int, err error) {
	batches := make([]*batch, len(micro))
	count := 0
	for i, rows := range micro {
		if len(rows) == 0 {
			batches[i] = &batch{} // this rank's share of an epoch's short last batch
			continue
		}
		batches[i] = t.train.makeBatch(rows)
		count += len(batches[i].at)
		tokens += batches[i].tokens
	}
	if t.dp != nil {
		// The step's token mean is over every rank's labels.
		if count, tokens, err = t.dp.sumCounts(count, tokens); err != nil {
			return 0, 0, fmt.Errorf("step %d: rank %d: %w (another rank failed or was killed: see its log)", s+1, t.dp.rank(), err)
		}
	}
	if count == 0 {
		return 0, tokens, nil // nothing carries loss: no gradient, no update
	}
	t.m.SetTraining(true)
	defer t.m.SetTraining(false)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i, b := range batches {
		if len(b.at) == 0 {
			continue
		}
		torch.ManualSeed(t.o.Seed*1_000_003 + int64(s*t.o.GradAccum+i)) // dropout masks, reproducible after a resume
		sum, err := t.lossSum(b, true, float64(count))
		if err != nil {
			return 0, 0, fmt.Errorf("step %d: %w", s+1, err)
		}
		loss += sum / float64(count)
	}
	if t.dp != nil {
		if loss, err = t.dp.reduceGrads(t.params, loss); err != nil {
			return 0, 0, fmt.Errorf("step %d: rank %d: %w (another rank failed or was killed: see its log)", s+1, t.dp.rank(), err)
		}
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, 0, fmt.Errorf("step %d: loss %v: %w (lower --learning-rate, or check the data)", s+1, loss, ErrNonFinite)
	}
	return loss, tokens, nil
}

// lossSum returns the cross-entropy sum over b's labelled positions; with
// backward it also back-propagates sum/denom.
func (t *trainer) lossSum(b *batch, backward bool, denom float64) (float64, error) {
	logits, err := t.m.ForwardAt(b.ids, b.mask, b.b, b.t, b.at)
	if err != nil {
		return 0, err
	}
	defer logits.MustDrop()
	var o torch.Scope
	defer o.Free()
	dev := t.m.Device().Device
	lg := torch.Of(logits)
	if t.m.Device().DType != gotch.Float {
		lg = o.To(lg, dev, gotch.Float) // the loss in float32, as transformers upcasts logits
	}
	sum := o.CrossEntropySum(lg, o.Int64s(dev, b.targets, int64(len(b.targets))))
	v := o.Item(sum)
	if backward {
		o.Backward(o.DivScalar(sum, denom))
	}
	if !o.OK() {
		return 0, o.Err()
	}
	return v, nil
}

// evaluate computes the token-mean loss over the whole eval shard.
func (t *trainer) evaluate(step int) (*evalLine, error) {
	var sum float64
	var count int
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	torch.NoGrad(func() {
		for lo := 0; lo < t.eval.n; lo += t.o.BatchSize {
			rows := make([]int, 0, t.o.BatchSize)
			for r := lo; r < min(lo+t.o.BatchSize, t.eval.n); r++ {
				rows = append(rows, r)
			}
			b := t.eval.makeBatch(rows)
			if len(b.at) == 0 {
				continue
			}
			var v float64
			if v, err = t.lossSum(b, false, 1); err != nil {
				return
			}
			sum += v
			count += len(b.at)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("eval at step %d: %w", step, err)
	}
	if count == 0 {
		return &evalLine{Step: step}, nil
	}
	l := sum / float64(count)
	return &evalLine{Step: step, EvalLoss: l, EvalPerplexity: math.Exp(l)}, nil
}

func stagingDir(out string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(out)), "."+filepath.Base(filepath.Clean(out))+".partial")
}

// writeOutput completes the staging directory and renames it to the
// output directory, so that the output is never half written.
func (t *trainer) writeOutput(stage, base, tokDir string, met *Metrics) error {
	o := t.o
	switch {
	case o.LoRAR > 0 && o.MergeLoRA:
		if err := mergeLoRA(t.adapters); err != nil {
			return err
		}
		t.adapters = nil
		if err := t.m.Save(stage); err != nil {
			return err
		}
	case o.LoRAR > 0:
		// The adapter alone, as PEFT's save_pretrained writes it: the base
		// weights are unchanged, so a copy of them here would only pass
		// the base off as the fine-tuned model. adapter_config.json's
		// base_model_name_or_path says where the base is (docs/design.md §3).
		conv := false
		for _, a := range t.adapters {
			conv = conv || a.lin.Conv1D
		}
		cfg := adapterConfig(adapterBase(t.base), o.LoRAR, o.LoRAAlpha, o.LoRADropout, o.LoRATargetModules, conv)
		if t.base.Revision != "" {
			cfg["revision"] = t.base.Revision // PEFT loads the base at this revision
		}
		if err := saveAdapter(stage, t.adapters, cfg); err != nil {
			return err
		}
	default:
		if err := t.m.Save(stage); err != nil {
			return err
		}
	}
	if err := copyTokenizer(tokDir, stage); err != nil {
		return err
	}
	args, err := json.MarshalIndent(trainingArgs(o, t.base, t.total), "", "  ")
	if err != nil {
		return fmt.Errorf("training args: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(stage, "training_args.json"), append(args, '\n')); err != nil {
		return err
	}
	mb, err := json.MarshalIndent(met, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(stage, "metrics.json"), append(mb, '\n')); err != nil {
		return err
	}
	out := filepath.Clean(o.OutputModelDir)
	if err := clearOutput(out); err != nil {
		return err
	}
	if err := os.Rename(stage, out); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	syncDir(filepath.Dir(out))
	return nil
}

// adapterBase is base_model_name_or_path for an adapter trained on the
// --base-model ref: a Hub repo id as given (its revision goes to
// adapter_config.json's revision), a local directory as an absolute path (a relative one would
// depend on where the adapter is loaded from).
func adapterBase(ref hub.Ref) string {
	if !ref.IsLocal() {
		return ref.Name() // a Hub repo id, resolved through the snapshot cache
	}
	if abs, err := filepath.Abs(ref.Dir); err == nil {
		return abs
	}
	return ref.Dir
}

// clearOutput makes way for the new output directory: it removes out only
// when it is empty or a model directory a previous run wrote (it has
// training_args.json), never a directory of other files.
func clearOutput(out string) error { return prepareOutput(out, true) }

// prepareOutput checks (and with remove, removes) an existing output dir.
func prepareOutput(out string, remove bool) error {
	ents, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	if len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(out, "training_args.json")); err != nil {
			return fmt.Errorf("output dir %s exists and is not a model directory from finetune: %w", out, ErrOptions)
		}
	}
	if !remove {
		return nil
	}
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	return nil
}

// copyTokenizer copies the shards' tokenizer files into the model dir.
func copyTokenizer(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("copy tokenizer: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(dst, e.Name()), b); err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
	}
	return nil
}

// trainingArgs is training_args.json: the options in the Hugging Face
// TrainingArguments names where one exists.
// base_model is the directory or repository id (what a model card's
// base_model holds), base_model_revision the pinned revision if any.
func trainingArgs(o *Options, base hub.Ref, total int) map[string]any {
	a := map[string]any{
		"base_model":                  base.Name(),
		"num_train_epochs":            o.Epochs,
		"max_steps":                   total,
		"learning_rate":               o.LearningRate,
		"per_device_train_batch_size": o.BatchSize,
		"gradient_accumulation_steps": o.GradAccum,
		"warmup_steps":                o.WarmupSteps,
		"weight_decay":                o.WeightDecay,
		"max_grad_norm":               o.MaxGradNorm,
		"seed":                        o.Seed,
		"lr_scheduler_type":           o.LRScheduler,
		"optim":                       "adamw_torch",
		"adam_beta1":                  0.9,
		"adam_beta2":                  0.999,
		"adam_epsilon":                1e-8,
		"eval_steps":                  o.EvalSteps,
		"save_steps":                  o.SaveSteps,
		"device":                      o.Device,
		"dtype":                       o.DType,
	}
	if o.Dist.WorldSize > 1 {
		a["world_size"] = o.Dist.WorldSize
	}
	if o.LoRAR > 0 {
		a["lora_r"] = o.LoRAR
		a["lora_alpha"] = o.LoRAAlpha
		a["lora_dropout"] = o.LoRADropout
		a["lora_target_modules"] = o.LoRATargetModules
		a["merge_lora"] = o.MergeLoRA
	}
	if base.Revision != "" {
		a["base_model_revision"] = base.Revision
	}
	return a
}
