package shards

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kfllm/kfllm/internal/records"
	"github.com/kfllm/kfllm/internal/safetensors"
)

// Names in a Token shards artifact (docs/design.md §3).
const (
	TrainShardFile      = "train.safetensors"
	EvalShardFile       = "eval.safetensors"
	ShardsMetadataFile  = "metadata.json"
	ShardsTokenizerDir  = "tokenizer"
	ShardsFormat        = "kfllm-token-shards-v1"
	tensorInputIDs      = "input_ids"
	tensorLabels        = "labels"
	tensorAttentionMask = "attention_mask"
)

// IgnoreIndex is the label of positions without loss (prompt and padding).
const IgnoreIndex = -100

// ShardsMetadata is metadata.json of a Token shards artifact.
type ShardsMetadata struct {
	Format       string            `json:"format"` // ShardsFormat
	Task         records.Task      `json:"task"`
	Template     string            `json:"template,omitempty"`      // prompt template name (task qa)
	TemplateText string            `json:"template_text,omitempty"` // the template itself
	Tokenizer    ShardsTokenizer   `json:"tokenizer"`
	MaxLength    int               `json:"max_length"`
	Pack         bool              `json:"pack"`
	PaddingSide  string            `json:"padding_side"` // "right"
	EvalFraction float64           `json:"eval_fraction"`
	Seed         uint64            `json:"seed"`
	Input        ShardsInput       `json:"input"`
	Train        ShardCounts       `json:"train"`
	Eval         ShardCounts       `json:"eval"`
	Counts       TokenizeCounts    `json:"counts"`
	Extra        map[string]string `json:"extra,omitempty"`
}

// ShardsTokenizer describes the tokenizer used; its files are in tokenizer/.
type ShardsTokenizer struct {
	Source    string `json:"source"` // --tokenizer as given
	SHA256    string `json:"sha256"` // tokenizer.Tokenizer.SHA256
	VocabSize int    `json:"vocab_size"`
	BOSID     *int   `json:"bos_id"`
	EOSID     int    `json:"eos_id"`
	PadID     int    `json:"pad_id"`
	// PadSource says where PadID comes from: "pad_token", or "eos_token" when
	// the tokenizer has no pad token (pad positions are masked either way).
	PadSource string `json:"pad_source"`
}

// ShardsInput identifies the Records artifact tokenized.
type ShardsInput struct {
	Dir        string `json:"dir"`
	DataSHA256 string `json:"data_sha256"` // of data.jsonl
	Source     string `json:"source,omitempty"`
	Commit     string `json:"commit,omitempty"`
}

// ShardCounts describes one shard file.
type ShardCounts struct {
	File     string `json:"file"`
	Rows     int    `json:"rows"`     // N
	Length   int    `json:"length"`   // L
	Examples int    `json:"examples"` // records in it (before packing)
	Tokens   int64  `json:"tokens"`   // non-pad tokens
	Labelled int64  `json:"labelled"` // tokens carrying loss
}

// TokenizeCounts are the record counts of a tokenize run.
type TokenizeCounts struct {
	RecordsRead     int64            `json:"records_read"`
	Examples        int64            `json:"examples"`          // records that became examples
	Truncated       int64            `json:"truncated"`         // context (qa) or text (lm) cut to fit
	SkippedTooLong  int64            `json:"skipped_too_long"`  // question+answer longer than max_length
	SkippedBad      int64            `json:"skipped_bad"`       // bad rows, by reason below
	SkippedByReason map[string]int64 `json:"skipped_by_reason"` // bad rows
	MaxBadRows      string           `json:"max_bad_rows"`
}

// Shard is one shard file read into memory: row-major [N, L] int32 tensors.
type Shard struct {
	InputIDs, Labels, AttentionMask []int32
	N, L                            int
}

// Row returns row i of the three tensors (views, not copies).
func (s *Shard) Row(i int) (ids, labels, mask []int32) {
	lo, hi := i*s.L, (i+1)*s.L
	return s.InputIDs[lo:hi], s.Labels[lo:hi], s.AttentionMask[lo:hi]
}

// ReadShard reads a shard file written by Tokenize (or any safetensors file
// with int32 input_ids, labels and attention_mask of one shape [N, L]).
func ReadShard(path string) (*Shard, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read shard: %w", err)
	}
	defer f.Close()
	s := &Shard{}
	for i, name := range []string{tensorInputIDs, tensorLabels, tensorAttentionMask} {
		info, ok := f.Info(name)
		if !ok {
			return nil, fmt.Errorf("read shard %s: no tensor %q", path, name)
		}
		if info.DType != safetensors.I32 || len(info.Shape) != 2 {
			return nil, fmt.Errorf("read shard %s: tensor %s is %s %v, want I32 [N, L]", path, name, info.DType, info.Shape)
		}
		n, l := int(info.Shape[0]), int(info.Shape[1])
		if i == 0 {
			s.N, s.L = n, l
		} else if n != s.N || l != s.L {
			return nil, fmt.Errorf("read shard %s: tensor %s has shape %v, input_ids [%d %d]", path, name, info.Shape, s.N, s.L)
		}
		b, err := f.Data(name)
		if err != nil {
			return nil, fmt.Errorf("read shard %s: %w", path, err)
		}
		v := safetensors.Int32s(b)
		switch name {
		case tensorInputIDs:
			s.InputIDs = v
		case tensorLabels:
			s.Labels = v
		default:
			s.AttentionMask = v
		}
	}
	return s, nil
}

// ReadShardsMetadata reads metadata.json of a Token shards artifact.
func ReadShardsMetadata(dir string) (*ShardsMetadata, error) {
	b, err := os.ReadFile(filepath.Join(dir, ShardsMetadataFile))
	if err != nil {
		return nil, fmt.Errorf("read shards metadata: %w", err)
	}
	var m ShardsMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read shards metadata %s: %w", dir, err)
	}
	if m.Format != ShardsFormat {
		return nil, fmt.Errorf("read shards metadata %s: format %q, want %q", dir, m.Format, ShardsFormat)
	}
	return &m, nil
}

// ShardExample is one training row before padding: ids, and the number of
// leading positions without loss (the prompt). Every later position's label
// is its id.
type ShardExample struct {
	IDs       []int32
	PromptLen int
}

// WriteShard writes examples to a safetensors file at path as int32
// input_ids, labels and attention_mask of shape [len(examples), length],
// right-padded with padID (labels IgnoreIndex and mask 0 on padding, labels
// IgnoreIndex on the first PromptLen positions). length 0 means the longest
// example. The rows are streamed: memory stays at one row.
func WriteShard(path string, examples []ShardExample, length int, padID int32, metadata map[string]string) (ShardCounts, error) {
	c := ShardCounts{File: filepath.Base(path), Rows: len(examples), Examples: len(examples)}
	for _, e := range examples {
		if length > 0 && len(e.IDs) > length {
			return c, fmt.Errorf("write shard %s: example of %d tokens exceeds length %d", path, len(e.IDs), length)
		}
		c.Length = max(c.Length, len(e.IDs))
		c.Tokens += int64(len(e.IDs))
		c.Labelled += int64(len(e.IDs) - min(e.PromptLen, len(e.IDs)))
	}
	if length > 0 {
		c.Length = length
	}
	shape := []int64{int64(len(examples)), int64(c.Length)}
	specs := []safetensors.Spec{
		{Name: tensorInputIDs, DType: safetensors.I32, Shape: shape},
		{Name: tensorLabels, DType: safetensors.I32, Shape: shape},
		{Name: tensorAttentionMask, DType: safetensors.I32, Shape: shape},
	}
	w, err := safetensors.Create(path, specs, metadata)
	if err != nil {
		return c, fmt.Errorf("write shard: %w", err)
	}
	for _, name := range []string{tensorInputIDs, tensorLabels, tensorAttentionMask} {
		r := &rowReader{examples: examples, length: c.Length, fill: rowFiller(name, padID)}
		if err := w.WriteTensorFrom(name, r); err != nil {
			w.Abort()
			return c, fmt.Errorf("write shard %s: %w", path, err)
		}
	}
	if err := w.Close(); err != nil {
		return c, fmt.Errorf("write shard %s: %w", path, err)
	}
	return c, nil
}

// rowFiller returns the function that fills one padded row of a tensor.
func rowFiller(name string, padID int32) func(e ShardExample, row []int32) {
	return func(e ShardExample, row []int32) {
		for i := range row {
			inside := i < len(e.IDs)
			switch name {
			case tensorInputIDs:
				row[i] = padID
				if inside {
					row[i] = e.IDs[i]
				}
			case tensorLabels:
				row[i] = IgnoreIndex
				if inside && i >= e.PromptLen {
					row[i] = e.IDs[i]
				}
			default:
				row[i] = 0
				if inside {
					row[i] = 1
				}
			}
		}
	}
}

// rowReader streams a tensor's little-endian bytes one row at a time.
type rowReader struct {
	examples []ShardExample
	length   int
	fill     func(ShardExample, []int32)
	next     int
	row      []int32
	store    []byte // backing array of buf
	buf      []byte // unread bytes of the current row
}

func (r *rowReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			if r.next >= len(r.examples) {
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
			if r.row == nil {
				r.row = make([]int32, r.length)
			}
			r.fill(r.examples[r.next], r.row)
			r.next++
			r.store = r.store[:0]
			for _, v := range r.row {
				r.store = binary.LittleEndian.AppendUint32(r.store, uint32(v))
			}
			r.buf = r.store
		}
		k := copy(p[n:], r.buf)
		n += k
		r.buf = r.buf[k:]
	}
	return n, nil
}

var errOutputNotEmpty = errors.New("output directory is not empty")

// WriteShards writes a Token shards artifact's tensors and metadata into
// dir: train.safetensors and eval.safetensors (padded to length, 0 meaning
// each shard's longest example) and, when meta is not nil, metadata.json
// with its Train and Eval counts filled in. It does not copy a tokenizer
// (tokenizer.Tokenizer.Save into dir/tokenizer does) nor stage the output;
// Tokenize does both.
func WriteShards(dir string, train, eval []ShardExample, length int, padID int32, meta *ShardsMetadata) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write shards: %w", err)
	}
	st := map[string]string{"format": "pt", "kfllm": ShardsFormat}
	tc, err := WriteShard(filepath.Join(dir, TrainShardFile), train, length, padID, st)
	if err != nil {
		return err
	}
	ec, err := WriteShard(filepath.Join(dir, EvalShardFile), eval, length, padID, st)
	if err != nil {
		return err
	}
	if meta == nil {
		return nil
	}
	meta.Format, meta.Train, meta.Eval = ShardsFormat, tc, ec
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ShardsMetadataFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write shards metadata: %w", err)
	}
	return nil
}

// ReadShards reads a Token shards artifact: both shards and metadata.json.
func ReadShards(dir string) (train, eval *Shard, meta *ShardsMetadata, err error) {
	if meta, err = ReadShardsMetadata(dir); err != nil {
		return nil, nil, nil, err
	}
	if train, err = ReadShard(filepath.Join(dir, TrainShardFile)); err != nil {
		return nil, nil, nil, err
	}
	if eval, err = ReadShard(filepath.Join(dir, EvalShardFile)); err != nil {
		return nil, nil, nil, err
	}
	return train, eval, meta, nil
}

// ExampleOf converts a prompt.Example (labels IgnoreIndex on a prefix, ids
// after it) into a ShardExample.
func ExampleOf(ids, labels []int) ShardExample {
	n := len(labels)
	for i, l := range labels {
		if l != IgnoreIndex {
			n = i
			break
		}
	}
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return ShardExample{IDs: out, PromptLen: n}
}
