package modelcard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/report"
)

// TestRenderEvalTable: the card of a QA fine-tuning shows the same
// evaluation table as the KFP run (report.Markdown), the full metrics kept
// below it, folded.
func TestRenderEvalTable(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../report/testdata/run/metrics.json")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, MetricsFile), string(b))
	card, err := Render(dir, Info{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Load(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(card)
	want := "## Results\n\n" + report.Markdown(r.Metrics) + "\n<details><summary>All metrics</summary>\n\n| Metric | Value |"
	if !strings.Contains(s, want) {
		t.Errorf("card lacks the evaluation table then the folded metrics:\n%s", s)
	}
	for _, line := range []string{"| After fine-tuning | 63.3 | 74.9 |", "| eval_loss | 0.635174 |"} {
		if !strings.Contains(s, line) {
			t.Errorf("card lacks %q", line)
		}
	}
}
