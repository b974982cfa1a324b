package report

import (
	"fmt"
	"html"
	"strings"
)

// HTML renders a self-contained page (no script, no external resource, so it
// shows inside the KFP UI's sandboxed frame and from a file): a headline of
// the run, the curves of [SVG] inline and the tables of [Markdown]. It is the
// content of finetune's system.HTML artifact.
func HTML(l Log, m *Metrics) []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Training report</title>
<style>
body { margin: 0; background: #FFFFFF; color: #222222; font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 800px; margin: 0 auto; padding: 20px 20px 28px; }
h1 { font-size: 20px; margin: 0 0 4px; }
.lede { margin: 0 0 14px; color: #444444; }
figure { margin: 0 0 12px; }
figure svg { display: block; max-width: 100%; height: auto; border: 1px solid #E6E6E6; border-radius: 6px; }
figcaption { margin-top: 6px; font-size: 12px; color: #555555; }
.tables { display: flex; flex-wrap: wrap; gap: 16px 32px; align-items: flex-start; }
table { border-collapse: collapse; }
caption { text-align: left; font-weight: 600; padding-bottom: 6px; }
th, td { padding: 4px 12px 4px 0; border-bottom: 1px solid #E6E6E6; text-align: left; }
th { font-weight: 600; border-bottom: 2px solid #BBBBBB; }
.num { text-align: right; font-variant-numeric: tabular-nums; padding-left: 16px; padding-right: 0; }
footer { margin-top: 18px; font-size: 12px; color: #555555; }
</style>
</head>
<body>
<main>
<h1>Training report</h1>
`)
	if h := headline(l, m); h != "" {
		fmt.Fprintf(&b, "<p class=\"lede\">%s</p>\n", html.EscapeString(h))
	}
	b.WriteString("<figure>\n")
	b.Write(SVG(l))
	fmt.Fprintf(&b, "<figcaption>%s</figcaption>\n</figure>\n", caption(l))
	if ts := tables(m); len(ts) > 0 {
		b.WriteString("<div class=\"tables\">\n")
		for _, t := range ts {
			t.html(&b)
		}
		b.WriteString("</div>\n")
	} else {
		fmt.Fprintf(&b, "<p>%s</p>\n", noMetrics)
	}
	fmt.Fprintf(&b, "<footer>Drawn by kfllm from %s and %s.</footer>\n", LogFile, MetricsFile)
	b.WriteString("</main>\n</body>\n</html>\n")
	return []byte(b.String())
}

// headline sums the run up in one sentence: steps, loss from first to last,
// eval loss, QA before and after.
func headline(l Log, m *Metrics) string {
	var parts []string
	steps := 0
	if n := len(l.Steps); n > 0 {
		steps = l.Steps[n-1].Step
	}
	if m != nil && m.Steps != nil {
		steps = *m.Steps
	}
	if steps > 0 {
		parts = append(parts, fmt.Sprintf("%d steps", steps))
	}
	if ls := l.Losses(); len(ls) > 1 {
		parts = append(parts, fmt.Sprintf("train loss %.3f → %.3f", ls[0], ls[len(ls)-1]))
	}
	if m != nil && m.EvalLoss != nil {
		s := fmt.Sprintf("eval loss %.3f", *m.EvalLoss)
		if m.EvalPerplexity != nil {
			s += fmt.Sprintf(" (perplexity %.2f)", *m.EvalPerplexity)
		}
		parts = append(parts, s)
	} else if n := len(l.Evals); n > 0 {
		parts = append(parts, fmt.Sprintf("eval loss %.3f", l.Evals[n-1].Loss))
	}
	if m != nil && m.QA != nil && m.QA.After != nil {
		if b := m.QA.Before; b != nil {
			parts = append(parts, fmt.Sprintf("QA exact match %.1f%% → %.1f%%", 100*b.ExactMatch, 100*m.QA.After.ExactMatch))
		} else {
			parts = append(parts, fmt.Sprintf("QA exact match %.1f%%", 100*m.QA.After.ExactMatch))
		}
	}
	return strings.Join(parts, " · ")
}

// caption says what the figure shows, naming only the curves it has.
func caption(l Log) string {
	var parts []string
	if n := len(l.Losses()); n >= 20 {
		parts = append(parts, "training loss at each step (faint) and smoothed (bold)")
	} else if n > 0 {
		parts = append(parts, "training loss at each step")
	}
	if len(l.Evals) > 0 {
		parts = append(parts, "evaluation loss at each evaluation (dots)")
	}
	for _, s := range l.Steps {
		if finite(s.LearningRate) {
			parts = append(parts, "the learning-rate schedule")
			break
		}
	}
	if len(parts) == 0 {
		return "Nothing was logged."
	}
	c := parts[0]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			c += " and " + p
		} else {
			c += ", " + p
		}
	}
	return strings.ToUpper(c[:1]) + c[1:] + "."
}
