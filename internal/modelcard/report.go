package modelcard

import (
	"path/filepath"

	"github.com/kfllm/kfllm/internal/report"
)

// evalTable is the evaluation table (loss, perplexity and, for QA, exact
// match and token F1 before and after) that the KFP UI shows for the run,
// drawn from dir/metrics.json; "" when it has none of those numbers.
func evalTable(dir string) string {
	r, err := report.Load(filepath.Join(dir, MetricsFile))
	if err != nil || r.Metrics == nil {
		return ""
	}
	return report.Markdown(r.Metrics)
}
