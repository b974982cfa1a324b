package report_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/modelcard"
	"github.com/kfllm/kfllm/internal/report"
)

// TestWriteCardAssets checks that the curves land where the model card that
// upload writes links them (internal/modelcard).
func TestWriteCardAssets(t *testing.T) {
	model := copyRun(t)
	if err := report.WriteCardAssets(model); err != nil {
		t.Fatal(err)
	}
	r, _ := report.Load(model)
	if got, err := os.ReadFile(filepath.Join(model, report.CurvesFile)); err != nil || string(got) != string(report.SVG(r.Log)) {
		t.Fatalf("%s: %v", report.CurvesFile, err)
	}
	if report.CurvesFile != modelcard.CurvesFile {
		t.Fatalf("report writes %s, the model card links %s", report.CurvesFile, modelcard.CurvesFile)
	}
	card, err := modelcard.Render(model, modelcard.Info{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(card), "![Training curves]("+report.CurvesFile+")") {
		t.Errorf("model card does not show the curves:\n%s", card)
	}

	// No training log: nothing to draw, not an error.
	bare := t.TempDir()
	write(t, filepath.Join(bare, report.MetricsFile), `{"train_loss": 1}`)
	if err := report.WriteCardAssets(bare); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bare, report.CurvesFile)); err == nil {
		t.Error("curves drawn without a training log")
	}
}

// copyRun copies testdata/run (a QA fine-tuning's log and metrics) to a
// temporary model directory.
func copyRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{report.LogFile, report.MetricsFile} {
		b, err := os.ReadFile(filepath.Join("testdata", "run", f))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, f), string(b))
	}
	return dir
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
