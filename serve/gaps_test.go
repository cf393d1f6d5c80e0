package serve

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/store"
)

// A NaN or infinite value is a gap in a curve, whether the points come
// whole or downsampled by the database.
func TestChartGaps(t *testing.T) {
	c := &chart{Title: "loss", X: "step", Series: []chartSeries{{Series: Series{Name: "loss", Points: []Point{
		{1, 3}, {2, 2.5}, {3, math.NaN()}, {4, 2}, {5, 1.5}, {6, math.Inf(1)}}}}}}
	svg := string(renderSVG(c, false))
	d := regexp.MustCompile(`path class="line[^"]*" d="([^"]*)"`).FindStringSubmatch(svg)
	if d == nil || strings.Count(d[1], "M") != 2 || strings.Count(d[1], "L") != 2 {
		t.Fatalf("path with a gap: %v", d)
	}
	// Buckets: a bucket with a non-finite value ends the curve there; one
	// with nothing finite adds only the gap.
	pts := envelope([]store.MetricBucket{
		{MinX: 1, MaxX: 10, Min: 1, Max: 2, Count: 10},
		{MinX: 11, MaxX: 20, Min: 0.5, Max: 0.5, Count: 3, NonFinite: 1},
		{MinX: 21, MaxX: 30, Min: math.NaN(), Max: math.NaN(), Count: 4, NonFinite: 4},
	})
	if got := fmt.Sprint(pts); got != "[[5.5 1] [5.5 2] [11 0.5] [20 NaN] [30 NaN]]" {
		t.Fatalf("envelope %s", got)
	}
	// Through the server: the failed job's loss (a NaN mid-curve, +Inf at
	// the end) is drawn in two pieces.
	f := newFixture(t, 120)
	body := get(t, f.server(t, Options{}), fmt.Sprintf("/jobs/%d", f.failed)).Body.String()
	i := strings.Index(body, `id="m-loss"`)
	if i < 0 {
		t.Fatal("no loss chart on the failed job's page")
	}
	d = regexp.MustCompile(`path class="line[^"]*" d="([^"]*)"`).FindStringSubmatch(body[i:])
	if d == nil || strings.Count(d[1], "M") != 2 {
		t.Fatalf("failed job's loss path: %v", d)
	}
}

// A constant series is drawn at its value, mid-axis, with ticks around it
// (it was a line at 0 on a -0.5…0.5 axis).
func TestConstantSeriesAxis(t *testing.T) {
	for _, v := range []float64{0.003, 1200, -2, 0} {
		c := &chart{Title: "lr", X: "step", Series: []chartSeries{{Series: Series{Name: "lr",
			Points: []Point{{1, v}, {2, v}, {3, v}}}}}}
		svg := string(renderSVG(c, false))
		var y0, y1 float64
		if _, err := fmt.Sscanf(svg[strings.Index(svg, "data-y0="):], `data-y0="%g" data-y1="%g"`, &y0, &y1); err != nil {
			t.Fatal(err)
		}
		if !(y0 < v && v < y1) || math.Abs((y0+y1)/2-v) > 1e-9*math.Max(1, math.Abs(v)) || y1-y0 > math.Max(1.2, 0.3*math.Abs(v)) {
			t.Errorf("constant %g: axis [%g, %g]", v, y0, y1)
		}
		if !strings.Contains(svg, ">"+fmtTick(v)+"</text>") {
			t.Errorf("constant %g: no tick at the value in %s", v, svg)
		}
	}
	// On a log axis too.
	c := &chart{Title: "lr", X: "step", Series: []chartSeries{{Series: Series{Name: "lr", Points: []Point{{1, 0.003}, {2, 0.003}}}}}}
	if svg := string(renderSVG(c, true)); !strings.Contains(svg, ">0.003</text>") {
		t.Errorf("log axis of a constant: %s", svg)
	}
}
