package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/store"
)

// The JSON API's types. Field names are snake_case and stable: the README
// documents them.

// JobRow is one line of the jobs list.
type JobRow struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	CreatedAt  string    `json:"created_at"`
	FinishedAt string    `json:"finished_at,omitempty"`
	DurationS  float64   `json:"duration_s"`
	Progress   *Progress `json:"progress,omitempty"`
	Headline   *Headline `json:"headline,omitempty"`
	Sweep      *PointRef `json:"sweep,omitempty"` // when the job is a sweep's point
}

// PointRef places a job in its sweep.
type PointRef struct {
	ID    int64 `json:"id"`
	Point int   `json:"point"`
}

// Progress is how far a running task is.
type Progress struct {
	Task  string `json:"task"`
	Label string `json:"label"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

// Headline is the best value of a job's headline metric over its tasks.
type Headline struct {
	Name string        `json:"name"`
	Best history.Value `json:"best"`
}

// JobList is GET /api/jobs.
type JobList struct {
	Jobs    []JobRow `json:"jobs"`
	Kinds   []string `json:"kinds"`   // every kind in the store, for the filter
	Running bool     `json:"running"` // some listed job is queued or running
}

// TaskView is a task of GET /api/jobs/{id}.
type TaskView struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	Deps        []string  `json:"deps"`
	Backend     string    `json:"backend,omitempty"`
	StartedAt   string    `json:"started_at,omitempty"`
	FinishedAt  string    `json:"finished_at,omitempty"`
	DurationS   float64   `json:"duration_s"`
	Error       string    `json:"error,omitempty"`
	Progress    *Progress `json:"progress,omitempty"`
}

// ArtifactView is an artifact of GET /api/jobs/{id}.
type ArtifactView struct {
	ID     int64  `json:"id"`
	Task   string `json:"task"`
	Role   string `json:"role"`
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Type   string `json:"type"` // image, csv or file: how the job page shows it
	URL    string `json:"url"`
}

// CheckpointView is a checkpoint of GET /api/jobs/{id}.
type CheckpointView struct {
	Task string `json:"task"`
	Step int    `json:"step"`
	Path string `json:"path"`
}

// JobDetail is GET /api/jobs/{id}.
type JobDetail struct {
	JobRow
	WorkDir     string            `json:"workdir"`
	Params      json.RawMessage   `json:"params"`
	Tasks       []TaskView        `json:"tasks"`
	Metrics     []history.Summary `json:"metrics"`
	Artifacts   []ArtifactView    `json:"artifacts"`
	Checkpoints []CheckpointView  `json:"checkpoints"`
	Retries     []history.Retry   `json:"retries"`
}

const timeLayout = "2006-01-02T15:04:05.000Z"

// span is the seconds from start to end, or to now while end is empty.
func (s *Server) span(start, end string) float64 {
	t0, err := time.Parse(timeLayout, start)
	if err != nil {
		return 0
	}
	t1 := s.opt.Now()
	if end != "" {
		if t1, err = time.Parse(timeLayout, end); err != nil {
			return 0
		}
	}
	return math.Max(0, t1.Sub(t0).Seconds())
}

func active(state string) bool { return state == store.Queued || state == store.Running }

// runningProgress is the progress of the first running task with one.
func runningProgress(ts []store.Task) *Progress {
	for _, t := range ts {
		if t.State == store.Running {
			return &Progress{Task: t.Name, Label: t.ProgressLabel, Done: t.ProgressDone, Total: t.ProgressTotal}
		}
	}
	return nil
}

// jobRow builds a job's list line; rs are its metric ranges, read here
// when nil and the kind has a headline metric.
func (s *Server) jobRow(ctx context.Context, j store.Job, rs []store.MetricRange) (JobRow, []store.Task, error) {
	row := JobRow{ID: j.ID, Kind: j.Kind, Name: j.Name, State: j.State, CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt,
		DurationS: s.span(j.CreatedAt, j.FinishedAt)}
	ts, err := s.st.Tasks(ctx, j.ID)
	if err != nil {
		return row, nil, fmt.Errorf("tasks of job %d: %w", j.ID, err)
	}
	row.Progress = runningProgress(ts)
	name := s.opt.Headline(j.Kind)
	if name == "" {
		return row, ts, nil
	}
	if rs == nil {
		if rs, err = s.st.JobMetricRanges(ctx, j.ID, name); err != nil {
			return row, nil, fmt.Errorf("metrics of job %d: %w", j.ID, err)
		}
	}
	best := math.NaN()
	for _, r := range rs {
		if r.Name != name {
			continue
		}
		v := r.Max
		if history.LowerIsBetter(name) {
			v = r.Min
		}
		if history.Better(name, v, best) {
			best = v
		}
	}
	if !math.IsNaN(best) {
		row.Headline = &Headline{Name: name, Best: history.Value(best)}
	}
	return row, ts, nil
}

// jobList lists the jobs matching the kind and state filters ("" = any),
// refusing malformed filters.
func (s *Server) jobList(ctx context.Context, kind, state string) (*JobList, error) {
	if err := checkFilter(kind, state); err != nil {
		return nil, err
	}
	js, err := s.st.Jobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	points, err := s.st.JobSweeps(ctx)
	if err != nil {
		return nil, fmt.Errorf("sweep points: %w", err)
	}
	out := &JobList{Jobs: []JobRow{}, Kinds: []string{}}
	kinds := map[string]bool{}
	for _, j := range js {
		if !kinds[j.Kind] {
			kinds[j.Kind] = true
			out.Kinds = append(out.Kinds, j.Kind)
		}
		if (kind != "" && j.Kind != kind) || (state != "" && j.State != state) {
			continue
		}
		row, _, err := s.jobRow(ctx, j, nil)
		if err != nil {
			return nil, err
		}
		if p, ok := points[j.ID]; ok {
			row.Sweep = &PointRef{ID: p.Sweep, Point: p.Index}
		}
		out.Running = out.Running || active(j.State)
		out.Jobs = append(out.Jobs, row)
	}
	sort.Strings(out.Kinds)
	return out, nil
}

// states are the job states the filter offers.
var states = []string{store.Queued, store.Running, store.Succeeded, store.Failed, store.Cancelled, store.Pruned}

func checkFilter(kind, state string) error {
	if state != "" && !slices.Contains(states, state) {
		return httpError{http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s", state, strings.Join(states, ", "))}
	}
	if len(kind) > 200 {
		return httpError{http.StatusBadRequest, "kind: too long"}
	}
	return nil
}

// jobDetail gathers everything the job page shows; it reads the curves'
// points, downsampled to max, only when max > 0.
func (s *Server) jobDetail(ctx context.Context, id int64, max int) (d *JobDetail, series []Series, err error) {
	j, err := s.st.Job(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.st.JobMetricRanges(ctx, id, "")
	if err != nil {
		return nil, nil, fmt.Errorf("metrics of job %d: %w", id, err)
	}
	row, ts, err := s.jobRow(ctx, *j, rs)
	if err != nil {
		return nil, nil, err
	}
	d = &JobDetail{JobRow: row, WorkDir: j.WorkDir, Params: json.RawMessage(j.Params), Tasks: []TaskView{},
		Artifacts: []ArtifactView{}, Checkpoints: []CheckpointView{}}
	if !json.Valid(d.Params) {
		d.Params = json.RawMessage("null")
	}
	names := store.TaskNames(ts)
	for _, t := range ts {
		tv := TaskView{ID: t.ID, Name: t.Name, Kind: t.Kind, State: t.State, Attempt: t.Attempt, MaxAttempts: t.MaxAttempts,
			Deps: []string{}, Backend: t.Backend, StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, Error: t.Error}
		for _, dep := range t.Deps {
			tv.Deps = append(tv.Deps, names[dep])
		}
		if t.StartedAt != "" {
			tv.DurationS = s.span(t.StartedAt, t.FinishedAt)
		}
		if t.ProgressTotal > 0 {
			tv.Progress = &Progress{Task: t.Name, Label: t.ProgressLabel, Done: t.ProgressDone, Total: t.ProgressTotal}
		}
		d.Tasks = append(d.Tasks, tv)
		cps, err := s.st.Checkpoints(ctx, t.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoints of task %d: %w", t.ID, err)
		}
		for _, c := range cps {
			d.Checkpoints = append(d.Checkpoints, CheckpointView{Task: t.Name, Step: c.Step, Path: c.Path})
		}
	}
	retries, err := s.st.JobRetries(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("retries of job %d: %w", id, err)
	}
	d.Retries = history.Retries(retries)
	d.Metrics, series, err = s.metrics(ctx, id, rs, "", max)
	if err != nil {
		return nil, nil, err
	}
	as, err := s.st.JobArtifactRecords(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("artifacts of job %d: %w", id, err)
	}
	for _, a := range as {
		d.Artifacts = append(d.Artifacts, ArtifactView{ID: a.ID, Task: a.Task, Role: a.Role, Path: a.Path, Bytes: a.Bytes,
			SHA256: a.SHA256, Type: artifactType(a.Path), URL: fmt.Sprintf("/jobs/%d/artifacts/%d", id, a.ID)})
	}
	return d, series, nil
}

// compareRuns loads what `runs compare` shows, plus each job's series for
// the overlaid curves.
func (s *Server) compareRuns(ctx context.Context, ids []int64, max int) (*history.Comparison, [][]Series, []store.Job, error) {
	runs := make([]history.Run, len(ids))
	series := make([][]Series, len(ids))
	jobs := make([]store.Job, len(ids))
	for i, id := range ids {
		j, err := s.st.Job(ctx, id)
		if err != nil {
			return nil, nil, nil, err
		}
		rs, err := s.st.JobMetricRanges(ctx, id, "")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("metrics of job %d: %w", id, err)
		}
		sum, ss, err := s.metrics(ctx, id, rs, "", max)
		if err != nil {
			return nil, nil, nil, err
		}
		jobs[i], series[i] = *j, ss
		runs[i] = history.Run{Job: *j, Metrics: sum}
	}
	cmp, err := history.Compare(runs)
	if err != nil {
		return nil, nil, nil, err
	}
	return cmp, series, jobs, nil
}

// metrics returns the summaries of a job's metrics named name ("" = all)
// from their ranges rs and, when max > 0, their series with at most max
// points each. Long series are downsampled by the database
// (store.MetricBuckets): the server never reads a 100k-point metric row by
// row.
func (s *Server) metrics(ctx context.Context, jobID int64, rs []store.MetricRange, name string, max int) ([]history.Summary, []Series, error) {
	sums := []history.Summary{}
	var series []Series
	for _, r := range rs {
		if name != "" && r.Name != name {
			continue
		}
		sum := history.Summary{Task: r.Task, Name: r.Name, Count: r.Count, Best: history.Value(r.Max)}
		if history.LowerIsBetter(r.Name) {
			sum.Best = history.Value(r.Min)
		}
		sr := Series{Job: jobID, Task: r.Task, Name: r.Name, X: "step", Count: r.Count, Points: []Point{}}
		byEpoch := r.MaxStep == 0 && r.MinStep == 0
		lo, hi := r.MinStep, r.MaxStep
		if byEpoch {
			sr.X, lo, hi = "epoch", r.MinEpoch, r.MaxEpoch
		}
		var last store.Metric
		if max > 0 && r.Count <= max {
			ms, err := s.st.MetricPoints(ctx, r.TaskID, r.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("metric %s of task %d: %w", r.Name, r.TaskID, err)
			}
			if len(ms) == 0 { // deleted since the ranges were read
				continue
			}
			for _, m := range ms {
				x := m.Step
				if byEpoch {
					x = m.Epoch
				}
				sr.Points = append(sr.Points, Point{float64(x), m.Value})
			}
			last = ms[len(ms)-1]
		} else {
			var err error
			if last, err = s.st.LastMetric(ctx, r.TaskID, r.Name); err != nil {
				return nil, nil, err
			}
			if max > 0 {
				bs, err := s.st.MetricBuckets(ctx, r.TaskID, r.Name, byEpoch, lo, hi, max/2)
				if err != nil {
					return nil, nil, fmt.Errorf("metric %s of task %d: %w", r.Name, r.TaskID, err)
				}
				sr.Points = envelope(bs)
			}
		}
		sum.Last, sum.Step, sum.Epoch = history.Value(last.Value), last.Step, last.Epoch
		sums = append(sums, sum)
		if max > 0 {
			series = append(series, sr)
		}
	}
	return sums, series, nil
}

// envelope turns buckets into points: a bucket with one value is that
// point; otherwise its lowest and highest value at the middle of its x
// range, the one nearer the previous point first, so a smooth curve stays
// a line and a noisy one becomes its band. A bucket holding a NaN or
// infinite value then ends the curve with a gap at its last x (a
// divergence is where a curve stops).
func envelope(bs []store.MetricBucket) []Point {
	out := make([]Point, 0, 2*len(bs))
	for _, b := range bs {
		out = appendBucket(out, b)
		if b.NonFinite > 0 {
			out = append(out, Point{float64(b.MaxX), math.NaN()})
		}
	}
	return out
}

// appendBucket adds a bucket's finite extent (one point, or its lowest and
// highest value at the middle of its x range).
func appendBucket(out []Point, b store.MetricBucket) []Point {
	switch {
	case b.Count == b.NonFinite:
		return out
	case b.Count-b.NonFinite == 1 || b.Min == b.Max:
		return append(out, Point{float64(b.MinX), b.Min})
	}
	x := float64(b.MinX+b.MaxX) / 2
	lo, hi := Point{x, b.Min}, Point{x, b.Max}
	if n := len(out); n > 0 && math.Abs(out[n-1][1]-b.Max) < math.Abs(out[n-1][1]-b.Min) {
		lo, hi = hi, lo
	}
	return append(out, lo, hi)
}
