package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names finetune writes into the model directory.
const (
	LogFile     = "training_log.jsonl"
	MetricsFile = "metrics.json"
)

// Step is one training line of training_log.jsonl. A field the line lacks is
// NaN (Step excepted).
type Step struct {
	Step            int
	Epoch           float64
	Loss            float64
	LearningRate    float64
	GradNorm        float64
	TokensPerSecond float64
}

// Eval is one evaluation line of training_log.jsonl; a missing perplexity is
// NaN.
type Eval struct {
	Step       int
	Loss       float64
	Perplexity float64
}

// Log is a training log: training lines and evaluation lines, each sorted by
// step with one line per step (the last one wins, as after a resumed run).
type Log struct {
	Steps []Step
	Evals []Eval
}

// Losses returns the training losses in step order, NaNs left out.
func (l *Log) Losses() []float64 {
	var out []float64
	for _, s := range l.Steps {
		if finite(s.Loss) {
			out = append(out, s.Loss)
		}
	}
	return out
}

// QAScore is exact match and token F1 (each in [0, 1]) on N questions.
type QAScore struct {
	ExactMatch float64 `json:"exact_match"`
	F1         float64 `json:"f1"`
	N          int     `json:"n"`
}

// Metrics is metrics.json. Pointer fields are nil when the file lacks them.
type Metrics struct {
	TrainLoss      *float64 `json:"train_loss"`
	EvalLoss       *float64 `json:"eval_loss"`
	EvalPerplexity *float64 `json:"eval_perplexity"`
	QA             *struct {
		Before *QAScore `json:"before"`
		After  *QAScore `json:"after"`
	} `json:"qa"`
	Steps          *int     `json:"steps"`
	RuntimeSeconds *float64 `json:"train_runtime_seconds"`
	TokensPerSec   *float64 `json:"tokens_per_second"`
	TrainTokens    *int64   `json:"train_tokens"`
}

// Run is what a report is drawn from. Metrics is nil without metrics.json.
type Run struct {
	Log     Log
	Metrics *Metrics
}

// Load reads a run from paths: a model directory (its training_log.jsonl and
// metrics.json, either may be missing) or the files themselves (a name
// ending in .jsonl is a log, .json metrics). It fails with an error wrapping
// fs.ErrNotExist when none of the paths holds either file.
func Load(paths ...string) (*Run, error) {
	r := &Run{}
	found := false
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("load training report: %w", err)
		}
		var logPath, metricsPath string
		switch {
		case fi.IsDir():
			logPath, metricsPath = filepath.Join(p, LogFile), filepath.Join(p, MetricsFile)
		case strings.HasSuffix(p, ".jsonl"):
			logPath = p
		case strings.HasSuffix(p, ".json"):
			metricsPath = p
		default:
			return nil, fmt.Errorf("load training report: %s: want a directory, a .jsonl log or a .json metrics file", p)
		}
		if logPath != "" {
			l, err := readFile(logPath, ReadLog)
			if err == nil {
				r.Log.Steps = append(r.Log.Steps, l.Steps...)
				r.Log.Evals = append(r.Log.Evals, l.Evals...)
				r.Log.normalize()
				found = true
			} else if !errors.Is(err, fs.ErrNotExist) || !fi.IsDir() {
				return nil, err
			}
		}
		if metricsPath != "" {
			m, err := readFile(metricsPath, ReadMetrics)
			if err == nil {
				r.Metrics = m
				found = true
			} else if !errors.Is(err, fs.ErrNotExist) || !fi.IsDir() {
				return nil, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("load training report from %s: no %s or %s: %w", strings.Join(paths, ", "), LogFile, MetricsFile, fs.ErrNotExist)
	}
	return r, nil
}

func readFile[T any](p string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(p)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", p, err)
	}
	return v, nil
}

// ReadLog parses training_log.jsonl. Blank lines, lines of other kinds
// (neither "loss" nor "eval_loss") and a last line cut short without its
// newline (a killed writer) are skipped; any other line that is not a JSON
// object is an error naming its line number.
func ReadLog(r io.Reader) (Log, error) {
	var l Log
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return Log{}, err
		}
		complete := err == nil
		if t := bytes.TrimSpace(line); len(t) > 0 {
			var v struct {
				Step     *int     `json:"step"`
				Epoch    *float64 `json:"epoch"`
				Loss     *float64 `json:"loss"`
				LR       *float64 `json:"learning_rate"`
				GradNorm *float64 `json:"grad_norm"`
				TPS      *float64 `json:"tokens_per_second"`
				EvalLoss *float64 `json:"eval_loss"`
				EvalPPL  *float64 `json:"eval_perplexity"`
			}
			if jerr := json.Unmarshal(t, &v); jerr != nil {
				if !complete {
					break
				}
				return Log{}, fmt.Errorf("line %d: %w", n, jerr)
			}
			switch {
			case v.Step == nil:
			case v.EvalLoss != nil:
				l.Evals = append(l.Evals, Eval{Step: *v.Step, Loss: *v.EvalLoss, Perplexity: orNaN(v.EvalPPL)})
			case v.Loss != nil:
				l.Steps = append(l.Steps, Step{Step: *v.Step, Epoch: orNaN(v.Epoch), Loss: *v.Loss,
					LearningRate: orNaN(v.LR), GradNorm: orNaN(v.GradNorm), TokensPerSecond: orNaN(v.TPS)})
			}
		}
		if !complete {
			break
		}
	}
	l.normalize()
	return l, nil
}

// normalize sorts by step and keeps the last line of each step.
func (l *Log) normalize() {
	sort.SliceStable(l.Steps, func(i, j int) bool { return l.Steps[i].Step < l.Steps[j].Step })
	sort.SliceStable(l.Evals, func(i, j int) bool { return l.Evals[i].Step < l.Evals[j].Step })
	l.Steps = lastPerStep(l.Steps, func(s Step) int { return s.Step })
	l.Evals = lastPerStep(l.Evals, func(e Eval) int { return e.Step })
}

func lastPerStep[T any](xs []T, step func(T) int) []T {
	out := xs[:0]
	for i, x := range xs {
		if i+1 < len(xs) && step(xs[i+1]) == step(x) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// ReadMetrics parses metrics.json; unknown fields are ignored.
func ReadMetrics(r io.Reader) (*Metrics, error) {
	var m Metrics
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return nan
	}
	return *p
}
