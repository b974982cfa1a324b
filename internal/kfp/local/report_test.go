package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trainingFinetune stands in for finetune: the fake component, then the
// training log and metrics of internal/report's fixed QA run copied into
// the output model directory, as the real finetune leaves them.
const trainingFinetune = `#!/bin/sh
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output-model-dir" ] && out="$a"; prev="$a"; done
"$(dirname "$0")/real/finetune" "$@" || exit $?
cp "$FAKE_TRAINING"/training_log.jsonl "$FAKE_TRAINING"/metrics.json "$out"/
`

// TestRunEndsWithTrainingReport runs the compiled pipeline and checks that
// the run ends with the evaluation table, the loss sparkline and the path of
// the HTML report, written into the run's directory.
func TestRunEndsWithTrainingReport(t *testing.T) {
	f := newFixture(t)
	real := filepath.Join(f.bin, "real")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.bin, "finetune"), filepath.Join(real, "finetune")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.bin, "finetune"), []byte(trainingFinetune), 0o755); err != nil {
		t.Fatal(err)
	}
	fixture, err := filepath.Abs("../../report/testdata/run")
	if err != nil {
		t.Fatal(err)
	}
	f.env = append(f.env, "FAKE_TRAINING="+fixture)
	res, out, err := f.run(t, Options{RunID: "r1"})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	htmlPath := filepath.Join(res.Dir, "finetune-report.html")
	abs, _ := filepath.Abs(htmlPath)
	summary := strings.Index(out, "run r1 summary:")
	tail := out[summary:]
	for _, want := range []string{
		"finetune output_model_dir:\n",
		"Held-out QA, 60 questions",
		"  After fine-tuning               63.3           74.9\n",
		"loss █▇",
		"6.118 → 0.543 over 240 steps\n",
		"training report: " + abs + "\n",
	} {
		if summary < 0 || !strings.Contains(tail, want) {
			t.Errorf("the run's end lacks %q:\n%s", want, tail)
		}
	}
	b, err := os.ReadFile(htmlPath)
	if err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("HTML report %s: %v", htmlPath, err)
	}
	// Outputs that are not model directories get no report.
	if strings.Contains(tail, "fetch output_dataset") || strings.Contains(tail, "note:") {
		t.Errorf("report for a non-model output:\n%s", tail)
	}
}
