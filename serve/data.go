package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
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

func (s *Server) jobRow(ctx context.Context, j store.Job) (JobRow, []store.Task, error) {
	row := JobRow{ID: j.ID, Kind: j.Kind, Name: j.Name, State: j.State, CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt,
		DurationS: s.span(j.CreatedAt, j.FinishedAt)}
	ts, err := s.st.Tasks(ctx, j.ID)
	if err != nil {
		return row, nil, fmt.Errorf("tasks of job %d: %w", j.ID, err)
	}
	row.Progress = runningProgress(ts)
	if name := s.opt.Headline(j.Kind); name != "" {
		rs, err := s.st.JobMetricRanges(ctx, j.ID)
		if err != nil {
			return row, nil, fmt.Errorf("metrics of job %d: %w", j.ID, err)
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
	}
	return row, ts, nil
}

// jobList lists the jobs matching the kind and state filters ("" = any).
func (s *Server) jobList(ctx context.Context, kind, state string) (*JobList, error) {
	js, err := s.st.Jobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
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
		row, _, err := s.jobRow(ctx, j)
		if err != nil {
			return nil, err
		}
		out.Running = out.Running || active(j.State)
		out.Jobs = append(out.Jobs, row)
	}
	sort.Strings(out.Kinds)
	return out, nil
}

// states are the job states the filter offers.
var states = []string{store.Queued, store.Running, store.Succeeded, store.Failed, store.Cancelled}

func checkFilter(kind, state string) error {
	if state != "" && !contains(states, state) {
		return httpError{http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s", state, strings.Join(states, ", "))}
	}
	if len(kind) > 200 {
		return httpError{http.StatusBadRequest, "kind: too long"}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jobDetail gathers everything the job page shows except the curves'
// points; ms are the job's metrics (all of them, for the summaries).
func (s *Server) jobDetail(ctx context.Context, id int64) (*JobDetail, []store.Metric, error) {
	j, err := s.st.Job(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	row, ts, err := s.jobRow(ctx, *j)
	if err != nil {
		return nil, nil, err
	}
	d := &JobDetail{JobRow: row, WorkDir: j.WorkDir, Params: json.RawMessage(j.Params), Tasks: []TaskView{},
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
	ms, err := s.st.JobMetricPoints(ctx, id, "")
	if err != nil {
		return nil, nil, fmt.Errorf("metrics of job %d: %w", id, err)
	}
	d.Metrics = history.Summarize(ms)
	if d.Metrics == nil {
		d.Metrics = []history.Summary{}
	}
	as, err := s.st.JobArtifactRecords(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("artifacts of job %d: %w", id, err)
	}
	for _, a := range as {
		d.Artifacts = append(d.Artifacts, ArtifactView{ID: a.ID, Task: a.Task, Role: a.Role, Path: a.Path, Bytes: a.Bytes,
			SHA256: a.SHA256, Type: artifactType(a.Path), URL: fmt.Sprintf("/jobs/%d/artifacts/%d", id, a.ID)})
	}
	return d, ms, nil
}

// compareRuns loads what `runs compare` shows, plus each job's metric
// points for the overlaid curves.
func (s *Server) compareRuns(ctx context.Context, ids []int64) (*history.Comparison, [][]store.Metric, []store.Job, error) {
	runs := make([]history.Run, len(ids))
	points := make([][]store.Metric, len(ids))
	jobs := make([]store.Job, len(ids))
	for i, id := range ids {
		j, err := s.st.Job(ctx, id)
		if err != nil {
			return nil, nil, nil, err
		}
		ms, err := s.st.JobMetricPoints(ctx, id, "")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("metrics of job %d: %w", id, err)
		}
		jobs[i], points[i] = *j, ms
		runs[i] = history.Run{Job: *j, Metrics: history.Summarize(ms)}
	}
	cmp, err := history.Compare(runs)
	if err != nil {
		return nil, nil, nil, err
	}
	return cmp, points, jobs, nil
}
