package records

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// readAll maps every row of a testdata file with the default QA mapping.
func readAll(t *testing.T, path string, f Format, split string) ([]Record, map[string]int) {
	t.Helper()
	m, _ := NewMapping(TaskQA, nil)
	var recs []Record
	skips := map[string]int{}
	err := ReadRows(path, f, ReadOptions{Split: split}, func(row any, bad string) error {
		if bad == "" {
			var rec Record
			if rec, bad = m.Extract(row); bad == "" {
				recs = append(recs, rec)
				return nil
			}
		}
		skips[bad]++
		return nil
	})
	if err != nil {
		t.Fatalf("ReadRows(%s): %v", path, err)
	}
	return recs, skips
}

// The same five SQuAD rows are stored as JSONL, as SQuAD's own nested JSON
// and as Parquet written by pyarrow (scripts/testdata/make_parquet.py); all
// three must give the same records.
func TestSQuADFormatsAgree(t *testing.T) {
	jsonl, jsonlSkips := readAll(t, "testdata/squad.jsonl", FormatAuto, "")
	native, nativeSkips := readAll(t, "testdata/squad-v1.1.json", FormatAuto, "")
	pq, pqSkips := readAll(t, "testdata/squad.parquet", FormatAuto, "")
	if len(native) != 4 || native[0].Answer != "a golden statue of the Virgin Mary" || native[2].Answer != "in the late 1990s" {
		t.Fatalf("native SQuAD records = %+v", native)
	}
	if !reflect.DeepEqual(jsonl[:4], native) || !reflect.DeepEqual(pq[:4], native) {
		t.Errorf("formats disagree:\njsonl %+v\nnative %+v\nparquet %+v", jsonl, native, pq)
	}
	// The unanswerable (SQuAD v2) row is skipped everywhere; JSONL also has a
	// broken line, and both JSONL and Parquet a row with an empty question.
	if !reflect.DeepEqual(nativeSkips, map[string]int{"missing:answer": 1}) {
		t.Errorf("native skips = %v", nativeSkips)
	}
	if !reflect.DeepEqual(jsonlSkips, map[string]int{"missing:answer": 1, SkipMalformed: 1, "empty:question": 1}) {
		t.Errorf("jsonl skips = %v", jsonlSkips)
	}
	if !reflect.DeepEqual(pqSkips, map[string]int{"missing:answer": 1, "empty:question": 1}) {
		t.Errorf("parquet skips = %v", pqSkips)
	}
	if pq[3].Context != "Kublai Khan (Chinese: 忽必烈) was the fifth Khagan of the Mongol Empire." {
		t.Errorf("non-ASCII text changed: %q", pq[3].Context)
	}
}

func TestCSV(t *testing.T) {
	recs, skips := readAll(t, "testdata/flat.csv", FormatAuto, "")
	want := []Record{
		{Context: "The Eiffel Tower is in Paris, France.", Question: "Where is the Eiffel Tower?", Answer: "Paris"},
		{Context: "Water boils at 100 degrees Celsius at sea level.", Question: "At what temperature does water boil, in Celsius?", Answer: "100"},
		{Context: "Multi\nline context", Question: "What spans lines?", Answer: "this row"},
	}
	if !reflect.DeepEqual(recs, want) || skips[SkipMalformed] != 1 {
		t.Errorf("records = %+v, skips = %v", recs, skips)
	}
}

func TestJSONArrayAlpaca(t *testing.T) {
	recs, skips := readAll(t, "testdata/alpaca.json", FormatAuto, "")
	if len(recs) != 2 || recs[0] != (Record{Question: "Give the capital of France.", Answer: "Paris"}) ||
		recs[1].Context != "Go is a statically typed language designed at Google." || skips["empty:answer"] != 1 {
		t.Errorf("records = %+v, skips = %v", recs, skips)
	}
}

func TestJSONObjectBySplit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "splits.json")
	os.WriteFile(p, []byte(`{"train":[{"context":"c1","question":"q1","answer":"a1"}],"validation":[{"context":"c2","question":"q2","answer":"a2"}]}`), 0o644)
	recs, _ := readAll(t, p, FormatJSON, "validation")
	if len(recs) != 1 || recs[0].Answer != "a2" {
		t.Errorf("records = %+v", recs)
	}
	err := ReadRows(p, FormatJSON, ReadOptions{}, func(any, string) error { return nil })
	if err == nil {
		t.Error("two lists and no split: want an error naming them")
	}
}

func TestGzipJSONL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data.jsonl.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	zw.Write([]byte("{\"context\":\"c\",\"question\":\"q\",\"answer\":\"a\"}\n"))
	zw.Close()
	f.Close()
	recs, _ := readAll(t, p, FormatAuto, "")
	if len(recs) != 1 {
		t.Errorf("records = %+v", recs)
	}
}

func TestBadFilesFail(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"broken.parquet": "PAR1 not really parquet PAR1",
		"broken.json":    `[{"context":"c"`,
		"scalar.json":    `42`,
		"quote.csv":      "context,question,answer\n\"unterminated,q,a\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if err := ReadRows(p, FormatAuto, ReadOptions{}, func(any, string) error { return nil }); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
