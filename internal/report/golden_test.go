package report

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (and docs/training-report.png)")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (go test -update to accept) (-want +got):\n%s", p, diff)
	}
}

// TestGolden renders the fixed runs in testdata: a QA fine-tuning with
// evaluation lines and QA metrics (run/), and a language-modelling run with
// neither (lm/).
func TestGolden(t *testing.T) {
	for _, run := range []string{"run", "lm"} {
		t.Run(run, func(t *testing.T) {
			r, err := Load(filepath.Join("testdata", run))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, run+".svg", SVG(r.Log))
			golden(t, run+".md", []byte(Markdown(r.Metrics)))
			golden(t, run+".html", HTML(r.Log, r.Metrics))
			golden(t, run+".txt", []byte(Text(r, 40)))
		})
	}
}
