package serve

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/history"
)

var funcs = template.FuncMap{
	"value":    fmtValue,
	"duration": fmtDuration,
	"bytes":    fmtBytes,
	"raw":      history.RawString,
	"pct": func(p *Progress) int {
		if p == nil || p.Total <= 0 {
			return 0
		}
		return int(math.Round(100 * float64(p.Done) / float64(p.Total)))
	},
}

func fmtDuration(sec float64) string {
	d := int(math.Round(sec))
	switch {
	case d < 60:
		return fmt.Sprintf("%ds", d)
	case d < 3600:
		return fmt.Sprintf("%dm %02ds", d/60, d%60)
	}
	return fmt.Sprintf("%dh %02dm", d/3600, d%3600/60)
}

func fmtBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request) {
	kind, state := r.URL.Query().Get("kind"), r.URL.Query().Get("state")
	list, err := s.jobList(r.Context(), kind, state)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "jobs", map[string]any{"Title": "jobs", "List": list, "Kind": kind, "State": state,
		"States": states})
}

// artifactPage is an artifact with what the job page shows of it.
type artifactPage struct {
	ArtifactView
	Name    string
	Missing bool
	Preview *csvPreview
}

type param struct{ Name, Value string }

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, series, err := s.jobDetail(r.Context(), id, maxPoints)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var arts []artifactPage
	for _, a := range d.Artifacts {
		ap := artifactPage{ArtifactView: a, Name: baseName(a.Path)}
		// A file that is gone, or that would not be served (outside the
		// job's directories), is listed but neither shown nor linked.
		fh, _, err := s.artifactFile(r, id, a.ID)
		if err != nil {
			ap.Missing = true
		} else {
			fh.Close()
		}
		if a.Type == "csv" && !ap.Missing {
			ap.Preview, _ = s.previewCSV(r, id, a.ID)
		}
		arts = append(arts, ap)
	}
	s.render(w, r, http.StatusOK, "job", map[string]any{
		"Title":     fmt.Sprintf("job %d", id),
		"D":         d,
		"Params":    params(d.Params),
		"Graph":     taskGraph(d.Tasks),
		"Charts":    buildCharts([][]Series{series}, false),
		"Artifacts": arts,
		"Active":    active(d.State),
	})
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// params lists a job's parameters sorted by name.
func params(raw json.RawMessage) []param {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	out := make([]param, 0, len(m))
	for k, v := range m {
		out = append(out, param{k, history.RawString(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type compareRow struct {
	Name   string
	Differ bool
	Values []string
}

func (s *Server) comparePage(w http.ResponseWriter, r *http.Request) {
	ids, err := parseIDs(strings.Join(r.URL.Query()["jobs"], ","))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cmp, perJob, jobs, err := s.compareRuns(r.Context(), ids, maxPoints)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var prows, mrows []compareRow
	for _, k := range slices.Sorted(maps.Keys(cmp.Params)) {
		row := compareRow{Name: k, Differ: cmp.Differ[k]}
		for _, v := range cmp.Params[k] {
			row.Values = append(row.Values, history.RawString(v))
		}
		prows = append(prows, row)
	}
	for _, k := range slices.Sorted(maps.Keys(cmp.Metrics)) {
		row := compareRow{Name: k}
		for _, m := range cmp.Metrics[k] {
			if m == nil {
				row.Values = append(row.Values, "-")
			} else {
				row.Values = append(row.Values, fmtValue(m.Last)+" / "+fmtValue(m.Best))
			}
		}
		mrows = append(mrows, row)
	}
	s.render(w, r, http.StatusOK, "compare", map[string]any{
		"Title":   "compare " + joinIDs(ids),
		"Jobs":    jobs,
		"Params":  prows,
		"Metrics": mrows,
		"Charts":  buildCharts(perJob, true),
	})
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func (s *Server) apiJobs(w http.ResponseWriter, r *http.Request) {
	kind, state := r.URL.Query().Get("kind"), r.URL.Query().Get("state")
	list, err := s.jobList(r.Context(), kind, state)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) apiJob(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, _, err := s.jobDetail(r.Context(), id, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// MetricsResponse is GET /api/jobs/{id}/metrics.
type MetricsResponse struct {
	Job    int64    `json:"job"`
	Name   string   `json:"name,omitempty"`
	Series []Series `json:"series"`
}

func (s *Server) apiMetrics(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	max := maxPoints
	if v := q.Get("points"); v != "" {
		if max, err = strconv.Atoi(v); err != nil || max < 4 || max > 1_000_000 {
			s.fail(w, r, httpError{http.StatusBadRequest, fmt.Sprintf("points %q: want an integer from 4 to 1000000", v)})
			return
		}
	}
	if _, err := s.st.Job(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	name := q.Get("name")
	rs, err := s.st.JobMetricRanges(r.Context(), id, name)
	if err != nil {
		s.fail(w, r, fmt.Errorf("metrics of job %d: %w", id, err))
		return
	}
	_, series, err := s.metrics(r.Context(), id, rs, name, max)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if name != "" && len(series) == 0 {
		s.fail(w, r, httpError{http.StatusNotFound, fmt.Sprintf("job %d has no metric %q", id, name)})
		return
	}
	if series == nil {
		series = []Series{}
	}
	writeJSON(w, http.StatusOK, MetricsResponse{Job: id, Name: name, Series: series})
}

func (s *Server) apiCompare(w http.ResponseWriter, r *http.Request) {
	ids, err := parseIDs(strings.Join(r.URL.Query()["jobs"], ","))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cmp, _, _, err := s.compareRuns(r.Context(), ids, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cmp)
}

// graph is the task DAG laid out in columns: a task's column is the
// longest chain of dependencies before it.
type graph struct {
	W, H  int
	Nodes []graphNode
	Edges []string // SVG path data
}

type graphNode struct {
	TaskView
	X, Y int
}

const nodeW, nodeH, colGap, rowGap = 132, 40, 48, 14

func taskGraph(ts []TaskView) graph {
	col := map[string]int{}
	rows := map[int]int{}
	var g graph
	pos := map[string][2]int{}
	for _, t := range ts { // plan order: dependencies come first
		c := 0
		for _, d := range t.Deps {
			if col[d]+1 > c {
				c = col[d] + 1
			}
		}
		col[t.Name] = c
		x, y := 8+c*(nodeW+colGap), 8+rows[c]*(nodeH+rowGap)
		rows[c]++
		pos[t.Name] = [2]int{x, y}
		g.Nodes = append(g.Nodes, graphNode{TaskView: t, X: x, Y: y})
		g.W = max(g.W, x+nodeW+8)
		g.H = max(g.H, y+nodeH+8)
	}
	for _, t := range ts {
		to := pos[t.Name]
		for _, d := range t.Deps {
			from, ok := pos[d]
			if !ok {
				continue
			}
			x0, y0 := from[0]+nodeW, from[1]+nodeH/2
			x1, y1 := to[0], to[1]+nodeH/2
			g.Edges = append(g.Edges, fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x0, y0, x0+colGap/2, y0, x1-colGap/2, y1, x1-4, y1))
		}
	}
	return g
}
