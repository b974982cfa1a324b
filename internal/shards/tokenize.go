package shards

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/records"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

// TokenizeOptions configures Tokenize (the tokenize step, docs/design.md §5).
type TokenizeOptions struct {
	InputDir     string  // Records artifact: data.jsonl (+ metadata.json)
	Tokenizer    string  // directory, or Hub repository OWNER/NAME[@revision] (hub.ParseRef)
	OutputDir    string  // Token shards artifact to create
	MaxLength    int     // tokens per example (default DefaultMaxLength)
	EvalFraction float64 // share of examples in eval.safetensors, in [0, 1)
	Seed         uint64  // seed of the train/eval split
	// Pack concatenates the texts of task lm (each followed by EOS) and cuts
	// the stream into rows of MaxLength tokens.
	Pack bool
	// MaxBadRows is the --max-bad-rows limit (ParseBadRowLimit; default "0":
	// records come from fetch, which already dropped unusable rows).
	MaxBadRows string
	// Task overrides the task of the records' metadata.json (needed only
	// when there is none and the fields are ambiguous).
	Task     records.Task
	Hub      *hub.Client // fetches a Tokenizer on the Hub (its tokenizer files alone)
	Progress io.Writer   // progress lines (nil: none)
	Workers  int         // 0: GOMAXPROCS
}

// DefaultMaxLength is --max-length when not given.
const DefaultMaxLength = 512

// BadRowsError reports that a run skipped more bad rows than allowed.
type BadRowsError struct {
	Skipped, Read int64
	Limit         string
	First         string // the first bad row, "line N: reason"
}

func (e *BadRowsError) Error() string {
	return fmt.Sprintf("%d bad of %d records exceed --max-bad-rows %s (first: %s)", e.Skipped, e.Read, e.Limit, e.First)
}

// Unwrap makes a BadRowsError match ErrTooManyBadRows.
func (e *BadRowsError) Unwrap() error { return records.ErrTooManyBadRows }

// ErrNoExamples is returned when no record became a training example (it
// matches ErrNoRecords too).
var ErrNoExamples = fmt.Errorf("%w: no record became a training example", records.ErrNoRecords)

// Tokenize turns a Records artifact into a Token shards artifact: each record
// through prompt.Build (task qa) or the tokenizer (task lm) on all cores, a
// deterministic train/eval split from EvalFraction and Seed, the two
// safetensors files, the tokenizer's files and metadata.json. Records are
// streamed; memory holds the token ids of the output. The output is staged
// and moved into place at the end; on failure nothing is left at OutputDir.
func Tokenize(ctx context.Context, o TokenizeOptions) (*ShardsMetadata, error) {
	if o.MaxLength == 0 {
		o.MaxLength = DefaultMaxLength
	}
	if o.MaxLength < 2 {
		return nil, fmt.Errorf("tokenize: --max-length %d: want at least 2", o.MaxLength)
	}
	if o.EvalFraction < 0 || o.EvalFraction >= 1 || math.IsNaN(o.EvalFraction) {
		return nil, fmt.Errorf("tokenize: --eval-fraction %v: want 0 <= f < 1", o.EvalFraction)
	}
	if o.MaxBadRows == "" {
		o.MaxBadRows = "0"
	}
	limit, err := records.ParseBadRowLimit(o.MaxBadRows)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if o.InputDir == "" || o.OutputDir == "" || o.Tokenizer == "" {
		return nil, fmt.Errorf("tokenize: --input-dataset, --tokenizer and --output-dataset are required")
	}
	in, err := openRecords(o.InputDir, o.Task)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	defer in.f.Close()
	if o.Pack && in.task != records.TaskLM {
		return nil, fmt.Errorf("tokenize: --pack applies to task lm, the records are task %s", in.task)
	}
	tok, err := loadTokenizer(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	eos, ok := tok.EOS()
	if !ok {
		return nil, fmt.Errorf("tokenize: tokenizer %s: %w", o.Tokenizer, prompt.ErrNoEOS)
	}
	out, err := prepareOutput(o.OutputDir)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	meta, err := tokenizeInto(ctx, o, limit, in, tok, eos, out.stage)
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return meta, nil
}

// loadTokenizer resolves o.Tokenizer (a directory, or the tokenizer files
// of a Hub repository at its revision) and loads it.
func loadTokenizer(ctx context.Context, o TokenizeOptions) (*tokenizer.Tokenizer, error) {
	ref, err := hub.ParseRef(o.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	so := hub.SnapshotOptions{AllowPatterns: hub.TokenizerFiles}
	if o.Progress != nil {
		so.Progress = hub.ProgressLines(o.Progress, "tokenize")
	}
	dir, _, err := ref.Resolve(ctx, o.Hub, so)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return tokenizer.Load(dir)
}

type recordsInput struct {
	f    *os.File
	task records.Task
	meta *records.Metadata // nil without metadata.json
	path string
}

func openRecords(dir string, task records.Task) (*recordsInput, error) {
	in := &recordsInput{path: filepath.Join(dir, records.RecordsDataFile)}
	m, err := records.ReadMetadata(dir)
	switch {
	case err == nil:
		in.meta = m
		if task == "" {
			task = m.Task
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	f, err := os.Open(in.path)
	if err != nil {
		return nil, fmt.Errorf("open records: %w", err)
	}
	in.f = f
	if task == "" {
		task, err = sniffTask(f)
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	if task != records.TaskQA && task != records.TaskLM {
		f.Close()
		if in.meta != nil && task == in.meta.Task {
			return nil, fmt.Errorf("records %s: %w: unknown task %q in %s", dir, records.ErrBadMetadata, task, records.RecordsMetadataFile)
		}
		return nil, fmt.Errorf("records %s: unknown task %q", dir, task)
	}
	in.task = task
	return in, nil
}

// sniffTask guesses the task from the first record's fields when there is no
// metadata.json: "text" alone means lm.
func sniffTask(f *os.File) (records.Task, error) {
	defer f.Seek(0, io.SeekStart)
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var m map[string]json.RawMessage
			if json.Unmarshal(line, &m) == nil {
				_, text := m["text"]
				_, q := m["question"]
				if text && !q {
					return records.TaskLM, nil
				}
				return records.TaskQA, nil
			}
		}
		if err != nil {
			return records.TaskQA, nil
		}
	}
}

// A batch for a worker holds batchRecords records, or fewer that hold
// batchBytesMax bytes of text: with a batch queued per worker, one in each
// worker and one being read, the records in memory stay under
// (2*workers+1) batches whatever their sizes.
const (
	batchRecords  = 256
	batchBytesMax = 8 << 20
)

// job is a batch of records for a worker.
type job struct {
	first int // index of recs[0]
	recs  []records.Record
}

type built struct {
	ex        ShardExample
	ok        bool // false: skipped (too long)
	truncated bool
}

func tokenizeInto(ctx context.Context, o TokenizeOptions, limit records.BadRowLimit, in *recordsInput, tok *tokenizer.Tokenizer, eos int, stage string) (*ShardsMetadata, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	counts := TokenizeCounts{SkippedByReason: map[string]int64{}, MaxBadRows: limit.String()}
	var (
		mu       sync.Mutex
		results  []built
		firstErr error
		firstBad string
		done     int64
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	jobs := make(chan job, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				local := make([]built, len(j.recs))
				for k, r := range j.recs {
					b, err := buildExample(tok, in.task, r, o.MaxLength, o.Pack, eos)
					if err != nil {
						fail(fmt.Errorf("record %d: %w", j.first+k+1, err))
						return
					}
					local[k] = b
				}
				mu.Lock()
				for need := j.first + len(local); len(results) < need; {
					results = append(results, built{})
				}
				copy(results[j.first:], local)
				done += int64(len(local))
				mu.Unlock()
			}
		}()
	}

	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(in.f, h), 1<<20)
	var (
		batch      []records.Record
		batchBytes int
		idx        int
		lineNo     int
		readErr    error
		last       = time.Now()
		start      = time.Now()
	)
	send := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case jobs <- job{first: idx - len(batch), recs: batch}:
			batch, batchBytes = nil, 0
			return true
		case <-ctx.Done():
			return false
		}
	}
read:
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if len(bytes.TrimSpace(line)) > 0 {
				counts.RecordsRead++
				rec, reason := parseRecord(line, in.task)
				if reason != "" {
					counts.SkippedBad++
					counts.SkippedByReason[reason]++
					if firstBad == "" {
						firstBad = fmt.Sprintf("%s line %d: %s", records.RecordsDataFile, lineNo, reason)
					}
					if limit.ExceededEarly(counts.SkippedBad) {
						readErr = &BadRowsError{Skipped: counts.SkippedBad, Read: counts.RecordsRead, Limit: limit.String(), First: firstBad}
						break read
					}
				} else {
					batch = append(batch, rec)
					batchBytes += len(rec.Context) + len(rec.Question) + len(rec.Answer) + len(rec.Text)
					idx++
					if (len(batch) == batchRecords || batchBytes >= batchBytesMax) && !send() {
						break read
					}
				}
			}
		}
		if o.Progress != nil && time.Since(last) > 2*time.Second {
			last = time.Now()
			mu.Lock()
			d := done
			mu.Unlock()
			fmt.Fprintf(o.Progress, "tokenize: %d records read, %d tokenized (%.0f/s)\n", counts.RecordsRead, d, float64(d)/time.Since(start).Seconds())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read %s: %w", in.path, err)
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if readErr == nil {
		send()
	}
	close(jobs)
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if counts.RecordsRead == 0 {
		return nil, fmt.Errorf("%w: %s has no records", records.ErrNoRecords, in.path)
	}
	if limit.Exceeded(counts.SkippedBad, counts.RecordsRead) {
		return nil, &BadRowsError{Skipped: counts.SkippedBad, Read: counts.RecordsRead, Limit: limit.String(), First: firstBad}
	}

	var examples []ShardExample
	for _, b := range results {
		switch {
		case !b.ok:
			counts.SkippedTooLong++
		default:
			examples = append(examples, b.ex)
			if b.truncated {
				counts.Truncated++
			}
		}
	}
	results = nil
	counts.Examples = int64(len(examples))
	if len(examples) == 0 {
		return nil, fmt.Errorf("%w: %d records read, %d too long for --max-length %d, %d bad",
			ErrNoExamples, counts.RecordsRead, counts.SkippedTooLong, o.MaxLength, counts.SkippedBad)
	}
	train, eval := splitExamples(examples, o.EvalFraction, o.Seed)
	trainN, evalN := len(train), len(eval)
	length := 0 // pad each shard to its longest example
	if o.Pack {
		train, eval = pack(train, o.MaxLength), pack(eval, o.MaxLength)
		length = o.MaxLength
	}

	padID, padSource := eos, "eos_token"
	if p, ok := tok.Pad(); ok {
		padID, padSource = p, "pad_token"
	}
	meta := &ShardsMetadata{
		Format: ShardsFormat, Task: in.task, MaxLength: o.MaxLength, Pack: o.Pack, PaddingSide: "right",
		EvalFraction: o.EvalFraction, Seed: o.Seed, Counts: counts,
		Tokenizer: ShardsTokenizer{Source: o.Tokenizer, SHA256: tok.SHA256(), VocabSize: tok.VocabSize(),
			EOSID: eos, PadID: padID, PadSource: padSource},
		Input: ShardsInput{Dir: o.InputDir, DataSHA256: hex.EncodeToString(h.Sum(nil))},
	}
	if b, ok := tok.BOS(); ok {
		meta.Tokenizer.BOSID = &b
	}
	if in.task == records.TaskQA {
		meta.Template, meta.TemplateText = prompt.TemplateName, prompt.Template
	}
	if in.meta != nil {
		meta.Input.Source, meta.Input.Commit = in.meta.Source, in.meta.Commit
	}
	stMeta := map[string]string{"format": "pt", "kfllm": ShardsFormat}
	var err error
	if meta.Train, err = WriteShard(filepath.Join(stage, TrainShardFile), train, length, int32(padID), stMeta); err != nil {
		return nil, err
	}
	if meta.Eval, err = WriteShard(filepath.Join(stage, EvalShardFile), eval, length, int32(padID), stMeta); err != nil {
		return nil, err
	}
	meta.Train.Examples, meta.Eval.Examples = trainN, evalN
	if err := tok.Save(filepath.Join(stage, ShardsTokenizerDir)); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, ShardsMetadataFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write shards metadata: %w", err)
	}
	return meta, nil
}

// parseRecord decodes one data.jsonl line; a non-empty reason marks a bad row.
func parseRecord(line []byte, task records.Task) (records.Record, string) {
	if !utf8.Valid(line) {
		return records.Record{}, "invalid UTF-8"
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return records.Record{}, "invalid JSON"
	}
	var r records.Record
	for _, f := range task.Fields() {
		raw, ok := m[f]
		if !ok {
			return records.Record{}, "missing field " + f
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return records.Record{}, "field " + f + " is not a string"
		}
		r.Set(f, s)
	}
	switch {
	case task == records.TaskLM && strings.TrimSpace(r.Text) == "":
		return records.Record{}, "empty text"
	case task == records.TaskQA && strings.TrimSpace(r.Question) == "":
		return records.Record{}, "empty question"
	case task == records.TaskQA && strings.TrimSpace(r.Answer) == "":
		return records.Record{}, "empty answer"
	}
	return r, ""
}

func buildExample(tok *tokenizer.Tokenizer, task records.Task, r records.Record, maxLength int, packed bool, eos int) (built, error) {
	if task == records.TaskLM {
		ids, err := tok.Encode(r.Text, true)
		if err != nil {
			return built{}, err
		}
		ids = append(ids, eos)
		b := built{ok: true}
		if len(ids) > maxLength && !packed {
			ids, b.truncated = ids[:maxLength], true
		}
		b.ex = ShardExample{IDs: toInt32(ids)}
		return b, nil
	}
	ex, err := prompt.Build(tok, prompt.Record{Context: r.Context, Question: r.Question, Answer: r.Answer}, maxLength)
	if errors.Is(err, prompt.ErrTooLong) {
		return built{}, nil
	}
	if err != nil {
		return built{}, err
	}
	return built{ok: true, truncated: ex.Truncated, ex: ExampleOf(ex.InputIDs, ex.Labels)}, nil
}

func toInt32(v []int) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// splitExamples puts round(fraction x n) examples, chosen by a permutation
// seeded with seed, in eval (at least one when fraction > 0 and n > 1, and
// never all); both keep the input order.
func splitExamples(ex []ShardExample, fraction float64, seed uint64) (train, eval []ShardExample) {
	n := len(ex)
	nEval := int(math.Round(fraction * float64(n)))
	if fraction > 0 && nEval == 0 && n > 1 {
		nEval = 1
	}
	nEval = min(nEval, n-1)
	perm := rand.New(rand.NewPCG(seed, 0x6b666c6c6d)).Perm(n)
	isEval := make([]bool, n)
	for _, i := range perm[:max(nEval, 0)] {
		isEval[i] = true
	}
	for i, e := range ex {
		if isEval[i] {
			eval = append(eval, e)
		} else {
			train = append(train, e)
		}
	}
	return train, eval
}

// pack concatenates the examples' ids and cuts them into rows of length
// tokens; the last row is padded. Every token carries loss.
func pack(ex []ShardExample, length int) []ShardExample {
	var out []ShardExample
	var cur []int32
	for _, e := range ex {
		ids := e.IDs
		for len(ids) > 0 {
			k := min(length-len(cur), len(ids))
			cur = append(cur, ids[:k]...)
			ids = ids[k:]
			if len(cur) == length {
				out = append(out, ShardExample{IDs: cur})
				cur = make([]int32, 0, length)
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, ShardExample{IDs: cur})
	}
	return out
}

// output stages a Token shards artifact inside OutputDir (so that the final
// moves are renames on one file system, even when OutputDir is a mount) and
// moves the files up at the end, metadata.json last.
type output struct {
	dir, stage string
	created    bool
}

func prepareOutput(dir string) (*output, error) {
	o := &output{dir: dir}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		o.created = true
	case err != nil:
		return nil, fmt.Errorf("output: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("output %s is not a directory", dir)
	default:
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".partial-") { // left by a killed run
				os.RemoveAll(filepath.Join(dir, e.Name()))
				continue
			}
			return nil, fmt.Errorf("output %s: %w (found %s)", dir, errOutputNotEmpty, e.Name())
		}
	}
	stage, err := os.MkdirTemp(dir, ".partial-")
	if err != nil {
		o.abort()
		return nil, fmt.Errorf("stage output: %w", err)
	}
	o.stage = stage
	return o, nil
}

func (o *output) commit() error {
	ents, err := os.ReadDir(o.stage)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { // metadata.json last
		return ents[j].Name() == ShardsMetadataFile && ents[i].Name() != ShardsMetadataFile
	})
	for _, e := range ents {
		if err := os.Rename(filepath.Join(o.stage, e.Name()), filepath.Join(o.dir, e.Name())); err != nil {
			return fmt.Errorf("move %s into place: %w", e.Name(), err)
		}
	}
	return os.Remove(o.stage)
}

// abort removes everything this run put at the output path.
func (o *output) abort() {
	if o.stage != "" {
		os.RemoveAll(o.stage)
	}
	if o.created {
		os.RemoveAll(o.dir)
		return
	}
	for _, name := range []string{TrainShardFile, EvalShardFile, ShardsTokenizerDir, ShardsMetadataFile} {
		os.RemoveAll(filepath.Join(o.dir, name))
	}
}
