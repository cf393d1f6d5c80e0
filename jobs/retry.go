package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

// Retry puts a job's failed and cancelled tasks back in the queue; a
// training task resumes from its last checkpoint (after a divergence, the
// last finite one). sets ("key=value", as for a submission) change the
// parameters first: validated like a submission, applied to the job and to
// the tasks queued again (tasks that succeeded keep the ones they ran
// with), and recorded in the job's history with the old values. It returns
// how many tasks were queued and the change (JSON {"name": [old, new]},
// nil without sets).
func Retry(ctx context.Context, db *store.DB, reg *tasks.Registry, jobID int64, sets []string) (int, json.RawMessage, error) {
	var ch store.RetryChange
	if len(sets) > 0 {
		var err error
		if ch, err = retryChange(ctx, db, reg, jobID, sets); err != nil {
			return 0, nil, err
		}
	}
	n, err := db.RetryJobWith(ctx, jobID, ch)
	if errors.Is(err, store.ErrNothingToRetry) {
		return 0, nil, bad(err)
	}
	if ch.Changes == "" {
		return n, nil, err
	}
	return n, json.RawMessage(ch.Changes), err
}

// retryChange resolves sets over a job's recorded parameters and plans the
// job again, refusing a change that would alter its task graph.
func retryChange(ctx context.Context, db *store.DB, reg *tasks.Registry, jobID int64, sets []string) (store.RetryChange, error) {
	var none store.RetryChange
	for _, s := range sets {
		if k, _, _ := strings.Cut(s, "="); strings.TrimSpace(k) == "preset" {
			return none, badf("--set %s: the preset cannot change on retry (set the parameters themselves)", s)
		}
	}
	j, err := db.Job(ctx, jobID)
	if err != nil {
		return none, err
	}
	kind, err := reg.Job(j.Kind)
	if err != nil {
		return none, bad(err)
	}
	// The recorded parameters are complete: as a config over the defaults
	// and the preset they give the job back exactly, and sets go on top.
	params, err := kind.Resolve([]byte(j.Params), sets)
	if err != nil {
		return none, bad(fmt.Errorf("job %d: %w", jobID, err))
	}
	raw, planned, err := plan(reg, j.Kind, kind, params)
	if err != nil {
		return none, err
	}
	ts, err := db.Tasks(ctx, jobID)
	if err != nil {
		return none, err
	}
	if !samePlan(ts, planned) {
		return none, badf("job %d: %s changes the job's tasks; submit a new job instead", jobID, strings.Join(sets, " "))
	}
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal([]byte(j.Params), &before); err != nil {
		return none, fmt.Errorf("job %d params: %w", jobID, err)
	}
	if err := json.Unmarshal([]byte(raw), &after); err != nil {
		return none, err
	}
	diff := map[string][2]json.RawMessage{}
	for k, v := range after {
		if old, ok := before[k]; !ok || !bytes.Equal(old, v) {
			if !ok {
				old = json.RawMessage("null")
			}
			diff[k] = [2]json.RawMessage{old, v}
		}
	}
	changes, err := json.Marshal(diff)
	if err != nil {
		return none, err
	}
	ch := store.RetryChange{Params: raw, TaskParams: map[string]string{}, Changes: string(changes)}
	for _, t := range planned {
		ch.TaskParams[t.Name] = t.Params
	}
	return ch, nil
}

// samePlan reports whether planned has the stored tasks' names, kinds and
// dependencies.
func samePlan(stored []store.Task, planned []store.NewTask) bool {
	if len(stored) != len(planned) {
		return false
	}
	names := store.TaskNames(stored)
	byName := map[string]store.Task{}
	for _, t := range stored {
		byName[t.Name] = t
	}
	for _, p := range planned {
		t, ok := byName[p.Name]
		if !ok || t.Kind != p.Kind {
			return false
		}
		var deps []string
		for _, d := range t.Deps {
			deps = append(deps, names[d])
		}
		slices.Sort(deps)
		want := slices.Clone(p.Deps)
		slices.Sort(want)
		if !slices.Equal(deps, want) {
			return false
		}
	}
	return true
}
