// Package history turns stored metrics and parameters into what people
// compare runs by: each metric's last and best value, and parameters side
// by side. The CLI (`jobs show`, `runs compare`) and the web UI (`serve`)
// report the same numbers because both use it.
package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/store"
)

// Summary is a metric's last and best value in a task.
type Summary struct {
	Task  string `json:"task"`
	Name  string `json:"name"`
	Count int    `json:"count"`
	Last  Value  `json:"last"`
	Best  Value  `json:"best"`
	Step  int    `json:"last_step"`
	Epoch int    `json:"last_epoch"`
}

// Value is a metric value; in JSON a NaN or infinite one (a diverged
// loss) is null, which encoding/json could not write otherwise.
type Value float64

// MarshalJSON writes null for NaN and ±Inf.
func (v Value) MarshalJSON() ([]byte, error) {
	f := float64(v)
	if !finite(f) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Format shows a metric value for people: NaN, Inf and -Inf as such, the
// rest with digits significant digits (-1: as many as needed).
func Format(v float64, digits int) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', digits, 64)
}

// LowerIsBetter decides the direction of "best" from the metric's name.
func LowerIsBetter(name string) bool {
	for _, s := range []string{"loss", "err", "cer", "time", "seconds"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Better reports whether v improves on best. A NaN or infinite v never
// does (a diverged loss is not the best loss, nor +Inf the best accuracy);
// a non-finite best means nothing finite yet.
func Better(name string, v, best float64) bool {
	if !finite(v) {
		return false
	}
	if !finite(best) {
		return true
	}
	if LowerIsBetter(name) {
		return v < best
	}
	return v > best
}

// Summarize returns one summary per task and metric, in the order of ms
// (which is by step within each task and metric).
func Summarize(ms []store.Metric) []Summary {
	idx := map[string]int{}
	var out []Summary
	for _, m := range ms {
		key := m.Task + "/" + m.Name
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, Summary{Task: m.Task, Name: m.Name, Best: Value(m.Value)})
		}
		s := &out[i]
		s.Count++
		s.Last, s.Step, s.Epoch = Value(m.Value), m.Step, m.Epoch
		if Better(m.Name, m.Value, float64(s.Best)) {
			s.Best = Value(m.Value)
		}
	}
	return out
}

// Run is what a comparison needs of one job.
type Run struct {
	Job     store.Job
	Metrics []Summary
}

// Comparison is the data behind `runs compare`.
type Comparison struct {
	Jobs    []int64                      `json:"jobs"`
	Params  map[string][]json.RawMessage `json:"params"`  // name → value per job (null if absent)
	Differ  map[string]bool              `json:"differ"`  // params whose values differ
	Metrics map[string][]*Summary        `json:"metrics"` // task/name → summary per job (null if absent)
}

// Compare lines up the parameters (the kind counts as one) and metric
// summaries of runs.
func Compare(runs []Run) (*Comparison, error) {
	cmp := &Comparison{Params: map[string][]json.RawMessage{}, Differ: map[string]bool{}, Metrics: map[string][]*Summary{}}
	for i, r := range runs {
		cmp.Jobs = append(cmp.Jobs, r.Job.ID)
		var ps map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.Job.Params), &ps); err != nil {
			return nil, fmt.Errorf("job %d params: %w", r.Job.ID, err)
		}
		if ps == nil {
			ps = map[string]json.RawMessage{}
		}
		ps["kind"], _ = json.Marshal(r.Job.Kind)
		for k, val := range ps {
			if cmp.Params[k] == nil {
				cmp.Params[k] = make([]json.RawMessage, len(runs))
			}
			cmp.Params[k][i] = val
		}
		for _, m := range r.Metrics {
			key := m.Task + "/" + m.Name
			if cmp.Metrics[key] == nil {
				cmp.Metrics[key] = make([]*Summary, len(runs))
			}
			cmp.Metrics[key][i] = &m
		}
	}
	for k, vals := range cmp.Params {
		for _, v := range vals[1:] {
			if !bytes.Equal(v, vals[0]) {
				cmp.Differ[k] = true
			}
		}
	}
	return cmp, nil
}

// RawString shows a JSON parameter value: strings unquoted (an empty one as
// ""), others as written, "-" for a parameter the job does not have.
func RawString(v json.RawMessage) string {
	if v == nil {
		return "-"
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return `""`
		}
		return s
	}
	return string(v)
}

// Retry is a recorded `jobs retry`, as `jobs show --json` and the web UI
// give it: when, the tasks it queued again, the parameters it changed
// ({"name": [old, new]}).
type Retry struct {
	At      string          `json:"at"`
	Tasks   []string        `json:"tasks"`
	Changes json.RawMessage `json:"changes"`
}

// Retries turns stored retries into their view (never nil).
func Retries(rs []store.Retry) []Retry {
	out := []Retry{}
	for _, r := range rs {
		ch := json.RawMessage(r.Changes)
		if !json.Valid(ch) {
			ch = json.RawMessage("{}")
		}
		out = append(out, Retry{At: r.At, Tasks: strings.Fields(r.Tasks), Changes: ch})
	}
	return out
}

// Describe shows a retry's changes for people: "learning_rate 1e+30 →
// 0.001; …" ("" when there are none).
func (r Retry) Describe() string { return DescribeChanges(r.Changes) }

// DescribeChanges shows {"name": [old, new]} as "name old → new; …".
func DescribeChanges(raw json.RawMessage) string {
	var ch map[string][2]json.RawMessage
	if json.Unmarshal(raw, &ch) != nil || len(ch) == 0 {
		return ""
	}
	keys := make([]string, 0, len(ch))
	for k := range ch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	show := func(v json.RawMessage) string {
		if string(v) == "null" { // a parameter the job did not have
			return "-"
		}
		return RawString(v)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s → %s", k, show(ch[k][0]), show(ch[k][1]))
	}
	return strings.Join(parts, "; ")
}
