package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// logLine is one training line of training_log.jsonl.
type logLine struct {
	Step         int     `json:"step"`
	Epoch        float64 `json:"epoch"`
	Loss         float64 `json:"loss"`
	LearningRate float64 `json:"learning_rate"`
	GradNorm     float64 `json:"grad_norm"`
	TokensPerSec float64 `json:"tokens_per_second"`
}

// evalLine is one evaluation line of training_log.jsonl.
type evalLine struct {
	Step           int     `json:"step"`
	EvalLoss       float64 `json:"eval_loss"`
	EvalPerplexity float64 `json:"eval_perplexity"`
}

// QAScore is exact match and token F1 (SQuAD v1.1) on the held-out QA set.
type QAScore struct {
	ExactMatch float64 `json:"exact_match"`
	F1         float64 `json:"f1"`
	N          int     `json:"n"`
}

// QAResult is the held-out QA score before and after training.
type QAResult struct {
	Before *QAScore `json:"before,omitempty"`
	After  *QAScore `json:"after,omitempty"`
}

// Metrics is metrics.json.
type Metrics struct {
	TrainLoss      float64   `json:"train_loss"`
	EvalLoss       float64   `json:"eval_loss,omitempty"`
	EvalPerplexity float64   `json:"eval_perplexity,omitempty"`
	QA             *QAResult `json:"qa,omitempty"`
	Steps          int       `json:"steps"`
	Runtime        float64   `json:"train_runtime_seconds"`
	CPU            float64   `json:"train_cpu_seconds"` // user + system, all threads
	TokensPerSec   float64   `json:"tokens_per_second"`
	Tokens         int64     `json:"train_tokens"`
	// Data-parallel runs: the ranks, and rank 0's seconds in collectives
	// (the step's label count and the gradients' allreduce, waiting for
	// the slowest rank included).
	WorldSize int     `json:"world_size,omitempty"`
	AllReduce float64 `json:"allreduce_seconds,omitempty"`
}

// trainLog appends to training_log.jsonl, one JSON object a line, synced
// per line so that a killed run keeps what it logged.
type trainLog struct {
	f *os.File
	w *bufio.Writer
}

// openLog opens path for appending after dropping lines past step (the
// steps a resumed run will redo).
func openLog(path string, keepThrough int) (*trainLog, error) {
	var kept [][]byte
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range splitLines(b) {
			var v struct {
				Step *int `json:"step"`
			}
			if json.Unmarshal(line, &v) == nil && v.Step != nil && *v.Step <= keepThrough {
				kept = append(kept, line)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open training log: %w", err)
	}
	var buf []byte
	for _, l := range kept {
		buf = append(append(buf, l...), '\n')
	}
	if err := writeFileAtomic(path, buf); err != nil {
		return nil, fmt.Errorf("open training log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open training log: %w", err)
	}
	return &trainLog{f: f, w: bufio.NewWriter(f)}, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

func (l *trainLog) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("training log: %w", err)
	}
	l.w.Write(append(b, '\n'))
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("training log: %w", err)
	}
	return nil
}

func (l *trainLog) close() error {
	if l == nil {
		return nil
	}
	l.w.Flush()
	return l.f.Close()
}

// finite makes a JSON-safe number (JSON has no NaN or Inf).
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// kfpMetrics writes the metrics artifact in the format of KFP's
// mlpipeline-metrics file ({"metrics":[{"name","numberValue","format"}]}),
// which the KFP UI shows for v1 outputs and which any reader parses. KFP v2
// keeps a system.Metrics artifact's values in its metadata, set by the
// Python executor; a plain container cannot set it, so this file is the
// artifact's content (see docs/benchmarks.md "Training").
func kfpMetrics(path string, m *Metrics) error {
	type metric struct {
		Name        string  `json:"name"`
		NumberValue float64 `json:"numberValue"`
		Format      string  `json:"format"`
	}
	var ms []metric
	add := func(name string, v float64) {
		ms = append(ms, metric{Name: name, NumberValue: finite(v), Format: "RAW"})
	}
	add("train_loss", m.TrainLoss)
	if m.EvalLoss != 0 {
		add("eval_loss", m.EvalLoss)
		add("eval_perplexity", m.EvalPerplexity)
	}
	if m.QA != nil {
		if b := m.QA.Before; b != nil {
			add("qa_exact_match_before", b.ExactMatch)
			add("qa_f1_before", b.F1)
		}
		if a := m.QA.After; a != nil {
			add("qa_exact_match_after", a.ExactMatch)
			add("qa_f1_after", a.F1)
		}
	}
	add("steps", float64(m.Steps))
	add("tokens_per_second", m.TokensPerSec)
	b, err := json.MarshalIndent(map[string]any{"metrics": ms}, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics output: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("metrics output: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// progress shows training progress: a bar on a terminal, a plain line
// every `every` steps otherwise.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	every int
	total int
	start time.Time
	first int
}

func newProgress(w io.Writer, first, total, every int) *progress {
	p := &progress{w: w, every: every, total: total, start: time.Now(), first: first}
	if w == nil {
		return p
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		p.bar.Set(first)
	}
	return p
}

func (p *progress) step(l logLine) {
	if p.w == nil {
		return
	}
	done := l.Step - p.first
	var eta time.Duration
	if done > 0 {
		eta = time.Duration(float64(time.Since(p.start)) / float64(done) * float64(p.total-l.Step)).Round(time.Second)
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.0f tok/s", l.Loss, l.LearningRate, l.TokensPerSec))
		p.bar.Set(l.Step)
		return
	}
	if l.Step%p.every == 0 || l.Step == p.total || l.Step == p.first+1 {
		fmt.Fprintf(p.w, "step %d/%d  loss %.4f  lr %.3e  grad_norm %.3f  %.0f tokens/s  eta %s\n",
			l.Step, p.total, l.Loss, l.LearningRate, l.GradNorm, l.TokensPerSec, eta)
	}
}

func (p *progress) note(format string, args ...any) {
	if p.w == nil {
		return
	}
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
