// Package tasks is the registry of job and task kinds and the plumbing that
// task kinds share: parameters, the task environment, backends, atomic files
// and checkpoints. A task kind knows nothing of SQL or leases.
package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/gomlx/compute"
)

// Env is what a running task gets from the worker.
type Env interface {
	JobID() int64
	TaskID() int64
	TaskName() string
	// Attempt is 1 for the first run; more after a crash.
	Attempt() int
	// Dir is the task's own working directory (created).
	Dir() string
	// JobDir is shared by all tasks of the job (created).
	JobDir() string
	// Backend is the GoMLX backend this worker runs on, created on first use.
	Backend() (compute.Backend, error)
	// Progress reports how far the task is; it drives the progress bar and
	// is stored so that `jobs show` can report it.
	Progress(label string, done, total int)
	// Metrics records values at a training step/epoch, in one transaction.
	// A value already recorded (same name, step, epoch and value) is
	// skipped, so a resumed task may record what it recorded before.
	Metrics(step, epoch int, values map[string]float64) error
	// Artifact records a finished output file (size and sha256 computed).
	Artifact(role, path string) error
	// Checkpoint records a checkpoint that is completely on disk.
	Checkpoint(step int, path string) error
	// LatestCheckpoint is the newest recorded checkpoint of this task.
	LatestCheckpoint() (step int, path string, ok bool, err error)
	// MarkDone records finished items of a long task; DoneItems lists them,
	// so that a restarted task skips what is done.
	MarkDone(keys ...string) error
	DoneItems() (map[string]bool, error)
	// PutItems is MarkDone with a value per item (e.g. a tile's manifest row
	// as JSON), queryable in the store; Items returns them.
	PutItems(items map[string]string) error
	Items() (map[string]string, error)
	// Logf writes a line to the worker's log (stderr unless quiet).
	Logf(format string, args ...any)
}

// TaskFunc runs one task. params is the task's JSON parameters. It must
// return when ctx is done, after saving what lets it resume (checkpoint).
type TaskFunc func(ctx context.Context, env Env, params json.RawMessage) error

// TaskSpec is one node of the DAG a job kind plans.
type TaskSpec struct {
	Name string
	Kind string // a registered task kind
	Deps []string
	// Params for this task; nil means the job's own parameters.
	Params any
	// MaxAttempts bounds restarts after crashes (default 3).
	MaxAttempts int
}

// JobKind is a kind of job users submit.
type JobKind struct {
	Name string
	Doc  string
	// NewParams returns a pointer to a params struct holding the defaults.
	// Fields carry `json:"name"` and `doc:"..."` tags; embed Common.
	NewParams func() any
	// Headline names the metric that says how good a run of this kind is
	// (best over its tasks and epochs); the web UI's jobs list shows it.
	Headline string
	// Presets are named bundles of defaults, applied before user values.
	Presets map[string]map[string]any
	// Plan turns resolved params (as returned by NewParams) into tasks.
	Plan func(params any) ([]TaskSpec, error)
}

// Registry holds the kinds known to a program.
type Registry struct {
	jobs  map[string]JobKind
	tasks map[string]TaskFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{jobs: map[string]JobKind{}, tasks: map[string]TaskFunc{}}
}

// Default is the registry kind packages add themselves to from init.
var Default = NewRegistry()

// RegisterJob adds a job kind; it panics on a duplicate (a programming error).
func (r *Registry) RegisterJob(k JobKind) {
	if _, dup := r.jobs[k.Name]; dup {
		panic("tasks: job kind registered twice: " + k.Name)
	}
	r.jobs[k.Name] = k
}

// RegisterTask adds a task kind.
func (r *Registry) RegisterTask(kind string, fn TaskFunc) {
	if _, dup := r.tasks[kind]; dup {
		panic("tasks: task kind registered twice: " + kind)
	}
	r.tasks[kind] = fn
}

// Job returns a job kind.
func (r *Registry) Job(name string) (JobKind, error) {
	k, ok := r.jobs[name]
	if !ok {
		return k, fmt.Errorf("unknown job kind %q (known: %v)", name, r.JobNames())
	}
	return k, nil
}

// Task returns a task kind's function.
func (r *Registry) Task(kind string) (TaskFunc, bool) {
	fn, ok := r.tasks[kind]
	return fn, ok
}

// JobNames lists job kinds, sorted.
func (r *Registry) JobNames() []string {
	names := make([]string, 0, len(r.jobs))
	for n := range r.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
