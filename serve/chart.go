package serve

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/history"
)

// Curves are SVG drawn here, on the server: no chart library to vendor or
// download, pages render without script, and a 100k-point metric costs the
// browser a path of at most maxPoints vertices. app.js adds hover values
// (from the metrics API, downsampled the same way), toggles and log scale.

// maxPoints is how many points a curve keeps by default: two per bucket
// (its minimum and maximum), for ~500 buckets, about one per pixel column.
const maxPoints = 1000

// Point is one (x, y) of a curve; x is the step (or the epoch for metrics
// recorded at step 0). A NaN or infinite y is null in JSON.
type Point [2]float64

// MarshalJSON writes [x, y] with null for a non-finite y.
func (p Point) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat([]byte{'['}, p[0], 'g', -1, 64)
	b = append(b, ',')
	if !finite(p[1]) {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendFloat(b, p[1], 'g', -1, 64)
	}
	return append(b, ']'), nil
}

// Series is one metric of one task, as GET /api/jobs/{id}/metrics returns
// it: every point, or, past the limit, the lowest and highest value of each
// of limit/2 equal intervals of x (so spikes and the range survive, unlike
// with every k-th point).
type Series struct {
	Job    int64   `json:"job"`
	Task   string  `json:"task"`
	Name   string  `json:"name"`
	X      string  `json:"x"`     // "step" or "epoch"
	Count  int     `json:"count"` // points recorded
	Points []Point `json:"points"`
}

// chartSeries is a series placed in a chart.
type chartSeries struct {
	Series
	Key   string // unique in the page: what the legend toggles
	Label string
	Color int    // palette index (CSS class c0…c9)
	Dash  string // stroke-dasharray, "" for solid
}

// chart is one panel: the metrics that belong together (loss and
// val_loss), of one job or of several.
type chart struct {
	ID     string
	Title  string
	X      string
	Series []chartSeries
	CanLog bool // every value is > 0
	Linear template.HTML
	Log    template.HTML
}

// family groups train and validation variants of a metric in one chart.
func family(name string) string {
	for _, p := range []string{"train_", "val_", "test_"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
			return rest
		}
	}
	return name
}

var dashes = []string{"", "6 3", "2 2", "8 3 2 3"}

// buildCharts groups the series of one or more jobs into charts. With
// several jobs a job keeps one colour and its metrics differ by dash; with
// one job every series has its own colour. Single values (test_acc) make
// no curve: the metrics table shows them.
func buildCharts(perJob [][]Series, multi bool) []chart {
	byFam := map[string]*chart{}
	var order []string
	for ji, ss := range perJob {
		dashOf := map[string]int{}
		for _, s := range ss {
			if s.Count < 2 {
				continue
			}
			f := family(s.Name)
			c := byFam[f]
			if c == nil {
				c = &chart{ID: "m-" + sanitize(f), Title: f, X: s.X}
				byFam[f] = c
				order = append(order, f)
			}
			cs := chartSeries{Series: s, Key: fmt.Sprintf("%d/%s/%s", s.Job, s.Task, s.Name),
				Label: s.Task + " " + s.Name}
			if multi {
				cs.Label = fmt.Sprintf("job %d %s", s.Job, cs.Label)
				cs.Color = ji % 10
				d, ok := dashOf[f+"/"+s.Task+"/"+s.Name]
				if !ok {
					d = countFamily(c, s.Job)
					dashOf[f+"/"+s.Task+"/"+s.Name] = d
				}
				cs.Dash = dashes[d%len(dashes)]
			} else {
				cs.Color = len(c.Series) % 10
			}
			c.Series = append(c.Series, cs)
		}
	}
	sort.Strings(order)
	out := make([]chart, 0, len(order))
	for _, f := range order {
		c := byFam[f]
		c.CanLog = true
		for _, s := range c.Series {
			for _, p := range s.Points {
				if !(p[1] > 0) && finite(p[1]) {
					c.CanLog = false
				}
			}
		}
		c.Linear = renderSVG(c, false)
		if c.CanLog {
			c.Log = renderSVG(c, true)
		}
		out = append(out, *c)
	}
	return out
}

func countFamily(c *chart, job int64) int {
	n := 0
	for _, s := range c.Series {
		if s.Job == job {
			n++
		}
	}
	return n
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Plot geometry in SVG user units (the SVG scales to the page's width).
const (
	svgW, svgH             = 640, 260
	padL, padR, padT, padB = 58, 14, 10, 30
)

// renderSVG draws a chart. The <svg> carries the data-to-pixel mapping in
// data- attributes, which app.js uses to turn the mouse position into a
// step and find the values under it.
func renderSVG(c *chart, logY bool) template.HTML {
	x0, x1 := math.Inf(1), math.Inf(-1)
	y0, y1 := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			y := p[1]
			if !finite(y) || (logY && y <= 0) {
				continue
			}
			if logY {
				y = math.Log10(y)
			}
			x0, x1 = math.Min(x0, p[0]), math.Max(x1, p[0])
			y0, y1 = math.Min(y0, y), math.Max(y1, y)
		}
	}
	if math.IsInf(x0, 0) { // nothing finite to draw
		x0, x1, y0, y1 = 0, 1, 0, 1
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == y0 {
		// A constant series (a fixed learning rate) sits mid-axis at its
		// value, with ticks around it: ±10% of it (±0.05 decade on a log
		// axis; ±0.5 around 0).
		d := math.Abs(y0) / 10
		switch {
		case logY:
			d = 0.05
		case d == 0:
			d = 0.5
		}
		y0, y1 = y0-d, y1+d
	}
	var yt []float64
	if logY {
		pad := math.Max((y1-y0)*0.05, 0.01)
		y0, y1 = y0-pad, y1+pad
		yt = logTicks(y0, y1)
	} else {
		pad := (y1 - y0) * 0.05
		y0, y1 = y0-pad, y1+pad
		yt = ticks(y0, y1, 5)
	}
	pw, ph := float64(svgW-padL-padR), float64(svgH-padT-padB)
	px := func(x float64) float64 { return padL + (x-x0)/(x1-x0)*pw }
	py := func(y float64) float64 { return padT + (1-(y-y0)/(y1-y0))*ph }

	var b strings.Builder
	logAttr := "0"
	if logY {
		logAttr = "1"
	}
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %d %d" role="img" aria-label="%s" data-x0="%g" data-x1="%g" data-y0="%g" data-y1="%g" data-l="%d" data-t="%d" data-w="%g" data-h="%g" data-log="%s">`,
		svgW, svgH, template.HTMLEscapeString(c.Title), x0, x1, y0, y1, padL, padT, pw, ph, logAttr)
	fmt.Fprintf(&b, `<rect class="frame" x="%d" y="%d" width="%g" height="%g"/>`, padL, padT, pw, ph)
	for _, t := range yt {
		y := py(t)
		label := fmtTick(t)
		if logY {
			label = fmtTick(math.Pow(10, t))
		}
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%g" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, padL+pw, y, y, padL-4, y+4, label)
	}
	for _, t := range ticks(x0, x1, 6) {
		x := px(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%g"/><text class="tick" x="%.1f" y="%g" text-anchor="middle">%s</text>`,
			x, x, padT, padT+ph, x, padT+ph+14, fmtTick(t))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%g" y="%d" text-anchor="end">%s</text>`, padL+pw, svgH-2, template.HTMLEscapeString(c.X))
	for _, s := range c.Series {
		var d strings.Builder
		pen := false
		for _, p := range s.Points {
			y := p[1]
			if !finite(y) || (logY && y <= 0) {
				pen = false // a gap: NaN, ±Inf, or ≤ 0 on a log axis
				continue
			}
			if logY {
				y = math.Log10(y)
			}
			op := 'L'
			if !pen {
				op = 'M'
			}
			fmt.Fprintf(&d, "%c%.1f %.1f", op, px(p[0]), py(y))
			pen = true
		}
		dash := ""
		if s.Dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.Dash)
		}
		fmt.Fprintf(&b, `<path class="line c%d" d="%s"%s data-key="%s" data-job="%d" data-task="%s" data-metric="%s"/>`,
			s.Color, d.String(), dash, template.HTMLEscapeString(s.Key), s.Job, template.HTMLEscapeString(s.Task),
			template.HTMLEscapeString(s.Name))
	}
	fmt.Fprintf(&b, `<line class="cursor" x1="-10" x2="-10" y1="%d" y2="%g"/>`, padT, padT+ph)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// ticks returns round values in [lo, hi], about n of them.
func ticks(lo, hi float64, n int) []float64 {
	span := hi - lo
	if !(span > 0) {
		return []float64{lo}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, math.Round(t/step)*step)
	}
	return out
}

// logTicks returns tick positions (log10 of values) for a log axis over
// [lo, hi] (log10 too): 1, 2 and 5 times powers of ten, only the powers
// when that is too many, and plain ticks of the values when the range is
// under a factor of 10.
func logTicks(lo, hi float64) []float64 {
	var all, pow []float64
	for d := math.Floor(lo); d <= math.Ceil(hi); d++ {
		for _, m := range []float64{1, 2, 5} {
			if t := d + math.Log10(m); t >= lo && t <= hi {
				all = append(all, t)
				if m == 1 {
					pow = append(pow, t)
				}
			}
		}
	}
	switch {
	case len(all) > 8 && len(pow) >= 2:
		return pow
	case len(all) >= 3:
		return all
	}
	var out []float64
	for _, v := range ticks(math.Pow(10, lo), math.Pow(10, hi), 4) {
		if v > 0 {
			out = append(out, math.Log10(v))
		}
	}
	return out
}

// fmtTick prints a tick value short: 6 significant digits at most, which
// also hides float noise from adding up steps (0.30000000000000004).
func fmtTick(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fmtValue shows a metric value in tables (NaN, Inf, -Inf as such).
func fmtValue(v history.Value) string { return history.Format(float64(v), 5) }
