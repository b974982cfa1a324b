package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/hub"
)

// fetchWithin runs Fetch and fails the test if it has not returned within
// a minute: the defects below made it run forever.
func fetchWithin(t *testing.T, ctx context.Context, o FetchOptions) (*Metadata, error) {
	t.Helper()
	type result struct {
		m   *Metadata
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := Fetch(ctx, o)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-time.After(time.Minute):
		t.Fatal("Fetch did not return within a minute")
		return nil, nil
	}
}

// A source that never ends is refused once it passes --max-bytes, while
// it is read (before, fetch hashed /dev/zero forever).
func TestFetchEndlessSourceStopsAtMaxBytes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, err := fetchWithin(t, context.Background(), FetchOptions{Source: "/dev/zero", Format: FormatJSONL, OutputDir: out, MaxBytes: 8 << 20})
	if !errors.Is(err, hub.ErrTooLarge) || !strings.Contains(err.Error(), "--max-bytes") {
		t.Fatalf("err = %v, want ErrTooLarge naming --max-bytes", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output left: %v", err)
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.jsonl")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return p
}

// A FIFO is read once: its rows come from the copy fetch makes while it
// hashes it (before, the second open waited for a writer forever).
func TestFetchFIFO(t *testing.T) {
	p := mkfifo(t)
	data := `{"context":"Paris is in France.","question":"Where is Paris?","answer":"France"}` + "\n"
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		io.WriteString(w, data)
		w.Close()
	}()
	out := filepath.Join(t.TempDir(), "out")
	m, err := fetchWithin(t, context.Background(), FetchOptions{Source: p, OutputDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if m.RowsWritten != 1 || m.Files[0].SHA256 != hexSHA([]byte(data)) || m.Files[0].Path != p {
		t.Fatalf("metadata %+v", m)
	}
}

// Cancelling the context (SIGTERM in the fetch command) stops a fetch that
// reads an endless FIFO, one whose writer sends nothing, and one that has
// no writer at all.
func TestFetchCancelStopsReading(t *testing.T) {
	for name, writer := range map[string]func(w *os.File, stop <-chan struct{}){
		"endless": func(w *os.File, stop <-chan struct{}) {
			buf := bytes.Repeat([]byte("x"), 1<<16)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		},
		"silent":    func(w *os.File, stop <-chan struct{}) { <-stop },
		"no writer": nil,
	} {
		t.Run(name, func(t *testing.T) {
			p := mkfifo(t)
			stop := make(chan struct{})
			defer close(stop)
			if writer != nil {
				go func() {
					w, err := os.OpenFile(p, os.O_WRONLY, 0)
					if err != nil {
						return
					}
					defer w.Close()
					writer(w, stop)
				}()
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(500*time.Millisecond, cancel)
			out := filepath.Join(t.TempDir(), "out")
			_, err := fetchWithin(t, ctx, FetchOptions{Source: p, OutputDir: out})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("output left: %v", err)
			}
		})
	}
}

// lineOf returns a JSONL line of exactly n bytes (newline included) whose
// context is made of ASCII and multi-byte text.
func lineOf(n int) string {
	const head, tail = `{"context":"`, `","question":"q?","answer":"a"}` + "\n"
	body := n - len(head) - len(tail)
	var b strings.Builder
	for b.Len() < body {
		if body-b.Len() >= 3 && b.Len()%7 == 0 {
			b.WriteString("é ")
		} else {
			b.WriteByte('w')
		}
	}
	return head + b.String() + tail
}

// Property over record sizes: with --max-line-bytes L, a line of at most
// L bytes is fetched whole and unchanged, and a longer one fails the step
// with ErrLineTooLong; in JSONL, CSV and JSON arrays alike.
func TestFetchMaxLineBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	const limit = 200_000 // above the readers' 64 KiB buffers
	dir := t.TempDir()
	for i := 0; i < 12; i++ {
		size := limit - 3 + r.IntN(7) // around the limit, both sides
		if i%4 == 0 {
			size = 80 + r.IntN(3*limit) // anywhere
		}
		line := lineOf(size)
		var rec map[string]string
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		small := lineOf(120)
		for _, format := range []Format{FormatJSONL, FormatCSV, FormatJSON} {
			var content string
			switch format {
			case FormatJSONL:
				content = small + line + small
			case FormatCSV: // the record is the line's context field: size-ish bytes
				content = "context,question,answer\n" + fmt.Sprintf("%s,q?,a\n", strings.Repeat("w", size-6)) + "c,q,a\n"
			case FormatJSON:
				content = "[" + strings.TrimSuffix(small, "\n") + ",\n" + strings.TrimSuffix(line, "\n") + "]"
			}
			src := filepath.Join(dir, fmt.Sprintf("%d.%s", i, format))
			if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, fmt.Sprintf("out-%d-%s", i, format))
			m, err := Fetch(context.Background(), FetchOptions{Source: src, OutputDir: out, MaxLineBytes: limit})
			recordSize := size
			if format == FormatJSON {
				recordSize = size - 1 // no newline inside the array
			}
			if recordSize > limit {
				if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), "--max-line-bytes") {
					t.Fatalf("%s, %d-byte record over %d: err = %v, want ErrLineTooLong", format, recordSize, limit, err)
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Fatalf("%s: output left: %v", format, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s, %d-byte record within %d: %v", format, recordSize, limit, err)
			}
			if format == FormatCSV {
				if m.RowsWritten != 2 {
					t.Fatalf("csv: %d records", m.RowsWritten)
				}
				continue
			}
			got := readBigRecords(t, out)
			if len(got) != 3-btoi(format == FormatJSON) || !reflect.DeepEqual(got[1], rec) {
				t.Fatalf("%s, %d-byte record: not fetched unchanged (%d records)", format, size, len(got))
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readBigRecords reads data.jsonl without bufio.Scanner's 64 KiB line limit.
func readBigRecords(t *testing.T, dir string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, RecordsDataFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var m map[string]string
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// Rows that are not valid UTF-8 are skipped and counted, never written with
// U+FFFD in place of their bytes; a JSON document holding the rows is
// refused whole.
func TestFetchInvalidUTF8(t *testing.T) {
	dir := t.TempDir()
	good := `{"context":"Paris is in France.","question":"Where is Paris?","answer":"France"}`
	for name, content := range map[string]string{
		"rows.jsonl": good + "\n" + `{"context":"caf` + "\xe9" + `","question":"q","answer":"a"}` + "\n" + good + "\n",
		"rows.csv":   "context,question,answer\nParis is in France.,Where is Paris?,France\ncaf\xe9,q,a\nc,q,a\n",
		"rows.json":  "[" + good + `,{"context":"c","question":"` + "\xff" + `?","answer":"a"},` + good + "]",
	} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(dir, name)
			os.WriteFile(src, []byte(content), 0o644)
			out := filepath.Join(dir, "out-"+name)
			m, err := Fetch(context.Background(), FetchOptions{Source: src, OutputDir: out, MaxBadRows: mustLimit(t, "1")})
			if err != nil {
				t.Fatal(err)
			}
			if m.RowsWritten != 2 || m.RowsSkipped != 1 || m.SkippedByReason[SkipInvalidUTF8] != 1 {
				t.Fatalf("written %d, skipped %v; want 2 and one %q", m.RowsWritten, m.SkippedByReason, SkipInvalidUTF8)
			}
			data, _ := os.ReadFile(filepath.Join(out, RecordsDataFile))
			if bytes.Contains(data, []byte("\ufffd")) || bytes.Contains(data, []byte(`\ufffd`)) {
				t.Fatalf("U+FFFD written: %s", data)
			}
		})
	}
	src := filepath.Join(dir, "doc.json")
	os.WriteFile(src, []byte(`{"data":[`+good+`,{"context":"c","question":"`+"\xff"+`","answer":"a"}]}`), 0o644)
	_, err := Fetch(context.Background(), FetchOptions{Source: src, OutputDir: filepath.Join(dir, "doc")})
	if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Fatalf("err = %v, want ErrBadFile naming invalid UTF-8", err)
	}
}

// The writer's pieces-at-a-time encoding gives json.Encoder's bytes.
func TestRecordsWriterMatchesEncoder(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	alphabet := []string{"a", "é", "東", "🙂", "\"", "\\", "\n", "\t", "\x00", "\x1f", "<", ">", "&", "\u2028", "\u2029", "\x7f", "\xff", "\xe2\x82"}
	dir := t.TempDir()
	for i := 0; i < 6; i++ {
		var recs []Record
		for j := 0; j < 2; j++ {
			s := func() string {
				var b strings.Builder
				n := r.IntN(2*stringPiece + 100)
				for b.Len() < n {
					b.WriteString(alphabet[r.IntN(len(alphabet))])
				}
				return b.String()
			}
			recs = append(recs, Record{Context: s(), Question: s(), Answer: s(), Text: s()})
		}
		for _, task := range []Task{TaskQA, TaskLM} {
			out := filepath.Join(dir, fmt.Sprintf("%d-%s", i, task))
			w, err := CreateRecords(out, task)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			for _, rec := range recs {
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				enc.Encode(rec.line(task))
			}
			if err := w.Commit(&Metadata{Task: task}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(out, RecordsDataFile))
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("task %s: data.jsonl differs from json.Encoder's (%d vs %d bytes)", task, len(got), len(want.Bytes()))
			}
		}
	}
}

// FuzzDecodeValue: the decoding that skips json.Decoder's buffer gives what
// json.Decoder gives, and accepts and refuses the same lines.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{`{"a":"b","n":1.50,"t":true,"z":null,"o":{"x":[1,"y"]}}`, `{"a":1} }`, `{"a":1}]`, `null`, `[1,2]`, `"s"`,
		`{"a":"\u00e9\ud83d\ude42","a":2}`, `  {"k" : 12345678901234567890 }  `, `{"a":1}{"b":2}`, `{"a":tru}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := decodeValue(data)
		want, wantErr := decodeStream(data)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: err %v, json.Decoder %v", data, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %#v, json.Decoder %#v", data, got, want)
		}
	})
}
