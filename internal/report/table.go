package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// table is a small table that renders as Markdown, HTML and plain text.
type table struct {
	caption string
	head    []string
	rows    [][]string
}

// tables are the evaluation tables of m: the run's numbers, then held-out
// QA before and after fine-tuning when the eval set is QA. Nil m gives none.
func tables(m *Metrics) []table {
	if m == nil {
		return nil
	}
	ev := table{caption: "Evaluation", head: []string{"Metric", "Value"}}
	add := func(name, v string) { ev.rows = append(ev.rows, []string{name, v}) }
	if m.EvalLoss != nil {
		add("Eval loss", fmt.Sprintf("%.4f", *m.EvalLoss))
	}
	if m.EvalPerplexity != nil {
		add("Eval perplexity", fmt.Sprintf("%.3f", *m.EvalPerplexity))
	}
	if m.TrainLoss != nil {
		add("Train loss (mean)", fmt.Sprintf("%.4f", *m.TrainLoss))
	}
	if m.Steps != nil {
		add("Steps", strconv.Itoa(*m.Steps))
	}
	if m.TrainTokens != nil {
		add("Training tokens", strconv.FormatInt(*m.TrainTokens, 10))
	}
	if m.RuntimeSeconds != nil {
		add("Training time", (time.Duration(*m.RuntimeSeconds * float64(time.Second))).Round(time.Second).String())
	}
	if m.TokensPerSec != nil {
		add("Tokens per second", fmt.Sprintf("%.0f", *m.TokensPerSec))
	}
	var out []table
	if len(ev.rows) > 0 {
		out = append(out, ev)
	}
	if m.QA == nil || (m.QA.Before == nil && m.QA.After == nil) {
		return out
	}
	n := 0
	for _, s := range []*QAScore{m.QA.Before, m.QA.After} {
		if s != nil && s.N > n {
			n = s.N
		}
	}
	qa := table{caption: fmt.Sprintf("Held-out QA, %d questions", n), head: []string{"Model", "Exact match (%)", "Token F1 (%)"}}
	pct := func(v float64) string { return fmt.Sprintf("%.1f", 100*v) }
	if s := m.QA.Before; s != nil {
		qa.rows = append(qa.rows, []string{"Before fine-tuning", pct(s.ExactMatch), pct(s.F1)})
	}
	if s := m.QA.After; s != nil {
		qa.rows = append(qa.rows, []string{"After fine-tuning", pct(s.ExactMatch), pct(s.F1)})
	}
	if b, a := m.QA.Before, m.QA.After; b != nil && a != nil {
		d := func(v float64) string { return fmt.Sprintf("%+.1f", 100*v) }
		qa.rows = append(qa.rows, []string{"Change", d(a.ExactMatch - b.ExactMatch), d(a.F1 - b.F1)})
	}
	return append(out, qa)
}

// Markdown renders the evaluation table of m (loss, perplexity, run size)
// and, when the eval set is QA, exact match and token F1 before and after
// fine-tuning, as GitHub-flavoured Markdown: the content of finetune's
// system.Markdown artifact and of the model card's results. Metrics with
// none of these fields give "".
func Markdown(m *Metrics) string {
	ts := tables(m)
	if len(ts) == 0 {
		return ""
	}
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString("\n")
		}
		t.markdown(&b)
	}
	return b.String()
}

func (t table) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "**%s**\n\n", mdCell(t.caption))
	b.WriteString("|")
	for _, h := range t.head {
		b.WriteString(" " + mdCell(h) + " |")
	}
	b.WriteString("\n|")
	for i := range t.head {
		if i == 0 {
			b.WriteString(" :--- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func (t table) html(b *strings.Builder) {
	fmt.Fprintf(b, "<table>\n<caption>%s</caption>\n<thead><tr>", html.EscapeString(t.caption))
	for i, h := range t.head {
		fmt.Fprintf(b, "<th%s>%s</th>", numClass(i), html.EscapeString(h))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, r := range t.rows {
		b.WriteString("<tr>")
		for i, c := range r {
			fmt.Fprintf(b, "<td%s>%s</td>", numClass(i), html.EscapeString(c))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n")
}

func numClass(col int) string {
	if col == 0 {
		return ""
	}
	return ` class="num"`
}

// text renders the table for a terminal, columns padded, numbers right-aligned.
func (t table) text(b *strings.Builder, indent string) {
	widths := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	fmt.Fprintf(b, "%s%s\n", indent, t.caption)
	for _, r := range append([][]string{t.head}, t.rows...) {
		b.WriteString(indent + "  ")
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("   " + pad + c)
			}
		}
		b.WriteString("\n")
	}
}

// sparkBlocks are the eight heights of a sparkline, lowest first.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws values as one line of at most width block characters
// (▁ to █), low to high between the smallest and largest finite value.
// Longer series are averaged into width buckets; a shorter one keeps one
// character a value. A non-finite value is a space; a flat series sits at
// mid height. Width 0 or no values give "".
func Sparkline(values []float64, width int) string {
	if width <= 0 || len(values) == 0 {
		return ""
	}
	if len(values) > width {
		b := make([]float64, width)
		for i := range b {
			a, z := i*len(values)/width, (i+1)*len(values)/width
			var s float64
			var n int
			for _, v := range values[a:z] {
				if finite(v) {
					s += v
					n++
				}
			}
			b[i] = nan
			if n > 0 {
				b[i] = s / float64(n)
			}
		}
		values = b
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if finite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	out := make([]rune, len(values))
	for i, v := range values {
		switch {
		case !finite(v):
			out[i] = ' '
		case hi == lo:
			out[i] = sparkBlocks[3]
		default:
			k := int(math.Round((v - lo) / (hi - lo) * float64(len(sparkBlocks)-1)))
			out[i] = sparkBlocks[k]
		}
	}
	return string(out)
}
