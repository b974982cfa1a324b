package records

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// Format is a source file format.
type Format string

// Formats.
const (
	FormatAuto    Format = "auto"
	FormatJSONL   Format = "jsonl"
	FormatJSON    Format = "json"
	FormatCSV     Format = "csv"
	FormatParquet Format = "parquet"
)

// ParseFormat reads a --format value (empty means auto).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case "":
		return FormatAuto, nil
	case FormatAuto, FormatJSONL, FormatJSON, FormatCSV, FormatParquet:
		return f, nil
	case "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("unknown format %q (want auto, jsonl, json, csv or parquet)", s)
}

// FormatOf tells a file's format from its name (.jsonl, .ndjson, .json,
// .csv, .parquet, each text format optionally .gz); ok is false otherwise.
func FormatOf(name string) (f Format, ok bool) {
	n := strings.ToLower(path.Base(name))
	n = strings.TrimSuffix(n, ".gz")
	switch path.Ext(n) {
	case ".jsonl", ".ndjson":
		return FormatJSONL, true
	case ".json":
		return FormatJSON, true
	case ".csv":
		return FormatCSV, true
	case ".parquet":
		return FormatParquet, true
	}
	return "", false
}

// ErrBadFile means a source file as a whole cannot be read in its format.
var ErrBadFile = errors.New("unreadable data file")

// ErrLineTooLong means a line of a source file (a JSONL line, a CSV record,
// an element of a JSON array) is longer than ReadOptions.MaxLineBytes: the
// file is refused rather than read into memory whole.
var ErrLineTooLong = errors.New("line too long")

// DefaultMaxLineBytes is the longest line ReadRows accepts by default
// (fetch's --max-line-bytes): far above any real record, low enough that
// fetch's memory (about 3 times the longest line, 6.5 for CSV;
// docs/benchmarks.md) stays well inside the 4 GiB the pipeline gives it.
const DefaultMaxLineBytes = 64 << 20

// ReadOptions configures ReadRows.
type ReadOptions struct {
	// Split picks the rows of a JSON object keyed by split name
	// ({"train": [...], "validation": [...]}).
	Split string
	// MaxLineBytes bounds a JSONL line, a CSV record and an element of a
	// JSON array; 0: DefaultMaxLineBytes. A JSON file that is one object
	// holding the rows and a Parquet file are read by their own structure.
	MaxLineBytes int64
}

// RowFunc receives each row of a file: a decoded value (objects as
// map[string]any, lists as []any, numbers as json.Number or Go numbers), or
// a non-empty bad reason for a row that does not decode. Returning an error
// stops the reading.
type RowFunc func(row any, bad string) error

// ReadRows reads every row of the file at p in format f (FormatAuto: from
// its name). A row that is not valid UTF-8 is passed on as bad
// (SkipInvalidUTF8), never silently repaired; a line longer than
// o.MaxLineBytes stops the reading with ErrLineTooLong.
func ReadRows(p string, f Format, o ReadOptions, fn RowFunc) error {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if f == "" || f == FormatAuto {
		var ok bool
		if f, ok = FormatOf(p); !ok {
			return fmt.Errorf("%s: cannot tell the format from the name; pass --format", p)
		}
	}
	if f == FormatParquet {
		return readParquet(p, fn)
	}
	file, err := os.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	r, err := maybeGunzip(file)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", p, ErrBadFile, err)
	}
	switch f {
	case FormatJSONL:
		err = readJSONL(r, o.MaxLineBytes, fn)
	case FormatJSON:
		err = readJSON(r, o, fn)
	case FormatCSV:
		err = readCSV(r, o.MaxLineBytes, fn)
	default:
		err = fmt.Errorf("unsupported format %q", f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// maybeGunzip unwraps gzip content (told by its magic bytes).
func maybeGunzip(r io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return bufio.NewReaderSize(zr, 1<<16), nil
	}
	return br, nil
}

// elementGuard stops a parser (csv.Reader, json.Decoder) that has read more
// than limit bytes (plus its buffer) since the end of its last record, so
// that one endless record cannot take all memory before the exact check
// after it. start is the parser's InputOffset; limit < 0: no limit.
type elementGuard struct {
	r     io.Reader
	read  int64
	limit int64
	start func() int64
}

// guardSlack covers what a parser buffers ahead of the record it parses.
const guardSlack = 1 << 16

func (g *elementGuard) Read(p []byte) (int, error) {
	if g.limit >= 0 && g.read-g.start() > g.limit+guardSlack {
		return 0, ErrLineTooLong
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}

func validUTF8(fields []string) bool {
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return false
		}
	}
	return true
}

// invalidUTF8At returns the offset of the first invalid UTF-8 sequence in b.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// decodeValue decodes one JSON value with numbers as json.Number, as a
// json.Decoder with UseNumber does. An object's string and number members,
// which hold nearly all of a long record, are decoded straight from data
// (json.Decoder would first copy data into a buffer that grows by doubling:
// up to three times a long line); other members, and anything that is not
// one well-formed object, go through json.Decoder, so that what is
// accepted and what is refused stay the same.
func decodeValue(data []byte) (any, error) {
	var members map[string]rawValue
	if json.Unmarshal(data, &members) != nil || members == nil { // members == nil: the value null
		return decodeStream(data)
	}
	obj := make(map[string]any, len(members))
	for k, raw := range members {
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			obj[k] = s
		case 't':
			obj[k] = true
		case 'f':
			obj[k] = false
		case 'n':
			obj[k] = nil
		case '{', '[':
			v, err := decodeStream(raw)
			if err != nil {
				return nil, err
			}
			obj[k] = v
		default:
			obj[k] = json.Number(raw)
		}
	}
	return obj, nil
}

// rawValue holds a member's JSON text as a slice of the input being
// decoded (json.RawMessage would copy it); it is used only while that
// input is alive.
type rawValue []byte

func (r *rawValue) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

func decodeStream(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func lineTooLong(what string, n, limit int64) error {
	return fmt.Errorf("%s: %w: over %d bytes (--max-line-bytes=%d); raise the limit if the records are that long", what, ErrLineTooLong, n, limit)
}

func readJSONL(r *bufio.Reader, limit int64, fn RowFunc) error {
	for line := 1; ; line++ {
		b, n, err := readLine(r, limit)
		if errors.Is(err, ErrLineTooLong) {
			return lineTooLong(fmt.Sprintf("line %d", line), n, limit)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if line == 1 {
				b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
			}
			var ferr error
			if !utf8.Valid(b) {
				ferr = fn(nil, SkipInvalidUTF8)
			} else if v, derr := decodeValue(b); derr != nil {
				ferr = fn(nil, SkipMalformed)
			} else {
				ferr = fn(v, "")
			}
			if ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
}

// readLine returns the next line, '\n' included, as bufio.Reader.ReadBytes
// does (the pieces of a long line, then one copy of exactly its size), or
// ErrLineTooLong once it passes limit bytes; n is the bytes read.
func readLine(r *bufio.Reader, limit int64) (line []byte, n int64, err error) {
	var pieces [][]byte
	for {
		frag, err := r.ReadSlice('\n')
		n += int64(len(frag))
		if n > limit {
			return nil, n, ErrLineTooLong
		}
		if err != bufio.ErrBufferFull {
			line := make([]byte, 0, n)
			for _, p := range pieces {
				line = append(line, p...)
			}
			return append(line, frag...), n, err
		}
		pieces = append(pieces, bytes.Clone(frag))
	}
}

// rowKeys are the keys of a JSON object that may hold its rows, tried in
// order after the split's own name.
var rowKeys = []string{"data", "rows", "examples", "records", "instances"}

func readJSON(br *bufio.Reader, o ReadOptions, fn RowFunc) error {
	first, err := firstNonSpace(br)
	if err != nil {
		return fmt.Errorf("%w: empty JSON file", ErrBadFile)
	}
	guard := &elementGuard{r: br, limit: o.MaxLineBytes}
	dec := json.NewDecoder(guard)
	guard.start = dec.InputOffset
	if first == '[' {
		// Stream the array element by element, each as raw bytes first: the
		// decoder would turn invalid UTF-8 into U+FFFD unseen.
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadFile, err)
		}
		for i := 1; dec.More(); i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, ErrLineTooLong) {
					return lineTooLong(fmt.Sprintf("array element %d", i), guard.read-guard.start(), o.MaxLineBytes)
				}
				return fmt.Errorf("%w: %v", ErrBadFile, err)
			}
			if int64(len(raw)) > o.MaxLineBytes {
				return lineTooLong(fmt.Sprintf("array element %d", i), int64(len(raw)), o.MaxLineBytes)
			}
			if !utf8.Valid(raw) {
				if err := fn(nil, SkipInvalidUTF8); err != nil {
					return err
				}
				continue
			}
			v, err := decodeValue(raw)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrBadFile, err)
			}
			if err := fn(v, ""); err != nil {
				return err
			}
		}
		return nil
	}
	// One object holding the rows: read whole, by its structure.
	guard.limit = -1
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrBadFile, invalidUTF8At(raw))
	}
	v, err := decodeValue(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: want a JSON array of rows or an object holding one", ErrBadFile)
	}
	rows, err := rowsOf(obj, o.Split)
	if err != nil {
		return err
	}
	if isSQuADArticles(rows) {
		return flattenSQuAD(rows, fn)
	}
	for _, row := range rows {
		if err := fn(row, ""); err != nil {
			return err
		}
	}
	return nil
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			br.ReadByte()
		case 0xef: // a UTF-8 byte order mark
			bom, _ := br.Peek(3)
			if bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
				br.Discard(3)
				continue
			}
			return b[0], nil
		default:
			return b[0], nil
		}
	}
}

// rowsOf finds the list of rows inside a JSON object: the split's key,
// then a known key ("data" as in SQuAD), then the only list-valued key.
func rowsOf(obj map[string]any, split string) ([]any, error) {
	keys := rowKeys
	if split != "" {
		keys = append([]string{split}, keys...)
	}
	for _, k := range keys {
		if list, ok := obj[k].([]any); ok {
			return list, nil
		}
	}
	var lists []string
	for k, v := range obj {
		if _, ok := v.([]any); ok {
			lists = append(lists, k)
		}
	}
	sort.Strings(lists)
	if len(lists) == 1 {
		return obj[lists[0]].([]any), nil
	}
	if len(lists) == 0 {
		return nil, fmt.Errorf("%w: the JSON object holds no list of rows", ErrBadFile)
	}
	return nil, fmt.Errorf("%w: the JSON object holds several lists (%s); pick one with --split", ErrBadFile, strings.Join(lists, ", "))
}

// isSQuADArticles tells SQuAD's own layout: articles with paragraphs, each
// a context with its questions ("qas").
func isSQuADArticles(rows []any) bool {
	if len(rows) == 0 {
		return false
	}
	a, ok := rows[0].(map[string]any)
	if !ok {
		return false
	}
	_, ok = a["paragraphs"].([]any)
	return ok
}

// flattenSQuAD turns SQuAD's nested articles into one row per question, in
// the layout of the Hub's SQuAD copies: id, title, context, question,
// answers{text: [...], answer_start: [...]}.
func flattenSQuAD(articles []any, fn RowFunc) error {
	for _, a := range articles {
		art, ok := a.(map[string]any)
		if !ok {
			if err := fn(nil, SkipNotObject); err != nil {
				return err
			}
			continue
		}
		paras, _ := art["paragraphs"].([]any)
		for _, p := range paras {
			para, _ := p.(map[string]any)
			qas, _ := para["qas"].([]any)
			for _, q := range qas {
				qa, ok := q.(map[string]any)
				if !ok {
					if err := fn(nil, SkipNotObject); err != nil {
						return err
					}
					continue
				}
				texts, starts := []any{}, []any{}
				answers, _ := qa["answers"].([]any)
				for _, an := range answers {
					if am, ok := an.(map[string]any); ok {
						texts = append(texts, am["text"])
						starts = append(starts, am["answer_start"])
					}
				}
				row := map[string]any{
					"id": qa["id"], "title": art["title"], "context": para["context"], "question": qa["question"],
					"answers": map[string]any{"text": texts, "answer_start": starts},
				}
				if v, ok := qa["is_impossible"]; ok {
					row["is_impossible"] = v
				}
				if err := fn(row, ""); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func readCSV(br *bufio.Reader, limit int64, fn RowFunc) error {
	var recStart int64
	guard := &elementGuard{r: br, limit: limit, start: func() int64 { return recStart }}
	cr := csv.NewReader(guard)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, ErrLineTooLong) || (err == nil && cr.InputOffset() > limit) {
		return lineTooLong("CSV header", max(cr.InputOffset(), guard.read), limit)
	}
	if err != nil {
		return fmt.Errorf("%w: CSV header: %v", ErrBadFile, err)
	}
	if !validUTF8(header) {
		return fmt.Errorf("%w: CSV header: invalid UTF-8", ErrBadFile)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	for n := 2; ; n++ {
		before := cr.InputOffset()
		recStart = before
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if size := cr.InputOffset() - before; errors.Is(err, ErrLineTooLong) || size > limit {
			return lineTooLong(fmt.Sprintf("CSV record %d", n), max(size, guard.read-before), limit)
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			// A broken quoted field swallows the rest of the file: that is
			// the file's fault, not one row's. (A bare quote spoils its row.)
			if errors.Is(perr.Err, csv.ErrQuote) {
				return fmt.Errorf("%w: %v", ErrBadFile, err)
			}
			if ferr := fn(nil, SkipMalformed); ferr != nil {
				return ferr
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(rec) != len(header) {
			if err := fn(nil, SkipMalformed); err != nil {
				return err
			}
			continue
		}
		if !validUTF8(rec) {
			if err := fn(nil, SkipInvalidUTF8); err != nil {
				return err
			}
			continue
		}
		row := make(map[string]any, len(header))
		for i, h := range header {
			row[h] = rec[i]
		}
		if err := fn(row, ""); err != nil {
			return err
		}
	}
}

func readParquet(p string, fn RowFunc) (err error) {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w: %v", p, ErrBadFile, err)
	}
	// parquet-go panics on some corrupt inputs; a bad file must not crash fetch.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w: %v", p, ErrBadFile, r)
		}
	}()
	r := parquet.NewReader(pf)
	defer r.Close()
	for {
		row := map[string]any{}
		if err := r.Read(&row); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%s: %w: %v", p, ErrBadFile, err)
		}
		if err := fn(row, ""); err != nil {
			return err
		}
	}
}
