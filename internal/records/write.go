package records

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names of the files of a Records artifact.
const (
	RecordsDataFile     = "data.jsonl"
	RecordsMetadataFile = "metadata.json"
)

// SourceFile is one file a Records artifact was made from.
type SourceFile struct {
	Path        string `json:"path"`          // path in the repository, URL or local path
	Size        int64  `json:"size"`          // bytes
	SHA256      string `json:"sha256"`        // hex
	RowsRead    int64  `json:"rows_read"`     // rows seen in this file
	RowsWritten int64  `json:"rows_written"`  // rows that became records
	URL         string `json:"url,omitempty"` // where it was downloaded from, query removed
}

// Metadata is metadata.json of a Records artifact.
type Metadata struct {
	Source            string            `json:"source"`                       // --source as given
	Repo              string            `json:"repo,omitempty"`               // OWNER/NAME for hf:// sources
	Revision          string            `json:"revision,omitempty"`           // the revision asked for (branch, tag or sha)
	Commit            string            `json:"commit,omitempty"`             // the commit sha it resolved to
	Subset            string            `json:"subset,omitempty"`             // subset (config) used
	Split             string            `json:"split,omitempty"`              // split used
	ParquetConversion bool              `json:"parquet_conversion,omitempty"` // read from the Hub's parquet conversion
	Format            Format            `json:"format"`                       // format of the source files
	Task              Task              `json:"task"`                         // qa or lm
	Fields            map[string]string `json:"fields"`                       // record field -> source path(s)
	Files             []SourceFile      `json:"files"`                        // source files, with sha256
	RowsRead          int64             `json:"rows_read"`
	RowsWritten       int64             `json:"rows_written"`
	RowsSkipped       int64             `json:"rows_skipped"`
	SkippedByReason   map[string]int64  `json:"skipped_by_reason"`
	MaxBadRows        string            `json:"max_bad_rows"` // the limit in force
}

// ErrBadMetadata means a Records artifact's metadata.json does not decode
// or names an unknown task: the artifact is rejected, not retried.
var ErrBadMetadata = errors.New("malformed records metadata")

// ReadMetadata reads metadata.json of a Records artifact directory.
func ReadMetadata(dir string) (*Metadata, error) {
	b, err := os.ReadFile(filepath.Join(dir, RecordsMetadataFile))
	if err != nil {
		return nil, fmt.Errorf("read records metadata: %w", err)
	}
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read records metadata %s: %w: %w", dir, ErrBadMetadata, err)
	}
	return &m, nil
}

// RecordsWriter writes a Records artifact into a temporary directory beside
// the output and moves it into place on Commit, so that a failed run leaves
// nothing at the output path that looks complete.
type RecordsWriter struct {
	out  string
	tmp  string
	task Task
	f    *os.File
	bw   *bufio.Writer
	enc  *json.Encoder // writes to scratch
	// scratch holds one piece of a string, JSON-encoded.
	scratch bytes.Buffer
	n       int64
}

// CreateRecords starts a Records artifact for outDir.
func CreateRecords(outDir string, task Task) (*RecordsWriter, error) {
	outDir = filepath.Clean(outDir)
	parent := filepath.Dir(outDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create records: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(outDir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create records: %w", err)
	}
	f, err := os.Create(filepath.Join(tmp, RecordsDataFile))
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create records: %w", err)
	}
	w := &RecordsWriter{out: outDir, tmp: tmp, task: task, f: f, bw: bufio.NewWriterSize(f, 1<<20)}
	w.enc = json.NewEncoder(&w.scratch)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// Write appends one record: the bytes json.Encoder writes for it (without
// HTML escaping), but with each string encoded in pieces, so that a long
// field is not first copied whole into the encoder's buffer.
func (w *RecordsWriter) Write(r Record) error {
	w.bw.WriteByte('{')
	for i, f := range w.task.Fields() {
		if i > 0 {
			w.bw.WriteByte(',')
		}
		if err := w.writeString(f); err != nil {
			return fmt.Errorf("write record: %w", err)
		}
		w.bw.WriteByte(':')
		if err := w.writeString(r.get(f)); err != nil {
			return fmt.Errorf("write record: %w", err)
		}
	}
	if _, err := w.bw.WriteString("}\n"); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	w.n++
	return nil
}

// stringPiece is the most of a string encoded at once. JSON escapes each
// character on its own, so pieces cut at character starts encode to the
// pieces of the whole string's encoding.
const stringPiece = 64 << 10

func (w *RecordsWriter) writeString(s string) error {
	w.bw.WriteByte('"')
	for len(s) > 0 {
		n := min(len(s), stringPiece)
		for n < len(s) && n > 1 && !utf8.RuneStart(s[n]) {
			n--
		}
		w.scratch.Reset()
		if err := w.enc.Encode(s[:n]); err != nil {
			return err
		}
		b := w.scratch.Bytes()
		w.bw.Write(b[1 : len(b)-2]) // without the quotes and the newline
		s = s[n:]
	}
	return w.bw.WriteByte('"')
}

// Count is the number of records written so far.
func (w *RecordsWriter) Count() int64 { return w.n }

// Abort discards everything written.
func (w *RecordsWriter) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	os.RemoveAll(w.tmp)
}

// Commit writes metadata.json and moves the artifact to the output path:
// one rename when the output does not exist or is an empty directory (as
// Kubeflow may prepare it); otherwise file by file into it, metadata.json
// last, after removing any earlier metadata.json.
func (w *RecordsWriter) Commit(meta *Metadata) (err error) {
	defer func() {
		if err != nil {
			w.Abort()
			err = fmt.Errorf("commit records to %s: %w", w.out, err)
		}
	}()
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(w.tmp, RecordsMetadataFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(w.tmp, 0o755); err != nil {
		return err
	}
	entries, statErr := os.ReadDir(w.out)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		return os.Rename(w.tmp, w.out)
	case statErr != nil:
		return statErr
	case len(entries) == 0 && os.Remove(w.out) == nil:
		if err := os.Rename(w.tmp, w.out); err != nil {
			return err
		}
		return nil
	}
	// The output directory is in use (not empty, or a mount point).
	if err := os.Remove(filepath.Join(w.out, RecordsMetadataFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, name := range []string{RecordsDataFile, RecordsMetadataFile} {
		if err := os.Rename(filepath.Join(w.tmp, name), filepath.Join(w.out, name)); err != nil {
			return err
		}
	}
	return os.RemoveAll(w.tmp)
}

// BadRowLimit is --max-bad-rows: a count of skipped rows, a percentage of
// the rows read, or no limit.
type BadRowLimit struct {
	count     int64   // -1: unused
	fraction  float64 // -1: unused
	unlimited bool
}

// DefaultMaxBadRows is the default --max-bad-rows: a step fails when more
// than 10% of the rows read are skipped. (SQuAD v2's unanswerable questions
// are about a third of it: pass --max-bad-rows=50% or "none" for it.)
const DefaultMaxBadRows = "10%"

// ParseBadRowLimit reads "N" (at most N skipped rows), "P%" (at most P% of
// the rows read), or "none"/"-1" (no limit). Empty means DefaultMaxBadRows.
func ParseBadRowLimit(s string) (BadRowLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultMaxBadRows
	}
	if s == "none" || s == "-1" {
		return BadRowLimit{count: -1, fraction: -1, unlimited: true}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return BadRowLimit{}, fmt.Errorf("--max-bad-rows %q: want a count, a percentage from 0%% to 100%%, or none", s)
		}
		return BadRowLimit{count: -1, fraction: f / 100}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return BadRowLimit{}, fmt.Errorf("--max-bad-rows %q: want a count, a percentage such as 5%%, or none", s)
	}
	return BadRowLimit{count: n, fraction: -1}, nil
}

// String renders the limit as ParseBadRowLimit reads it.
func (l BadRowLimit) String() string {
	switch {
	case l.unlimited:
		return "none"
	case l.fraction >= 0:
		return strconv.FormatFloat(l.fraction*100, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(l.count, 10)
}

// ExceededEarly reports whether skipped rows already break a count limit
// (a percentage can only be judged at the end).
func (l BadRowLimit) ExceededEarly(skipped int64) bool {
	return !l.unlimited && l.count >= 0 && skipped > l.count
}

// Exceeded reports whether the final counts break the limit.
func (l BadRowLimit) Exceeded(skipped, read int64) bool {
	switch {
	case l.unlimited:
		return false
	case l.count >= 0:
		return skipped > l.count
	}
	return read > 0 && float64(skipped) > l.fraction*float64(read)
}
