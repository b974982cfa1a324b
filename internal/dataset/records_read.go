package dataset

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

// RowFunc receives each row of a file: a decoded value (objects as
// map[string]any, lists as []any, numbers as json.Number or Go numbers), or
// a non-empty bad reason for a row that does not decode. Returning an error
// stops the reading.
type RowFunc func(row any, bad string) error

// ReadRows reads every row of the file at p in format f (FormatAuto: from
// its name). split picks the rows of a JSON object keyed by split name
// ({"train": [...], "validation": [...]}).
func ReadRows(p string, f Format, split string, fn RowFunc) error {
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
		err = readJSONL(r, fn)
	case FormatJSON:
		err = readJSON(r, split, fn)
	case FormatCSV:
		err = readCSV(r, fn)
	default:
		err = fmt.Errorf("unsupported format %q", f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// maybeGunzip unwraps gzip content (told by its magic bytes).
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

func decodeValue(data []byte) (any, error) {
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

func readJSONL(r io.Reader, fn RowFunc) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			if line == 1 {
				b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
			}
			v, derr := decodeValue(b)
			var ferr error
			if derr != nil {
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

// rowKeys are the keys of a JSON object that may hold its rows, tried in
// order after the split's own name.
var rowKeys = []string{"data", "rows", "examples", "records", "instances"}

func readJSON(r io.Reader, split string, fn RowFunc) error {
	br := bufio.NewReaderSize(r, 1<<16)
	first, err := firstNonSpace(br)
	if err != nil {
		return fmt.Errorf("%w: empty JSON file", ErrBadFile)
	}
	dec := json.NewDecoder(br)
	dec.UseNumber()
	if first == '[' {
		// Stream the array element by element.
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadFile, err)
		}
		for dec.More() {
			var v any
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("%w: %v", ErrBadFile, err)
			}
			if err := fn(v, ""); err != nil {
				return err
			}
		}
		return nil
	}
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: want a JSON array of rows or an object holding one", ErrBadFile)
	}
	rows, err := rowsOf(obj, split)
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

func readCSV(r io.Reader, fn RowFunc) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%w: CSV header: %v", ErrBadFile, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
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
