package report

import (
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadLogTolerant(t *testing.T) {
	in := strings.Join([]string{
		`{"step":2,"loss":2.5}`, // no learning rate, epoch, ...
		``,
		`{"step":1,"epoch":0.5,"loss":3,"learning_rate":0.001,"grad_norm":1.2,"tokens_per_second":900}`,
		`{"step":2,"eval_loss":2.7}`,                  // no perplexity
		`{"note":"resumed"}`,                          // not a step: skipped
		`{"step":3,"kind":"other"}`,                   // neither loss nor eval_loss: skipped
		`{"step":2,"loss":2.4,"learning_rate":0.002}`, // a resumed run redid step 2: last wins
		`{"step":3,"loss":2.1,"learn`,                 // cut short by a kill, no newline
	}, "\n")
	l, err := ReadLog(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Steps) != 2 || l.Steps[0].Step != 1 || l.Steps[1].Step != 2 {
		t.Fatalf("steps = %+v, want steps 1 and 2", l.Steps)
	}
	if s := l.Steps[1]; s.Loss != 2.4 || s.LearningRate != 0.002 || !math.IsNaN(s.Epoch) || !math.IsNaN(s.GradNorm) {
		t.Errorf("step 2 = %+v, want the later line with NaN for missing fields", s)
	}
	if s := l.Steps[0]; s.Epoch != 0.5 || s.GradNorm != 1.2 || s.TokensPerSecond != 900 {
		t.Errorf("step 1 = %+v", s)
	}
	if len(l.Evals) != 1 || l.Evals[0].Loss != 2.7 || !math.IsNaN(l.Evals[0].Perplexity) {
		t.Errorf("evals = %+v", l.Evals)
	}
}

func TestReadLogBadLine(t *testing.T) {
	_, err := ReadLog(strings.NewReader("{\"step\":1,\"loss\":3}\nnot json\n{\"step\":2,\"loss\":2}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty dir: err = %v, want fs.ErrNotExist", err)
	}
	// metrics.json alone is a report (a run that logged nothing).
	write(t, filepath.Join(dir, MetricsFile), `{"train_loss": 1.5, "unknown_field": [1]}`)
	r, err := Load(dir)
	if err != nil || r.Metrics == nil || *r.Metrics.TrainLoss != 1.5 || len(r.Log.Steps) != 0 {
		t.Fatalf("Load = %+v, %v", r, err)
	}
	write(t, filepath.Join(dir, MetricsFile), `{"train_loss": }`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), MetricsFile) {
		t.Errorf("bad metrics.json: err = %v, want one naming the file", err)
	}
	// Files named directly.
	r, err = Load(filepath.Join("testdata", "run", LogFile), filepath.Join("testdata", "lm", MetricsFile))
	if err != nil || len(r.Log.Steps) != 240 || len(r.Log.Evals) != 6 || *r.Metrics.Steps != 60 {
		t.Fatalf("Load(files) = %d steps, %d evals, %v", len(r.Log.Steps), len(r.Log.Evals), err)
	}
	if _, err := Load(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := Load("report.go"); err == nil {
		t.Error("a .go file loaded as a report")
	}
}

func TestSparkline(t *testing.T) {
	for _, c := range []struct {
		in    []float64
		width int
		want  string
	}{
		{[]float64{8, 7, 6, 5, 4, 3, 2, 1}, 8, "█▇▆▅▄▃▂▁"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8}, 20, "▁▂▃▄▅▆▇█"}, // shorter than width: one character a value
		{[]float64{8, 8, 1, 1, 4.5, 4.5}, 3, "█▁▅"},         // averaged into buckets
		{[]float64{2, 2, 2}, 10, "▄▄▄"},                     // flat
		{[]float64{3, math.NaN(), 1}, 10, "█ ▁"},            // not finite
		{[]float64{1, math.Inf(1), 2, math.NaN()}, 2, "▁█"}, // buckets skip non-finite
		{[]float64{1, 2}, 0, ""},
		{nil, 10, ""},
	} {
		if got := Sparkline(c.in, c.width); got != c.want {
			t.Errorf("Sparkline(%v, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
		if n := len([]rune(Sparkline(c.in, c.width))); n > c.width {
			t.Errorf("Sparkline(%v, %d) is %d wide", c.in, c.width, n)
		}
	}
}

// TestSVGWellFormed parses the SVG of odd logs as XML.
func TestSVGWellFormed(t *testing.T) {
	nan := math.NaN()
	for name, l := range map[string]Log{
		"empty":      {},
		"one step":   {Steps: []Step{{Step: 1, Loss: 2, LearningRate: 1e-4}}},
		"evals only": {Evals: []Eval{{Step: 10, Loss: 3}, {Step: 20, Loss: 2}}},
		"no lr":      {Steps: []Step{{Step: 1, Loss: 2, LearningRate: nan}, {Step: 2, Loss: 1, LearningRate: nan}}},
		"flat":       {Steps: []Step{{Step: 1, Loss: 1, LearningRate: 0}, {Step: 2, Loss: 1, LearningRate: 0}}},
		"long":       {Steps: longSteps(100000)},
	} {
		b := SVG(l)
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: SVG is not XML: %v\n%s", name, err, b)
			}
		}
		if strings.Contains(string(b), "NaN") || strings.Contains(string(b), "Inf") {
			t.Errorf("%s: SVG has NaN/Inf coordinates", name)
		}
		if name == "long" && len(b) > 100<<10 {
			t.Errorf("SVG of 100k steps is %d bytes, want it decimated", len(b))
		}
		if hasLR := name != "no lr" && name != "evals only" && name != "empty"; hasLR != strings.Contains(string(b), ">Learning rate<") {
			t.Errorf("%s: learning-rate panel shown = %v", name, !hasLR)
		}
	}
}

func longSteps(n int) []Step {
	s := make([]Step, n)
	for i := range s {
		s[i] = Step{Step: i + 1, Loss: 5 / math.Sqrt(float64(i+1)), LearningRate: 1e-4}
	}
	return s
}

// TestSVGFollowsLoss reads the raw training-loss path back: one vertex a
// step, left to right, higher loss drawn higher (smaller y), inside the plot.
func TestSVGFollowsLoss(t *testing.T) {
	r, err := Load(filepath.Join("testdata", "run"))
	if err != nil {
		t.Fatal(err)
	}
	svg := string(SVG(r.Log))
	m := regexp.MustCompile(`<path d="(M[^"]+)" fill="none" stroke="` + colorTrain + `" stroke-width="1"`).FindStringSubmatch(svg)
	if m == nil {
		t.Fatal("no raw training-loss path")
	}
	pts := strings.Split(strings.TrimPrefix(m[1], "M"), " L")
	if len(pts) != len(r.Log.Steps) {
		t.Fatalf("%d vertices for %d steps", len(pts), len(r.Log.Steps))
	}
	var xs, ys []float64
	for _, p := range pts {
		x, y, _ := strings.Cut(p, ",")
		fx, _ := strconv.ParseFloat(x, 64)
		fy, _ := strconv.ParseFloat(y, 64)
		if fx < plotLeft || fx > plotRight || fy < lossTop || fy > lossTop+lossHeight {
			t.Fatalf("vertex %s outside the plot", p)
		}
		xs, ys = append(xs, fx), append(ys, fy)
	}
	for i := 1; i < len(xs); i++ {
		if xs[i] <= xs[i-1] {
			t.Fatalf("x not increasing at vertex %d", i)
		}
		li, lj := r.Log.Steps[i].Loss, r.Log.Steps[i-1].Loss
		if (li > lj) != (ys[i] < ys[i-1]) && math.Abs(li-lj) > 0.01 {
			t.Fatalf("step %d: loss %v -> %v but y %v -> %v", i+1, lj, li, ys[i-1], ys[i])
		}
	}
}

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		v, step float64
		want    string
	}{
		{0, 0.5, "0"}, {2, 1, "2"}, {0.5, 0.5, "0.5"}, {0.25, 0.25, "0.25"}, {7.5, 2.5, "7.5"},
		{0.002, 0.001, "0.002"}, {2e-4, 1e-4, "2e-4"}, {1.5e-4, 5e-5, "1.5e-4"}, {5e-5, 2.5e-5, "5e-5"},
		{2500000, 500000, "2.5e6"}, {150, 50, "150"},
	} {
		if got := number(c.v, c.step); got != c.want {
			t.Errorf("number(%v, %v) = %q, want %q", c.v, c.step, got, c.want)
		}
	}
}

func TestHTMLSelfContained(t *testing.T) {
	r, err := Load(filepath.Join("testdata", "run"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(HTML(r.Log, r.Metrics))
	for _, bad := range []string{"<script", " src=", " href=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML report has %q: it must not load anything", bad)
		}
	}
	for _, want := range []string{"<svg", "Held-out QA, 60 questions", "<td class=\"num\">63.3</td>", "240 steps"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}

func TestMarkdownWithoutMetrics(t *testing.T) {
	if got := Markdown(nil); got != "" {
		t.Errorf("Markdown(nil) = %q", got)
	}
	if got := Markdown(&Metrics{}); got != "" {
		t.Errorf("Markdown(empty) = %q", got)
	}
	// The artifact still says something.
	dir := t.TempDir()
	write(t, filepath.Join(dir, MetricsFile), `{"unknown": 1}`)
	md := filepath.Join(dir, "eval_table")
	if err := WriteArtifacts(dir, "", md); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(md); string(b) != noMetrics+"\n" {
		t.Errorf("Markdown artifact of no metrics = %q", b)
	}
}

// TestWriteArtifacts writes finetune's two KFP artifacts from a model dir.
func TestWriteArtifacts(t *testing.T) {
	model := copyRun(t, "run")
	out := t.TempDir()
	htmlPath, mdPath := filepath.Join(out, "report", "nested", "report"), filepath.Join(out, "eval_table")
	if err := WriteArtifacts(model, htmlPath, mdPath); err != nil {
		t.Fatal(err)
	}
	r, _ := Load(model)
	if got, _ := os.ReadFile(htmlPath); string(got) != string(HTML(r.Log, r.Metrics)) {
		t.Error("HTML artifact is not the report of the model dir")
	}
	if got, _ := os.ReadFile(mdPath); string(got) != Markdown(r.Metrics) {
		t.Error("Markdown artifact is not the table of the model dir")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	// A model dir without training files: an error, and no artifact.
	empty := t.TempDir()
	if err := WriteArtifacts(empty, filepath.Join(empty, "r.html"), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "r.html")); err == nil {
		t.Error("wrote a report of nothing")
	}
}

func TestSummary(t *testing.T) {
	model := copyRun(t, "run")
	var out strings.Builder
	htmlPath := filepath.Join(t.TempDir(), "training_report.html")
	if err := Summary(&out, model, htmlPath); err != nil {
		t.Fatal(err)
	}
	r, _ := Load(model)
	want := Text(r, 40) + "training report: " + htmlPath + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(htmlPath); err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("HTML report: %v", err)
	}
}

func copyRun(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{LogFile, MetricsFile} {
		b, err := os.ReadFile(filepath.Join("testdata", name, f))
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
