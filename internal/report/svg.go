package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

var nan = math.NaN()

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Colours of the curves (colour-blind safe: Okabe-Ito blue, vermillion, green).
const (
	colorTrain = "#0072B2"
	colorEval  = "#D55E00"
	colorLR    = "#009E73"
	colorText  = "#222222"
	colorMuted = "#555555"
	colorGrid  = "#E6E6E6"
	colorAxis  = "#8C8C8C"
)

// Geometry of the figure, in SVG user units (CSS pixels).
const (
	svgWidth    = 760
	plotLeft    = 70
	plotRight   = svgWidth - 24
	lossTop     = 44
	lossHeight  = 250
	lrTitleGap  = 46 // from the loss panel's bottom to the LR panel's top
	lrHeight    = 110
	xLabelSpace = 50 // below the last panel: tick labels and the axis title
	maxPoints   = 2 * (plotRight - plotLeft)
)

// SVG draws the run's curves: training loss (raw and smoothed) and
// evaluation loss against the step in one panel, the learning-rate schedule
// under it (left out when the log has no learning rates). The figure has a
// white background so that it reads on a dark page too, and the same bytes
// for the same log.
func SVG(l Log) []byte {
	var (
		trainX, trainY []float64
		lrX, lrY       []float64
		evalX, evalY   []float64
		maxStep        float64
	)
	for _, s := range l.Steps {
		x := float64(s.Step)
		maxStep = math.Max(maxStep, x)
		if finite(s.Loss) {
			trainX, trainY = append(trainX, x), append(trainY, s.Loss)
		}
		if finite(s.LearningRate) {
			lrX, lrY = append(lrX, x), append(lrY, s.LearningRate)
		}
	}
	for _, e := range l.Evals {
		x := float64(e.Step)
		maxStep = math.Max(maxStep, x)
		if finite(e.Loss) {
			evalX, evalY = append(evalX, x), append(evalY, e.Loss)
		}
	}
	hasLR := len(lrX) > 0
	height := lossTop + lossHeight + xLabelSpace
	if hasLR {
		height += lrTitleGap + lrHeight
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="kfllm-curves-title" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	b.WriteString(`<title id="kfllm-curves-title">Training curves: loss and learning rate by step</title>` + "\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#FFFFFF"/>`+"\n", svgWidth, height)

	// A little room on the right keeps the last marker whole.
	xs := axis{lo: 0, hi: math.Max(maxStep, 1)}
	xs.ticks = ticks(0, xs.hi, 8, true)
	xs.hi += math.Max(xs.hi*0.015, 0.1)

	// Loss panel.
	lossVals := append(append([]float64{}, trainY...), evalY...)
	ys := niceAxis(lossVals, 6, false)
	loss := panel{top: lossTop, height: lossHeight, x: xs, y: ys}
	text(&b, plotLeft, lossTop-18, "start", "bold", 14, colorText, "Loss")
	legend(&b, lossTop-22, len(trainY) > 0, smoothing(len(trainY)) > 0, len(evalY) > 0)
	loss.frame(&b, !hasLR)
	if len(trainY) == 0 && len(evalY) == 0 {
		text(&b, (plotLeft+plotRight)/2, lossTop+lossHeight/2, "middle", "normal", 13, colorMuted, "no training steps logged")
	}
	if h := smoothing(len(trainY)); h > 0 {
		loss.line(&b, trainX, trainY, colorTrain, 1, 0.35, "")
		loss.line(&b, trainX, smooth(trainY, h), colorTrain, 2.25, 1, "")
	} else {
		loss.line(&b, trainX, trainY, colorTrain, 2, 1, "")
	}
	loss.line(&b, evalX, evalY, colorEval, 2, 1, "")
	loss.dots(&b, evalX, evalY, colorEval)

	// Learning-rate panel.
	if hasLR {
		top := lossTop + lossHeight + lrTitleGap
		lr := panel{top: top, height: lrHeight, x: xs, y: niceAxis(append(lrY, 0), 4, true)}
		text(&b, plotLeft, top-14, "start", "bold", 14, colorText, "Learning rate")
		lr.frame(&b, true)
		lr.line(&b, lrX, lrY, colorLR, 2, 1, "")
	}
	text(&b, (plotLeft+plotRight)/2, height-12, "middle", "normal", 12, colorMuted, "step")
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// axis maps a data range onto a panel.
type axis struct {
	lo, hi float64
	ticks  []float64
	step   float64
}

// niceAxis covers vals with round tick marks; a single value or none gets a
// range around it.
func niceAxis(vals []float64, n int, fromZero bool) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if finite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	switch {
	case math.IsInf(lo, 0):
		lo, hi = 0, 1
	case hi == lo:
		d := math.Max(math.Abs(lo)*0.1, 1e-12)
		lo, hi = lo-d, hi+d
	}
	if fromZero && lo > 0 {
		lo = 0
	}
	step := niceStep((hi-lo)/float64(n-1), true)
	a := axis{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step, step: step}
	a.ticks = ticks(a.lo, a.hi, n, false)
	return a
}

// niceStep rounds x to 1, 2, 2.5 or 5 times a power of ten (at or above x
// when up).
func niceStep(x float64, up bool) float64 {
	if x <= 0 || !finite(x) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// ticks returns round values in [lo, hi], about n of them; integers only
// when ints.
func ticks(lo, hi float64, n int, ints bool) []float64 {
	step := niceStep((hi-lo)/float64(n-1), true)
	if ints {
		step = math.Max(1, math.Round(step))
	}
	var out []float64
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi*(1+1e-9)+1e-12; i++ {
		out = append(out, cleanZero(i*step))
	}
	return out
}

func cleanZero(v float64) float64 {
	if math.Abs(v) < 1e-15 {
		return 0
	}
	return v
}

// panel is one plot area sharing the x axis.
type panel struct {
	top, height int
	x, y        axis
}

func (p panel) px(x float64) float64 {
	return plotLeft + (x-p.x.lo)/(p.x.hi-p.x.lo)*(plotRight-plotLeft)
}

func (p panel) py(y float64) float64 {
	return float64(p.top+p.height) - (y-p.y.lo)/(p.y.hi-p.y.lo)*float64(p.height)
}

// frame draws grid lines, y tick labels, the axes and, when xLabels, the x
// tick labels.
func (p panel) frame(b *strings.Builder, xLabels bool) {
	bottom := p.top + p.height
	b.WriteString(`<g stroke="` + colorGrid + `" stroke-width="1">` + "\n")
	for _, t := range p.y.ticks {
		y := p.py(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s"/>`+"\n", plotLeft, f1(y), plotRight, f1(y))
	}
	for _, t := range p.x.ticks {
		x := p.px(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d"/>`+"\n", f1(x), p.top, f1(x), bottom)
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<path d="M%d,%d V%d H%d" fill="none" stroke="%s" stroke-width="1"/>`+"\n", plotLeft, p.top, bottom, plotRight, colorAxis)
	for _, t := range p.y.ticks {
		text(b, plotLeft-8, int(math.Round(p.py(t)))+4, "end", "normal", 11, colorMuted, number(t, p.y.step))
	}
	if xLabels {
		for _, t := range p.x.ticks {
			fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", f1(p.px(t)), bottom, f1(p.px(t)), bottom+4, colorAxis)
			text(b, int(math.Round(p.px(t))), bottom+18, "middle", "normal", 11, colorMuted, strconv.FormatFloat(t, 'f', -1, 64))
		}
	}
}

// line draws (xs, ys) as a polyline, at most maxPoints of them (bucket means).
func (p panel) line(b *strings.Builder, xs, ys []float64, color string, width, opacity float64, dash string) {
	if len(xs) == 0 {
		return
	}
	xs, ys = decimate(xs, ys, maxPoints)
	var d strings.Builder
	for i := range xs {
		if i == 0 {
			d.WriteString("M")
		} else {
			d.WriteString(" L")
		}
		d.WriteString(f1(p.px(xs[i])) + "," + f1(p.py(ys[i])))
	}
	fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round" stroke-linecap="round"`, d.String(), color, strconv.FormatFloat(width, 'f', -1, 64))
	if opacity < 1 {
		fmt.Fprintf(b, ` stroke-opacity="%s"`, strconv.FormatFloat(opacity, 'f', -1, 64))
	}
	if dash != "" {
		fmt.Fprintf(b, ` stroke-dasharray="%s"`, dash)
	}
	b.WriteString("/>\n")
}

// dots marks each point with a circle.
func (p panel) dots(b *strings.Builder, xs, ys []float64, color string) {
	if len(xs) == 0 || len(xs) > 200 {
		return
	}
	fmt.Fprintf(b, `<g fill="%s" stroke="#FFFFFF" stroke-width="1.5">`+"\n", color)
	for i := range xs {
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="4"/>`+"\n", f1(p.px(xs[i])), f1(p.py(ys[i])))
	}
	b.WriteString("</g>\n")
}

// legend lays the keys out right-aligned on the title row, above the plot,
// where they cannot hide a curve.
func legend(b *strings.Builder, y int, train, smoothed, eval bool) {
	type key struct {
		label, color   string
		width, opacity float64
		dot            bool
	}
	var keys []key
	if train {
		if smoothed {
			keys = append(keys, key{"train loss", colorTrain, 1.5, 0.35, false}, key{"train loss (smoothed)", colorTrain, 2.5, 1, false})
		} else {
			keys = append(keys, key{"train loss", colorTrain, 2.5, 1, false})
		}
	}
	if eval {
		keys = append(keys, key{"eval loss", colorEval, 2.5, 1, true})
	}
	// Text width estimated at 6.5 units a character of 12px sans-serif.
	x := float64(plotRight)
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		x -= float64(len(k.label)) * 6.5
		text(b, int(math.Round(x)), y+4, "start", "normal", 12, colorText, k.label)
		x -= 30
		fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="%s"`, f1(x), y, f1(x+22), y, k.color, strconv.FormatFloat(k.width, 'f', -1, 64))
		if k.opacity < 1 {
			fmt.Fprintf(b, ` stroke-opacity="%s"`, strconv.FormatFloat(k.opacity, 'f', -1, 64))
		}
		b.WriteString("/>\n")
		if k.dot {
			fmt.Fprintf(b, `<circle cx="%s" cy="%d" r="4" fill="%s" stroke="#FFFFFF" stroke-width="1.5"/>`+"\n", f1(x+11), y, k.color)
		}
		x -= 18
	}
}

func text(b *strings.Builder, x, y int, anchor, weight string, size int, color, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="%s" fill="%s"`, x, y, anchor, color)
	if weight != "normal" {
		fmt.Fprintf(b, ` font-weight="%s"`, weight)
	}
	if size != 12 {
		fmt.Fprintf(b, ` font-size="%d"`, size)
	}
	fmt.Fprintf(b, ">%s</text>\n", html.EscapeString(s))
}

// smoothing is the half-width of the moving average over n training
// losses: none for a short run, about a fortieth of the run otherwise.
func smoothing(n int) int {
	if n < 20 {
		return 0
	}
	return max(2, n/40)
}

// smooth is the centred moving average of ys over 2*half+1 points (fewer at
// the ends), which, unlike an exponential average, does not lag behind a
// falling loss.
func smooth(ys []float64, half int) []float64 {
	out := make([]float64, len(ys))
	for i := range ys {
		a, z := max(0, i-half), min(len(ys), i+half+1)
		var s float64
		for _, y := range ys[a:z] {
			s += y
		}
		out[i] = s / float64(z-a)
	}
	return out
}

// decimate averages consecutive points into at most max buckets.
func decimate(xs, ys []float64, max int) ([]float64, []float64) {
	if len(xs) <= max {
		return xs, ys
	}
	ox, oy := make([]float64, 0, max), make([]float64, 0, max)
	for i := 0; i < max; i++ {
		a, z := i*len(xs)/max, (i+1)*len(xs)/max
		var sx, sy float64
		for j := a; j < z; j++ {
			sx += xs[j]
			sy += ys[j]
		}
		ox, oy = append(ox, sx/float64(z-a)), append(oy, sy/float64(z-a))
	}
	return ox, oy
}

// number formats a tick value with the decimals its step needs, in
// scientific notation for very small or large magnitudes (learning rates).
func number(v, step float64) string {
	if v == 0 {
		return "0"
	}
	a := math.Abs(v)
	if a < 1e-3 || a >= 1e6 {
		s := strconv.FormatFloat(v, 'e', sigDigits(v, step)-1, 64)
		mant, exp, _ := strings.Cut(s, "e")
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		e, _ := strconv.Atoi(exp)
		return mant + "e" + strconv.Itoa(e)
	}
	dec := 0 // as many decimals as the step has: 0.25, 2.5, 50
	for ; dec < 10; dec++ {
		if r := step * math.Pow(10, float64(dec)); math.Abs(r-math.Round(r)) < 1e-6*math.Max(1, r) {
			break
		}
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// sigDigits is how many significant digits v needs for ticks step apart.
func sigDigits(v, step float64) int {
	d := int(math.Floor(math.Log10(math.Abs(v)))) - int(math.Floor(math.Log10(step))) + 1
	if r := step / math.Pow(10, math.Floor(math.Log10(step))); math.Abs(r-math.Round(r)) > 1e-6 {
		d++
	}
	return max(1, min(d, 6))
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
