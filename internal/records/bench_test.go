package records

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

type benchAnswers struct {
	Text        []string `parquet:"text,list" json:"text"`
	AnswerStart []int32  `parquet:"answer_start,list" json:"answer_start"`
}

type benchRow struct {
	ID       string       `parquet:"id" json:"id"`
	Context  string       `parquet:"context" json:"context"`
	Question string       `parquet:"question" json:"question"`
	Answers  benchAnswers `parquet:"answers" json:"answers"`
}

func benchRows(n int) []benchRow {
	ctx := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 16) // ~700 bytes, a SQuAD-sized paragraph
	rows := make([]benchRow, n)
	for i := range rows {
		rows[i] = benchRow{ID: fmt.Sprint(i), Context: ctx, Question: fmt.Sprintf("What does fox %d jump over?", i),
			Answers: benchAnswers{Text: []string{"the lazy dog"}, AnswerStart: []int32{31}}}
	}
	return rows
}

// BenchmarkReadRecords measures rows/s through reader + default mapping
// for 20k SQuAD-like rows in JSONL and in Parquet (written by parquet-go).
func BenchmarkReadRecords(b *testing.B) {
	const n = 20_000
	rows := benchRows(n)
	dir := b.TempDir()
	jl := filepath.Join(dir, "train.jsonl")
	f, _ := os.Create(jl)
	enc := json.NewEncoder(f)
	for _, r := range rows {
		enc.Encode(r)
	}
	f.Close()
	pq := filepath.Join(dir, "train.parquet")
	if err := parquet.WriteFile(pq, rows); err != nil {
		b.Fatal(err)
	}
	m, _ := NewMapping(TaskQA, nil)
	for _, path := range []string{jl, pq} {
		st, _ := os.Stat(path)
		b.Run(filepath.Ext(path)[1:], func(b *testing.B) {
			b.SetBytes(st.Size())
			for b.Loop() {
				got := 0
				err := ReadRows(path, FormatAuto, ReadOptions{}, func(row any, bad string) error {
					if _, skip := m.Extract(row); skip == "" && bad == "" {
						got++
					}
					return nil
				})
				if err != nil || got != n {
					b.Fatalf("%d rows, %v", got, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
