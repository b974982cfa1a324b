package records

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordsWriterCommitAndAbort(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "records")
	w, err := CreateRecords(out, TaskQA)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Record{Context: "c <b>", Question: "q", Answer: "a"})
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("output exists before Commit")
	}
	if err := w.Commit(&Metadata{Source: "s", Task: TaskQA, RowsWritten: 1}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(out, RecordsDataFile))
	if string(data) != `{"context":"c <b>","question":"q","answer":"a"}`+"\n" {
		t.Errorf("data.jsonl = %q", data)
	}
	if m, err := ReadMetadata(out); err != nil || m.RowsWritten != 1 {
		t.Errorf("metadata = %+v, %v", m, err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("leftovers beside the output: %v", entries)
	}

	// Abort leaves nothing.
	w2, _ := CreateRecords(filepath.Join(parent, "other"), TaskLM)
	w2.Write(Record{Text: "t"})
	w2.Abort()
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("abort left %v", entries)
	}
}

func TestRecordsWriterIntoExistingDirs(t *testing.T) {
	// An empty directory prepared by the orchestrator is replaced.
	empty := filepath.Join(t.TempDir(), "out")
	os.Mkdir(empty, 0o755)
	w, _ := CreateRecords(empty, TaskLM)
	w.Write(Record{Text: "x"})
	if err := w.Commit(&Metadata{Task: TaskLM}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(empty); err != nil {
		t.Fatal(err)
	}
	// A directory holding an earlier run's artifact is updated in place,
	// metadata.json last.
	w, _ = CreateRecords(empty, TaskLM)
	w.Write(Record{Text: "new"})
	if err := w.Commit(&Metadata{Task: TaskLM, Source: "second"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(empty, RecordsDataFile))
	m, _ := ReadMetadata(empty)
	if !strings.Contains(string(data), "new") || m.Source != "second" {
		t.Errorf("second commit: data %q, metadata %+v", data, m)
	}
}
