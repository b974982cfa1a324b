package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/model"
	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/server"
	"github.com/kfllm/kfllm/internal/tokenizer"
	"github.com/kfllm/kfllm/internal/torch"
)

// Engine runs a *model.Model for the scheduler. Its sequences share one
// model.BatchCache, so that a decode step attends over their caches in
// place; like the scheduler's calls, it is used from one goroutine.
type Engine struct {
	M *model.Model
	// EOS is passed to every sequence (the scheduler stops on the same ids).
	EOS []int
	// Adapters are the LoRA adapters loaded on M by served name; the one
	// under "" (a model directory that is an adapter) serves requests for
	// the base name.
	Adapters map[string]*model.Adapter

	batch *model.BatchCache
}

var _ scheduler.Engine = (*Engine)(nil)

// *model.Sequence has Last, Done and Release: it is a scheduler.Sequence.
var _ scheduler.Sequence = (*model.Sequence)(nil)

// NewSequence prepares a model sequence with the request's sampling.
func (e *Engine) NewSequence(prompt []int, s scheduler.Sampling) (scheduler.Sequence, error) {
	eos := e.EOS
	if eos == nil {
		eos = []int{}
	}
	if e.batch == nil {
		e.batch = e.M.NewBatchCache()
	}
	ad, ok := e.Adapters[s.Adapter]
	if !ok && s.Adapter != "" {
		return nil, fmt.Errorf("%w %q", errUnknownAdapter, s.Adapter)
	}
	return e.batch.NewSequence(prompt, model.GenerateOptions{
		MaxNewTokens: s.MaxNewTokens, Temperature: s.Temperature, TopP: s.TopP, TopK: s.TopK,
		RepetitionPenalty: s.RepetitionPenalty, Seed: s.Seed, EOS: eos, Adapter: ad,
	})
}

func modelSeqs(seqs []scheduler.Sequence) ([]*model.Sequence, error) {
	out := make([]*model.Sequence, len(seqs))
	for i, s := range seqs {
		ms, ok := s.(*model.Sequence)
		if !ok {
			return nil, fmt.Errorf("sequence %d is a %T, not a model sequence", i, s)
		}
		out[i] = ms
	}
	return out, nil
}

// Prefill runs the new sequences' prompts as one batch.
func (e *Engine) Prefill(ctx context.Context, seqs []scheduler.Sequence) error {
	ms, err := modelSeqs(seqs)
	if err != nil {
		return err
	}
	return e.M.Prefill(ctx, ms)
}

// DecodeStep runs one batched decoding step.
func (e *Engine) DecodeStep(ctx context.Context, seqs []scheduler.Sequence) error {
	ms, err := modelSeqs(seqs)
	if err != nil {
		return err
	}
	return e.M.DecodeStep(ctx, ms)
}

// Options say where the model comes from and how to run it.
type Options struct {
	// ModelDir is a Hugging Face model directory (KServe mounts /mnt/models).
	ModelDir string
	// ModelID is a model reference (hub.ParseRef): OWNER/NAME[@revision] on
	// the Hub, used when ModelDir is empty. Either may be a PEFT LoRA
	// adapter (adapter_config.json): its base is the weights beside it, else
	// its base_model_name_or_path.
	ModelID string
	// Adapters are more LoRA adapters on the same base, each served under
	// its own name. One whose base_model_name_or_path names another base
	// than the one served is refused (docs/design.md §5).
	Adapters []AdapterRef
	// AllowBaseMismatch loads such adapters anyway, with a warning naming
	// both bases.
	AllowBaseMismatch bool
	// Hub fetches ModelID (hub.FromEnv in the binary).
	Hub *hub.Client
	// CacheDir is the Hub cache ("" = huggingface_hub's default).
	CacheDir string
	// Device and DType as in model.LoadOptions (auto|cpu|cuda, auto|float32|bfloat16).
	Device, DType string
	// Threads sets libtorch's intra-op threads (0 leaves the default).
	Threads int
	// Dequantize loads a GGUF model's quantized weights as float32
	// instead of multiplying by their blocks (docs/design.md §5).
	Dequantize bool
	// Scheduler options; ContextLength, EOS and AddSpecial are filled in from
	// the model and tokenizer.
	Scheduler scheduler.Options
	// Logger gets progress lines.
	Logger *slog.Logger
}

// Resolve returns the model directory, its name (the repository id, else
// the directory) and its revision (the Hub commit; "" for a local directory).
func Resolve(ctx context.Context, o Options) (dir, name, revision string, err error) {
	switch {
	case o.ModelDir != "":
		if !model.IsAdapterDir(o.ModelDir) {
			// A Hugging Face directory, or a GGUF file or a directory
			// holding one (ggufFile says which, or what is missing).
			if _, _, err := ggufFile(o.ModelDir); err != nil {
				return "", "", "", err
			}
		}
		name := o.ModelDir
		if o.ModelID != "" { // both given: the directory holds ModelID (KServe's storage initializer)
			name, _, _ = strings.Cut(o.ModelID, "@")
		}
		return o.ModelDir, name, "", nil
	case o.ModelID != "":
		ref, err := hub.ParseRef(o.ModelID)
		if err != nil {
			return "", "", "", fmt.Errorf("model id: %w", err)
		}
		dir, commit, err := snapshot(ctx, o, ref)
		if err != nil {
			return "", "", "", err
		}
		return dir, ref.Name(), commit, nil
	}
	return "", "", "", errors.New("a model directory or a model id is required")
}

// snapshot downloads the Hub reference ref (hub.ModelFiles: a model's or an
// adapter's files) and returns its directory and commit.
func snapshot(ctx context.Context, o Options, ref hub.Ref) (dir, commit string, err error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	last := map[string]int64{}
	dir, commit, err = ref.Resolve(ctx, o.Hub, hub.SnapshotOptions{
		CacheDir: o.CacheDir,
		Progress: func(file string, done, total int64) {
			if done == total || done-last[file] >= 64<<20 {
				last[file] = done
				logger.Info("downloading", "file", file, "bytes", done, "total", total)
			}
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("download %s: %w", ref, err)
	}
	return dir, commit, nil
}

// Load resolves, loads and starts the model under a scheduler.
func Load(ctx context.Context, o Options) (*server.Backend, error) {
	dir, id, rev, err := Resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	torch.SetThreads(o.Threads)
	var (
		tok  *tokenizer.Tokenizer
		m    *model.Model
		base = dir // the served base: the model, or the adapter's base
	)
	if file, ok, _ := ggufFile(dir); ok {
		if m, tok, err = loadGGUF(ctx, file, o); err != nil {
			return nil, err
		}
		if o.Logger != nil {
			o.Logger.Info("loaded gguf model", "file", file, "quantized", m.Quantized())
		}
	} else {
		if model.IsAdapterDir(dir) {
			if base, err = baseOf(ctx, o, dir); err != nil {
				return nil, fmt.Errorf("load model: %w", err)
			}
		}
		tok, err = tokenizer.Load(dir)
		if err != nil && base != dir {
			tok, err = tokenizer.Load(base) // an adapter without a tokenizer of its own
		}
		if err != nil {
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
		if m, err = model.Load(base, model.LoadOptions{Device: o.Device, DType: o.DType}); err != nil {
			return nil, fmt.Errorf("load model: %w", err)
		}
	}
	adapters, err := loadAdapters(ctx, o, m, dir, servedBase(dir, base, id))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load model: %w", err)
	}
	if tok.VocabSize() > m.Config.VocabSize {
		m.Close()
		return nil, fmt.Errorf("load model: the tokenizer's %d tokens do not fit the model's vocabulary of %d", tok.VocabSize(), m.Config.VocabSize)
	}
	eos := EOSIDs(m, tok)
	if len(eos) == 0 {
		m.Close()
		return nil, errors.New("load model: no EOS token in generation_config.json, config.json or the tokenizer")
	}
	so := o.Scheduler
	so.ContextLength = m.Config.ContextLength()
	so.EOS = eos
	so.AddSpecial = true // as prompt.Build encoded the training data
	so.Logger = o.Logger
	sch := scheduler.New(&Engine{M: m, EOS: eos, Adapters: adapters}, tok, so)
	b := server.NewLocalBackend(sch, server.ModelInfo{ID: id, Revision: rev, Provider: "kfllm", LLMName: "KFLLM"})
	b.Close = func(ctx context.Context) error {
		err := sch.Close(ctx)
		if err == nil { // the loop has stopped: nothing uses the model any more
			m.Close()
		}
		return err
	}
	return b, nil
}

// EOSIDs are the ids that end generation: generation_config.json's
// eos_token_id (else config.json's), and the tokenizer's EOS.
func EOSIDs(m *model.Model, tok *tokenizer.Tokenizer) []int {
	var ids []int
	if g := m.GenerationConfig; g != nil {
		switch v := g["eos_token_id"].(type) {
		case float64:
			ids = append(ids, int(v))
		case int:
			ids = append(ids, v)
		case []int:
			ids = append(ids, v...)
		case []any:
			for _, x := range v {
				switch f := x.(type) {
				case float64:
					ids = append(ids, int(f))
				case int:
					ids = append(ids, f)
				}
			}
		}
	}
	if len(ids) == 0 {
		ids = append(ids, m.Config.EOS...)
	}
	if e, ok := tok.EOS(); ok && !slices.Contains(ids, e) {
		ids = append(ids, e)
	}
	return ids
}
