package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	return e.batch.NewSequence(prompt, model.GenerateOptions{
		MaxNewTokens: s.MaxNewTokens, Temperature: s.Temperature, TopP: s.TopP, TopK: s.TopK,
		RepetitionPenalty: s.RepetitionPenalty, Seed: s.Seed, EOS: eos,
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
	// ModelID is OWNER/NAME[@revision] on the Hub, used when ModelDir is empty.
	ModelID string
	// Hub reaches the Hub for ModelID (endpoint and HF_TOKEN).
	Hub hub.Options
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

// hubPatterns are the files a model directory needs.
var hubPatterns = []string{"*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "merges.txt", "vocab.*"}

// Resolve returns the model directory and its revision (the Hub commit; ""
// for a local directory).
func Resolve(ctx context.Context, o Options) (dir, revision string, err error) {
	switch {
	case o.ModelDir != "":
		if _, ok, err := ggufFile(o.ModelDir); ok || err != nil {
			return o.ModelDir, "", err
		}
		if _, err := os.Stat(filepath.Join(o.ModelDir, "config.json")); err != nil {
			return "", "", fmt.Errorf("model dir %s: %w", o.ModelDir, err)
		}
		return o.ModelDir, "", nil
	case o.ModelID != "":
		repo, rev, err := hub.ParseRepoRef(o.ModelID)
		if err != nil {
			return "", "", fmt.Errorf("model id %q: %w", o.ModelID, err)
		}
		logger := o.Logger
		if logger == nil {
			logger = slog.Default()
		}
		last := map[string]int64{}
		dir, err := hub.New(o.Hub).Snapshot(ctx, repo, rev, hub.SnapshotOptions{
			AllowPatterns: hubPatterns, CacheDir: o.CacheDir,
			Progress: func(file string, done, total int64) {
				if done == total || done-last[file] >= 64<<20 {
					last[file] = done
					logger.Info("downloading", "file", file, "bytes", done, "total", total)
				}
			},
		})
		if err != nil {
			return "", "", fmt.Errorf("download %s: %w", o.ModelID, err)
		}
		return dir, filepath.Base(dir), nil // snapshots/<commit sha>
	}
	return "", "", errors.New("a model directory or a model id is required")
}

// Load resolves, loads and starts the model under a scheduler.
func Load(ctx context.Context, o Options) (*server.Backend, error) {
	dir, rev, err := Resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	torch.SetThreads(o.Threads)
	var (
		tok *tokenizer.Tokenizer
		m   *model.Model
	)
	if file, ok, _ := ggufFile(dir); ok {
		if m, tok, err = loadGGUF(ctx, file, o); err != nil {
			return nil, err
		}
		if o.Logger != nil {
			o.Logger.Info("loaded gguf model", "file", file, "quantized", m.Quantized())
		}
	} else {
		if tok, err = tokenizer.Load(dir); err != nil {
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
		if m, err = model.Load(dir, model.LoadOptions{Device: o.Device, DType: o.DType}); err != nil {
			return nil, fmt.Errorf("load model: %w", err)
		}
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
	sch := scheduler.New(&Engine{M: m, EOS: eos}, tok, so)
	id := o.ModelID
	if id == "" {
		id = dir
	}
	if i := strings.IndexByte(id, '@'); i >= 0 {
		id = id[:i]
	}
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
