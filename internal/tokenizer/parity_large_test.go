package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestParityLargeCorpus compares ids with Python's on a large corpus when
// KFLLM_PARITY_CORPUS (JSON lines {"text": ...}) and KFLLM_PARITY_IDS (a
// directory of <name>.ids.jsonl from bench/tokenizer_parity_large.py) are
// set; bench/tokenizer_parity_large.sh sets both. It is skipped otherwise:
// the committed golden corpus (TestParityWithHuggingFace) always runs.
func TestParityLargeCorpus(t *testing.T) {
	corpus, idsDir := os.Getenv("KFLLM_PARITY_CORPUS"), os.Getenv("KFLLM_PARITY_IDS")
	if corpus == "" || idsDir == "" {
		t.Skip("KFLLM_PARITY_CORPUS / KFLLM_PARITY_IDS not set (bench/tokenizer_parity_large.sh)")
	}
	var texts []string
	readLines(t, corpus, func(b []byte) {
		var r struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, r.Text)
	})
	for _, name := range testTokenizers {
		p := filepath.Join(idsDir, name+".ids.jsonl")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			got, err := loadTest(t, name).EncodeBatch(texts, true)
			if err != nil {
				t.Fatal(err)
			}
			i, same := 0, 0
			readLines(t, p, func(b []byte) {
				var want []int
				if err := json.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				if i < len(got) && slices.Equal(want, got[i]) {
					same++
				} else if i < len(got) {
					t.Errorf("text %d %q: ids differ", i, truncate(texts[i], 80))
				}
				i++
			})
			if i != len(texts) {
				t.Fatalf("%d id lines for %d texts", i, len(texts))
			}
			t.Logf("%s: ids identical on %d/%d texts", name, same, len(texts))
		})
	}
}

func readLines(t *testing.T, path string, fn func([]byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
