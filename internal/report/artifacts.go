package report

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// noMetrics stands in for a table of nothing.
const noMetrics = "No evaluation metrics were recorded."

// CurvesFile is the image of the curves beside the model card; the card
// (internal/modelcard) links it when it exists.
const CurvesFile = "training_curves.svg"

// WriteArtifacts draws the run in modelDir into finetune's KFP output
// artifacts: the HTML report (system.HTML) at htmlPath and the evaluation
// table (system.Markdown) at markdownPath. An empty path is skipped. Each
// file is written whole or not at all.
func WriteArtifacts(modelDir, htmlPath, markdownPath string) error {
	if htmlPath == "" && markdownPath == "" {
		return nil
	}
	r, err := Load(modelDir)
	if err != nil {
		return err
	}
	if htmlPath != "" {
		if err := writeFileAtomic(htmlPath, HTML(r.Log, r.Metrics)); err != nil {
			return fmt.Errorf("write HTML report: %w", err)
		}
	}
	if markdownPath != "" {
		md := Markdown(r.Metrics)
		if md == "" {
			md = noMetrics + "\n"
		}
		if err := writeFileAtomic(markdownPath, []byte(md)); err != nil {
			return fmt.Errorf("write evaluation table: %w", err)
		}
	}
	return nil
}

// WriteCardAssets writes modelDir/training_curves.svg, the curves the model
// card shows on the Hugging Face page. A model directory without a training
// log (or with an empty one) gets no image and no error.
func WriteCardAssets(modelDir string) error {
	r, err := Load(filepath.Join(modelDir, LogFile))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(r.Log.Steps) == 0 && len(r.Log.Evals) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(modelDir, CurvesFile), SVG(r.Log)); err != nil {
		return fmt.Errorf("write model card curves: %w", err)
	}
	return nil
}

// Text is the run for a terminal: the evaluation tables and a line with the
// loss sparkline (width characters) from first to last step.
func Text(r *Run, width int) string {
	var b strings.Builder
	for _, t := range tables(r.Metrics) {
		t.text(&b, "")
		b.WriteString("\n")
	}
	if ls := r.Log.Losses(); len(ls) > 0 {
		last := r.Log.Steps[len(r.Log.Steps)-1].Step
		fmt.Fprintf(&b, "loss %s  %.3f → %.3f over %d steps\n", Sparkline(ls, width), ls[0], ls[len(ls)-1], last)
	}
	return b.String()
}

// Summary prints the run in modelDir to w ([Text], 40 characters of
// sparkline) and, when htmlPath is not empty, writes the HTML report there
// and prints its path. A directory without training files gives an error
// wrapping fs.ErrNotExist.
func Summary(w io.Writer, modelDir, htmlPath string) error {
	r, err := Load(modelDir)
	if err != nil {
		return err
	}
	return r.Summary(w, htmlPath)
}

// Summary is [Summary] of a loaded run.
func (r *Run) Summary(w io.Writer, htmlPath string) error {
	fmt.Fprint(w, Text(r, 40))
	if htmlPath == "" {
		return nil
	}
	if err := writeFileAtomic(htmlPath, HTML(r.Log, r.Metrics)); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	if abs, err := filepath.Abs(htmlPath); err == nil {
		htmlPath = abs
	}
	fmt.Fprintf(w, "training report: %s\n", htmlPath)
	return nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so a reader never sees half a file.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
