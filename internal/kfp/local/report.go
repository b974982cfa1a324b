package local

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/kfllm/kfllm/internal/report"
)

// writeReports ends a run with its training, where `pipeline local` users
// look: for each output directory of a task that ran (or came from the
// cache) holding a training log or metrics, the evaluation table and a loss
// sparkline, and the HTML report written to RUNDIR/TASK-report.html with its
// path. A report that cannot be drawn is a note, not a failed run.
func writeReports(w io.Writer, res *Result) {
	for _, t := range res.Tasks {
		if t.Status != Succeeded && t.Status != Cached {
			continue
		}
		names := make([]string, 0, len(t.Outputs))
		for n := range t.Outputs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			dir := t.Outputs[n]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				continue
			}
			r, err := report.Load(dir)
			if errors.Is(err, fs.ErrNotExist) {
				continue // not a model directory
			}
			fmt.Fprintf(w, "\n%s %s:\n", t.Name, n)
			if err == nil {
				err = r.Summary(w, filepath.Join(res.Dir, t.Name+"-report.html"))
			}
			if err != nil {
				fmt.Fprintf(w, "note: no training report: %v\n", err)
			}
		}
	}
}
