package history

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
)

// SweepPoint is one point of a sweep as `sweep show` and the web UI rank it.
type SweepPoint struct {
	Rank      int                        `json:"rank"` // 1 = best; 0 while it has no value
	Point     int                        `json:"point"`
	Job       int64                      `json:"job"`
	State     string                     `json:"state"`
	Params    map[string]json.RawMessage `json:"params"` // the swept values
	Best      *Value                     `json:"best"`   // the metric's best value; null while none
	Epochs    int                        `json:"epochs"` // the last epoch that reported it
	PrunedAt  int                        `json:"pruned_at,omitempty"`
	DurationS float64                    `json:"duration_s"`
	Error     string                     `json:"error,omitempty"`
}

// Ranking is a sweep and its points, best first.
type Ranking struct {
	Sweep  store.Sweep   `json:"sweep"`
	Spec   sweep.Spec    `json:"spec"`            // how its points were made
	Rule   *sweep.Rule   `json:"prune,omitempty"` // its pruning rule (nil: none)
	Swept  []sweep.Param `json:"swept"`           // the swept parameters, in the sweep's order
	Points []SweepPoint  `json:"points"`
	// BestJob is the best-ranked point that succeeded (0: none yet).
	BestJob int64 `json:"best_job,omitempty"`
}

const timeLayout = "2006-01-02T15:04:05.000Z"

// RankSweep ranks a sweep's points by the sweep's metric (its best value
// over each job's tasks and epochs): points with a value first, best
// first, ties in point order; the others after, in point order. now ends
// the time of points still running.
func RankSweep(s store.Sweep, pts []store.SweepPoint, now time.Time) (*Ranking, error) {
	var spec sweep.Spec
	if err := json.Unmarshal([]byte(s.Spec), &spec); err != nil {
		return nil, fmt.Errorf("sweep %d spec: %w", s.ID, err)
	}
	rule, err := sweep.ParseRule(s.Prune)
	if err != nil {
		return nil, fmt.Errorf("sweep %d: %w", s.ID, err)
	}
	r := &Ranking{Sweep: s, Spec: spec, Rule: rule, Swept: spec.Params(), Points: make([]SweepPoint, 0, len(pts))}
	for _, p := range pts {
		sp := SweepPoint{Point: p.Index, Job: p.Job, State: p.State, PrunedAt: p.PrunedAt, Epochs: p.Epoch, Error: p.Error}
		if err := json.Unmarshal([]byte(p.Params), &sp.Params); err != nil {
			return nil, fmt.Errorf("sweep %d point %d: %w", s.ID, p.Index, err)
		}
		if p.HasBest {
			v := Value(p.Best)
			sp.Best = &v
		}
		sp.DurationS = span(p.StartedAt, p.FinishedAt, now)
		r.Points = append(r.Points, sp)
	}
	has := func(p SweepPoint) bool { return p.Best != nil && !math.IsNaN(float64(*p.Best)) }
	sort.SliceStable(r.Points, func(i, j int) bool {
		a, b := r.Points[i], r.Points[j]
		if has(a) != has(b) {
			return has(a)
		}
		if !has(a) || *a.Best == *b.Best {
			return a.Point < b.Point
		}
		if s.Lower {
			return *a.Best < *b.Best
		}
		return *a.Best > *b.Best
	})
	for i := range r.Points {
		p := &r.Points[i]
		if has(*p) {
			p.Rank = i + 1
		}
		if r.BestJob == 0 && p.State == store.Succeeded && has(*p) {
			r.BestJob = p.Job
		}
	}
	return r, nil
}

// span is the seconds from start to end (to now while end is empty; 0
// before start).
func span(start, end string, now time.Time) float64 {
	t0, err := time.Parse(timeLayout, start)
	if err != nil {
		return 0
	}
	t1 := now
	if end != "" {
		if t1, err = time.Parse(timeLayout, end); err != nil {
			return 0
		}
	}
	return math.Max(0, t1.Sub(t0).Seconds())
}
