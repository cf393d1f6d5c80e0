package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"sort"
	"strings"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
)

// SweepRow is one sweep of GET /api/sweeps.
type SweepRow struct {
	ID        int64          `json:"id"`
	Kind      string         `json:"kind"`
	Name      string         `json:"name"`
	Metric    string         `json:"metric"`
	Points    int            `json:"points"`
	States    map[string]int `json:"states"` // points per job state
	BestJob   int64          `json:"best_job,omitempty"`
	Best      *history.Value `json:"best,omitempty"`
	CreatedAt string         `json:"created_at"`
	Running   bool           `json:"running"` // some point is queued or running
}

// SweepList is GET /api/sweeps.
type SweepList struct {
	Sweeps []SweepRow `json:"sweeps"`
}

// ranking loads and ranks one sweep (what `dl4img sweep show --json` prints).
func (s *Server) ranking(ctx context.Context, id int64) (*history.Ranking, error) {
	sw, err := s.st.Sweep(ctx, id)
	if err != nil {
		return nil, err
	}
	pts, err := s.st.SweepPoints(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("points of sweep %d: %w", id, err)
	}
	return history.RankSweep(*sw, pts, s.opt.Now())
}

func (s *Server) sweepList(ctx context.Context) (*SweepList, error) {
	ss, err := s.st.Sweeps(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sweeps: %w", err)
	}
	out := &SweepList{Sweeps: []SweepRow{}}
	for _, sw := range ss {
		r, err := s.ranking(ctx, sw.ID)
		if err != nil {
			return nil, err
		}
		row := SweepRow{ID: sw.ID, Kind: sw.Kind, Name: sw.Name, Metric: sw.Metric, Points: len(r.Points), States: map[string]int{},
			BestJob: r.BestJob, CreatedAt: sw.CreatedAt}
		for _, p := range r.Points {
			row.States[p.State]++
			row.Running = row.Running || active(p.State)
			if p.Job == r.BestJob {
				row.Best = p.Best
			}
		}
		out.Sweeps = append(out.Sweeps, row)
	}
	return out, nil
}

func (s *Server) sweepsPage(w http.ResponseWriter, r *http.Request) {
	list, err := s.sweepList(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "sweeps", map[string]any{"Title": "sweeps", "List": list, "States": states})
}

func (s *Server) apiSweeps(w http.ResponseWriter, r *http.Request) {
	list, err := s.sweepList(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) apiSweep(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"), "sweep")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rk, err := s.ranking(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rk)
}

// pointView is a ranked point as the sweep page's table shows it.
type pointView struct {
	history.SweepPoint
	Values []string // the swept values, in the sweep's parameter order
}

func (s *Server) sweepPage(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"), "sweep")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rk, err := s.ranking(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var rows []pointView
	var top []int64
	running := false
	for _, p := range rk.Points {
		v := pointView{SweepPoint: p}
		for _, sp := range rk.Swept {
			v.Values = append(v.Values, history.RawString(p.Params[sp.Name]))
		}
		rows = append(rows, v)
		if p.Rank > 0 && len(top) < 5 { // the best five, compared
			top = append(top, p.Job)
		}
		running = running || active(p.State)
	}
	dir := "higher"
	if rk.Sweep.Lower {
		dir = "lower"
	}
	s.render(w, r, http.StatusOK, "sweep", map[string]any{
		"Title":   fmt.Sprintf("sweep %d", id),
		"R":       rk,
		"Dir":     dir,
		"Rows":    rows,
		"Compare": joinIDs(top),
		"Charts":  paramCharts(rk),
		"Active":  running,
	})
}

// paramChart is one swept parameter against the sweep's metric.
type paramChart struct {
	ID, Param, Metric string
	Log, Categorical  bool
	SVG               template.HTML
}

// dot is one point of a parameter chart.
type dot struct {
	x, y  float64
	state string
	job   int64
	title string
}

// paramCharts draws, per swept parameter, every point that has a value of
// the metric at (parameter value, best metric). The x axis is logarithmic
// for log-uniform parameters and for numeric grids spanning a factor of
// 100 or more (learning rates written 0.1,0.01,0.001); parameters that are
// not numbers, and choice(), get one column per value.
func paramCharts(rk *history.Ranking) []paramChart {
	var out []paramChart
	for _, sp := range rk.Swept {
		c := paramChart{ID: "p-" + sanitize(sp.Name), Param: sp.Name, Metric: rk.Sweep.Metric}
		type raw struct {
			p   history.SweepPoint
			num float64
			cat string
		}
		var pts []raw
		numeric := sp.Dist != sweep.Choice
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range rk.Points {
			if p.Best == nil || math.IsNaN(float64(*p.Best)) {
				continue
			}
			x := raw{p: p, cat: history.RawString(p.Params[sp.Name])}
			if err := json.Unmarshal(p.Params[sp.Name], &x.num); err != nil {
				numeric = false
			}
			lo, hi = math.Min(lo, x.num), math.Max(hi, x.num)
			pts = append(pts, x)
		}
		c.Categorical = !numeric
		c.Log = numeric && lo > 0 && (sp.Dist == sweep.LogUniform || sp.Dist == sweep.Grid && hi/lo >= 100)
		var cats []string
		catIdx := map[string]int{}
		if c.Categorical {
			for _, v := range sp.Values { // the order the user gave
				if _, ok := catIdx[v]; !ok {
					catIdx[v] = len(cats)
					cats = append(cats, v)
				}
			}
			for _, x := range pts {
				if _, ok := catIdx[x.cat]; !ok {
					catIdx[x.cat] = len(cats)
					cats = append(cats, x.cat)
				}
			}
		}
		// Points sharing a column are spread a little, so each shows.
		inCat := map[int]int{}
		perCat := map[int]int{}
		for _, x := range pts {
			perCat[catIdx[x.cat]]++
		}
		var dots []dot
		for _, x := range pts {
			d := dot{x: x.num, y: float64(*x.p.Best), state: x.p.State, job: x.p.Job,
				title: fmt.Sprintf("point %d · job %d · %s=%s · %s %s · %s", x.p.Point, x.p.Job, sp.Name, x.cat,
					rk.Sweep.Metric, fmtValue(*x.p.Best), x.p.State)}
			if c.Categorical {
				k, n := catIdx[x.cat], perCat[catIdx[x.cat]]
				d.x = float64(k) + (float64(inCat[k])-float64(n-1)/2)*math.Min(0.5/float64(n), 0.1)
				inCat[k]++
			}
			dots = append(dots, d)
		}
		c.SVG = renderScatter(sp.Name, rk.Sweep.Metric, dots, c.Log, cats)
		out = append(out, c)
	}
	return out
}

// renderScatter draws dots; cats, when not nil, names the columns 0..n-1
// of a categorical x axis.
func renderScatter(xName, yName string, dots []dot, logX bool, cats []string) template.HTML {
	fx := func(x float64) float64 {
		if logX {
			return math.Log10(x)
		}
		return x
	}
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, d := range dots {
		x0, x1 = math.Min(x0, fx(d.x)), math.Max(x1, fx(d.x))
		y0, y1 = math.Min(y0, d.y), math.Max(y1, d.y)
	}
	if len(dots) == 0 {
		x0, x1, y0, y1 = 0, 1, 0, 1
	}
	if cats != nil {
		x0, x1 = -0.5, float64(len(cats))-0.5
	}
	if x1 == x0 {
		x0, x1 = x0-0.5, x1+0.5
	}
	if y1 == y0 {
		y0, y1 = y0-0.5, y1+0.5
	}
	if cats == nil {
		pad := (x1 - x0) * 0.06
		x0, x1 = x0-pad, x1+pad
	}
	pad := (y1 - y0) * 0.08
	y0, y1 = y0-pad, y1+pad
	pw, ph := float64(svgW-padL-padR), float64(svgH-padT-padB)
	px := func(x float64) float64 { return padL + (x-x0)/(x1-x0)*pw }
	py := func(y float64) float64 { return padT + (1-(y-y0)/(y1-y0))*ph }
	var b strings.Builder
	logAttr := "0"
	if logX {
		logAttr = "1"
	}
	fmt.Fprintf(&b, `<svg class="plot scatter" viewBox="0 0 %d %d" role="img" aria-label="%s against %s" data-logx="%s">`,
		svgW, svgH, template.HTMLEscapeString(yName), template.HTMLEscapeString(xName), logAttr)
	fmt.Fprintf(&b, `<rect class="frame" x="%d" y="%d" width="%g" height="%g"/>`, padL, padT, pw, ph)
	for _, t := range ticks(y0, y1, 5) {
		y := py(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%g" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, padL+pw, y, y, padL-4, y+4, fmtTick(t))
	}
	type tick struct {
		at    float64
		label string
	}
	var xt []tick
	switch {
	case cats != nil:
		for i, c := range cats {
			xt = append(xt, tick{float64(i), c})
		}
	case logX:
		for _, t := range logTicks(x0, x1) {
			xt = append(xt, tick{t, fmtTick(math.Pow(10, t))})
		}
	default:
		for _, t := range ticks(x0, x1, 6) {
			xt = append(xt, tick{t, fmtTick(t)})
		}
	}
	for _, t := range xt {
		x := px(t.at)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%g"/><text class="tick" x="%.1f" y="%g" text-anchor="middle">%s</text>`,
			x, x, padT, padT+ph, x, padT+ph+14, template.HTMLEscapeString(t.label))
	}
	axis := xName
	if logX {
		axis += " (log)"
	}
	fmt.Fprintf(&b, `<text class="axis" x="%g" y="%d" text-anchor="end">%s</text>`, padL+pw, svgH-2, template.HTMLEscapeString(axis))
	// Worse states first, so the succeeded points are drawn on top.
	order := map[string]int{store.Failed: 0, store.Cancelled: 0, store.Pruned: 1, store.Running: 2, store.Queued: 2, store.Succeeded: 3}
	sort.SliceStable(dots, func(i, j int) bool { return order[dots[i].state] < order[dots[j].state] })
	for _, d := range dots {
		fmt.Fprintf(&b, `<a href="/jobs/%d"><circle class="dot st-%s" cx="%.1f" cy="%.1f" r="5"><title>%s</title></circle></a>`,
			d.job, template.HTMLEscapeString(d.state), px(fx(d.x)), py(d.y), template.HTMLEscapeString(d.title))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
