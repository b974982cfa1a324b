// Package records makes the Records artifact, fetch's output and
// tokenize's input (docs/design.md §3): data.jsonl and metadata.json.
//
// Records are made from a source: Fetch brings the
// source's files to disk (a Hugging Face dataset repository through the hub
// package, an http(s) URL, or local files), ReadRows reads JSONL, JSON (an
// array, or an object holding the rows, SQuAD's nested layout included),
// CSV and Parquet, a Mapping picks each record field out of a row by a
// dotted path with indexes (answers.text[0]), and RecordsWriter writes
// data.jsonl and metadata.json into a temporary directory that is renamed
// into place only when complete. Rows that cannot be used are skipped and
// counted by reason; --max-bad-rows (DefaultMaxBadRows: 10% of the rows read)
// decides when that fails the step; a row that is not valid UTF-8 is one of
// them. Memory per record is bounded: a line (JSONL), record (CSV) or array
// element (JSON) longer than ReadOptions.MaxLineBytes fails the step with
// ErrLineTooLong; a local source is read within MaxBytes and until the
// context ends, whatever it is (a FIFO or a device is copied once, as it is
// read, and its rows read from the copy).
//
// The next artifact, token shards, is package shards.
package records
