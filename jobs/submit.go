// Package jobs turns submitted jobs into tasks in the store and runs them:
// claiming, leases and heartbeats, resume after crashes, cancellation.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

// ErrBadInput marks errors in what the user gave (kind, params, config):
// the CLI exits 2 for them.
var ErrBadInput = errors.New("bad input")

type badInput struct{ err error }

func (e badInput) Error() string    { return e.err.Error() }
func (e badInput) Unwrap() []error  { return []error{e.err, ErrBadInput} }
func bad(err error) error           { return badInput{err} }
func badf(f string, a ...any) error { return bad(fmt.Errorf(f, a...)) }

// Request is a job submission.
type Request struct {
	Kind   string
	Name   string
	Config []byte   // JSON object of params, may be empty
	Sets   []string // key=value overrides
}

// Submit validates a request against the registry, plans the job's tasks and
// stores it all in one transaction. Bad kinds and parameters are rejected
// here, before anything runs.
func Submit(ctx context.Context, db *store.DB, reg *tasks.Registry, req Request) (int64, error) {
	job, err := Prepare(reg, req)
	if err != nil {
		return 0, err
	}
	id, err := db.CreateJob(ctx, job)
	if err != nil {
		return 0, fmt.Errorf("store job: %w", err)
	}
	return id, nil
}

// Prepare validates a request and plans its job without storing it, so
// that a sweep checks every point before it queues any.
func Prepare(reg *tasks.Registry, req Request) (store.NewJob, error) {
	kind, err := reg.Job(req.Kind)
	if err != nil {
		return store.NewJob{}, bad(err)
	}
	params, err := kind.Resolve(req.Config, req.Sets)
	if err != nil {
		return store.NewJob{}, bad(err)
	}
	raw, planned, err := plan(reg, req.Kind, kind, params)
	if err != nil {
		return store.NewJob{}, err
	}
	job := store.NewJob{Kind: req.Kind, Name: req.Name, Params: raw, Tasks: planned}
	if req.Name == "" {
		job.Name = req.Kind
	}
	return job, nil
}

// plan turns a kind's resolved parameters into its tasks, each with its
// parameters as JSON (the job's own, unless the kind gives it others).
func plan(reg *tasks.Registry, name string, kind tasks.JobKind, params any) (string, []store.NewTask, error) {
	specs, err := kind.Plan(params)
	if err != nil {
		return "", nil, bad(fmt.Errorf("kind %s: %w", name, err))
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return "", nil, err
	}
	var out []store.NewTask
	for _, s := range specs {
		if _, ok := reg.Task(s.Kind); !ok {
			return "", nil, fmt.Errorf("kind %s plans task %s of unregistered task kind %q", name, s.Name, s.Kind)
		}
		tp := string(raw)
		if s.Params != nil {
			b, err := json.Marshal(s.Params)
			if err != nil {
				return "", nil, err
			}
			tp = string(b)
		}
		out = append(out, store.NewTask{Name: s.Name, Kind: s.Kind, Params: tp, Deps: s.Deps, MaxAttempts: s.MaxAttempts})
	}
	return string(raw), out, nil
}
