package shards

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/prompt"
	"github.com/kfllm/kfllm/internal/records"
	"github.com/kfllm/kfllm/internal/tokenizer"
)

func testTokenizerDir(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	return filepath.Join(base, name)
}

// writeRecords makes a Records artifact with the given data.jsonl lines.
func writeRecords(t *testing.T, task records.Task, lines []string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, records.RecordsDataFile), []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(records.Metadata{Source: "test", Task: task})
	if err := os.WriteFile(filepath.Join(dir, records.RecordsMetadataFile), m, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func qaLines(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		b, _ := json.Marshal(map[string]string{
			"context":  fmt.Sprintf("Item %d costs %d euros and is sold in shop %c.", i, 10+i, 'A'+rune(i%26)),
			"question": fmt.Sprintf("How much does item %d cost?", i),
			"answer":   fmt.Sprintf("%d euros", 10+i),
		})
		out = append(out, string(b)+"\n")
	}
	return out
}

func TestTokenizeQA(t *testing.T) {
	in := writeRecords(t, records.TaskQA, qaLines(40))
	for _, name := range []string{"gpt2", "llama2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "shards")
			tokDir := testTokenizerDir(t, name)
			meta, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: tokDir, OutputDir: out, MaxLength: 128, EvalFraction: 0.25, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			if meta.Train.Rows != 30 || meta.Eval.Rows != 10 || meta.Counts.Examples != 40 {
				t.Fatalf("rows train %d eval %d examples %d, want 30/10/40", meta.Train.Rows, meta.Eval.Rows, meta.Counts.Examples)
			}
			tok, err := tokenizer.Load(filepath.Join(out, ShardsTokenizerDir))
			if err != nil {
				t.Fatalf("tokenizer/ does not load: %v", err)
			}
			orig, _ := tokenizer.Load(tokDir)
			if tok.SHA256() != orig.SHA256() || tok.SHA256() != meta.Tokenizer.SHA256 {
				t.Fatalf("tokenizer sha256 %s (copy) %s (source) %s (metadata)", tok.SHA256(), orig.SHA256(), meta.Tokenizer.SHA256)
			}
			pad, hasPad := tok.Pad()
			eos, _ := tok.EOS()
			if !hasPad {
				pad = eos
			}
			if meta.Tokenizer.PadID != pad {
				t.Fatalf("metadata pad id %d, want %d", meta.Tokenizer.PadID, pad)
			}
			seen := map[string]bool{}
			for _, f := range []string{TrainShardFile, EvalShardFile} {
				s, err := ReadShard(filepath.Join(out, f))
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < s.N; i++ {
					ids, labels, mask := s.Row(i)
					n := 0
					for n < s.L && mask[n] == 1 {
						n++
					}
					for k := n; k < s.L; k++ {
						if mask[k] != 0 || labels[k] != IgnoreIndex || ids[k] != int32(pad) {
							t.Fatalf("%s row %d pos %d: padding is id %d label %d mask %d", f, i, k, ids[k], labels[k], mask[k])
						}
					}
					want := make([]int, n)
					for k := range want {
						want[k] = int(ids[k])
					}
					text, _ := tok.Decode(want, true)
					if seen[text] {
						t.Fatalf("example %q appears twice", text)
					}
					seen[text] = true
					// Same ids as prompt.Build on the same record.
					q := text[strings.Index(text, "Question: ")+10 : strings.Index(text, "\nAnswer:")]
					var item int
					fmt.Sscanf(q, "How much does item %d cost?", &item)
					ex, err := prompt.Build(tok, prompt.Record{
						Context:  fmt.Sprintf("Item %d costs %d euros and is sold in shop %c.", item, 10+item, 'A'+rune(item%26)),
						Question: q, Answer: fmt.Sprintf("%d euros", 10+item)}, 128)
					if err != nil {
						t.Fatal(err)
					}
					for k := range ex.InputIDs {
						if int(ids[k]) != ex.InputIDs[k] || int(labels[k]) != ex.Labels[k] {
							t.Fatalf("%s row %d differs from prompt.Build at %d", f, i, k)
						}
					}
				}
			}
			if len(seen) != 40 {
				t.Fatalf("%d distinct examples, want 40", len(seen))
			}
		})
	}
}

func TestTokenizeIsDeterministic(t *testing.T) {
	in := writeRecords(t, records.TaskQA, qaLines(30))
	run := func(seed uint64, workers int) ([]byte, []byte) {
		out := filepath.Join(t.TempDir(), "o")
		if _, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "gpt2"),
			OutputDir: out, EvalFraction: 0.2, Seed: seed, Workers: workers}); err != nil {
			t.Fatal(err)
		}
		tr, _ := os.ReadFile(filepath.Join(out, TrainShardFile))
		ev, _ := os.ReadFile(filepath.Join(out, EvalShardFile))
		return tr, ev
	}
	a1, b1 := run(1, 1)
	a2, b2 := run(1, 4)
	if !bytes.Equal(a1, a2) || !bytes.Equal(b1, b2) {
		t.Fatal("same seed, different worker count: different shards")
	}
	a3, _ := run(2, 2)
	if bytes.Equal(a1, a3) {
		t.Fatal("a different seed gave the same split")
	}
}

func TestTokenizeTruncationAndSkips(t *testing.T) {
	long := strings.Repeat("The shop also sells bread, milk and cheese. ", 40)
	lines := []string{
		`{"context":"` + long + `","question":"What does the shop sell?","answer":"Bread."}` + "\n",
		`{"context":"short","question":"` + strings.Repeat("why ", 100) + `","answer":"no"}` + "\n",
		`{"context":"c","question":"q?","answer":"a"}` + "\n",
	}
	in := writeRecords(t, records.TaskQA, lines)
	meta, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "llama2"),
		OutputDir: filepath.Join(t.TempDir(), "o"), MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	c := meta.Counts
	if c.RecordsRead != 3 || c.Examples != 2 || c.Truncated != 1 || c.SkippedTooLong != 1 {
		t.Fatalf("counts %+v: want 3 read, 2 examples, 1 truncated, 1 too long", c)
	}
	if meta.Train.Length > 64 {
		t.Fatalf("row length %d > max length 64", meta.Train.Length)
	}
}

func TestTokenizeLMPack(t *testing.T) {
	var lines []string
	total := 0
	tok, err := tokenizer.Load(testTokenizerDir(t, "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		text := fmt.Sprintf("Document %d. %s", i, strings.Repeat("Some words here. ", i+1))
		ids, _ := tok.Encode(text, true)
		total += len(ids) + 1 // EOS
		b, _ := json.Marshal(map[string]string{"text": text})
		lines = append(lines, string(b)+"\n")
	}
	in := writeRecords(t, records.TaskLM, lines)
	out := filepath.Join(t.TempDir(), "o")
	meta, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "qwen3"),
		OutputDir: out, MaxLength: 32, Pack: true, EvalFraction: 0.1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Train.Length != 32 || meta.Eval.Length != 32 {
		t.Fatalf("packed lengths %d/%d, want 32", meta.Train.Length, meta.Eval.Length)
	}
	if got := meta.Train.Tokens + meta.Eval.Tokens; got != int64(total) {
		t.Fatalf("packed %d tokens, the documents have %d", got, total)
	}
	if meta.Train.Labelled != meta.Train.Tokens {
		t.Fatalf("lm: %d of %d tokens labelled, want all", meta.Train.Labelled, meta.Train.Tokens)
	}
	s, err := ReadShard(filepath.Join(out, TrainShardFile))
	if err != nil {
		t.Fatal(err)
	}
	full := 0
	for i := 0; i < s.N; i++ {
		_, _, mask := s.Row(i)
		if mask[s.L-1] == 1 {
			full++
		}
	}
	if full < s.N-1 {
		t.Fatalf("%d of %d packed rows are full; only the last may be short", full, s.N)
	}
}

func TestTokenizeBadInput(t *testing.T) {
	gpt2 := testTokenizerDir(t, "gpt2")
	// A tokenizer without EOS: Llama 2's tokenizer.json without its config.
	noEOS := t.TempDir()
	b, err := os.ReadFile(filepath.Join(testTokenizerDir(t, "llama2"), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(noEOS, "tokenizer.json"), b, 0o644)

	good := qaLines(3)
	cases := []struct {
		name  string
		lines []string
		tok   string
		max   string
		want  string
		errIs error
	}{
		{name: "empty dataset", lines: nil, tok: gpt2, want: "has no records"},
		{name: "missing field", lines: append(good[:2:2], `{"context":"c","question":"q"}`+"\n"), tok: gpt2, want: "line 3: missing field answer"},
		{name: "non-UTF-8", lines: append(good[:1:1], "{\"context\":\"caf\xe9\",\"question\":\"q\",\"answer\":\"a\"}\n"), tok: gpt2, want: "line 2: invalid UTF-8"},
		{name: "not JSON", lines: append(good[:1:1], "{context\n"), tok: gpt2, want: "invalid JSON"},
		{name: "not a string", lines: append(good[:1:1], `{"context":"c","question":"q","answer":42}`+"\n"), tok: gpt2, want: "field answer is not a string"},
		{name: "bad rows over a percentage", lines: append(good[:1:1], `{}`+"\n", `{}`+"\n"), tok: gpt2, max: "50%", want: "2 bad of 3 records"},
		{name: "no EOS", lines: good, tok: noEOS, errIs: prompt.ErrNoEOS},
		{name: "no tokenizer", lines: good, tok: filepath.Join(t.TempDir(), "nope"), want: "no such directory"},
		{name: "hub without a client", lines: good, tok: "meta-llama/Llama-2-7b", errIs: hub.ErrNoClient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := writeRecords(t, records.TaskQA, c.lines)
			out := filepath.Join(t.TempDir(), "o")
			_, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: c.tok, OutputDir: out, MaxBadRows: c.max})
			if err == nil {
				t.Fatal("no error")
			}
			if c.errIs != nil && !errors.Is(err, c.errIs) {
				t.Fatalf("err = %v, want %v", err, c.errIs)
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("output left behind after failure (stat: %v)", serr)
			}
		})
	}
}

func TestTokenizeCountsBadRowsWhenAllowed(t *testing.T) {
	lines := append(qaLines(4), `{"context":"c","question":"q"}`+"\n", "\xff\xfe\n")
	in := writeRecords(t, records.TaskQA, lines)
	meta, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "gpt2"),
		OutputDir: filepath.Join(t.TempDir(), "o"), MaxBadRows: "2"})
	if err != nil {
		t.Fatal(err)
	}
	c := meta.Counts
	if c.SkippedBad != 2 || c.SkippedByReason["missing field answer"] != 1 || c.SkippedByReason["invalid UTF-8"] != 1 || c.Examples != 4 {
		t.Fatalf("counts %+v", c)
	}
}

func TestTokenizeRefusesNonEmptyOutput(t *testing.T) {
	in := writeRecords(t, records.TaskQA, qaLines(2))
	out := t.TempDir()
	keep := filepath.Join(out, "precious.txt")
	os.WriteFile(keep, []byte("x"), 0o644)
	_, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "gpt2"), OutputDir: out})
	if !errors.Is(err, errOutputNotEmpty) {
		t.Fatalf("err = %v, want not empty", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatal("existing file removed")
	}
}

func TestTokenizeIntoEmptyExistingDir(t *testing.T) {
	in := writeRecords(t, records.TaskQA, qaLines(3))
	out := t.TempDir()
	if _, err := Tokenize(context.Background(), TokenizeOptions{InputDir: in, Tokenizer: testTokenizerDir(t, "gpt2"), OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "eval.safetensors,metadata.json,tokenizer,train.safetensors" {
		t.Fatalf("output holds %s", got)
	}
	if _, err := ReadShardsMetadata(out); err != nil {
		t.Fatal(err)
	}
}

func TestWriteShardsReadShards(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	train := []ShardExample{ExampleOf([]int{5, 6, 7, 2}, []int{-100, -100, 7, 2}), ExampleOf([]int{9, 2}, []int{9, 2})}
	eval := []ShardExample{ExampleOf([]int{4, 4, 2}, []int{-100, 4, 2})}
	if err := WriteShards(dir, train, eval, 0, 0, &ShardsMetadata{Task: records.TaskQA, MaxLength: 8}); err != nil {
		t.Fatal(err)
	}
	tr, ev, meta, err := ReadShards(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tr.N != 2 || tr.L != 4 || ev.N != 1 || ev.L != 3 || meta.Train.Labelled != 4 || meta.Eval.Tokens != 3 {
		t.Fatalf("train %dx%d eval %dx%d meta %+v %+v", tr.N, tr.L, ev.N, ev.L, meta.Train, meta.Eval)
	}
	want := []int32{5, 6, 7, 2, 9, 2, 0, 0}
	wantLabels := []int32{-100, -100, 7, 2, 9, 2, -100, -100}
	wantMask := []int32{1, 1, 1, 1, 1, 1, 0, 0}
	for i := range want {
		if tr.InputIDs[i] != want[i] || tr.Labels[i] != wantLabels[i] || tr.AttentionMask[i] != wantMask[i] {
			t.Fatalf("train = %v / %v / %v", tr.InputIDs, tr.Labels, tr.AttentionMask)
		}
	}
	// A corrupt file is an error, not a panic.
	os.WriteFile(filepath.Join(dir, EvalShardFile), []byte("garbage"), 0o644)
	if _, _, _, err := ReadShards(dir); err == nil {
		t.Fatal("read a corrupt shard")
	}
}
