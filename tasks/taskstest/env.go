// Package taskstest provides an in-memory tasks.Env for testing task kinds
// without a database or a worker.
package taskstest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/compute"

	"github.com/dl4img/dl4img/tasks"
)

// Metric is one recorded value.
type Metric struct {
	Step, Epoch int
	Name        string
	Value       float64
}

// Env records what a task reports. Its directories live under a test's
// temporary directory; its backend is the pure-Go one.
type Env struct {
	TB       testing.TB
	Root     string // the job directory
	Name     string // task name (default "task")
	Try      int    // attempt (default 1)
	mu       sync.Mutex
	metrics  []Metric
	arts     map[string]string
	ckpts    []int
	ckptPath string
	items    map[string]string
	backend  compute.Backend
}

// New returns an Env for task name in a fresh job directory.
func New(tb testing.TB, name string) *Env {
	return &Env{TB: tb, Root: tb.TempDir(), Name: name, Try: 1, arts: map[string]string{}, items: map[string]string{}}
}

// Task returns an Env for another task of the same job (sharing JobDir).
func (e *Env) Task(name string) *Env {
	return &Env{TB: e.TB, Root: e.Root, Name: name, Try: 1, arts: map[string]string{}, items: map[string]string{}, backend: e.backend}
}

var _ tasks.Env = (*Env)(nil)

func (e *Env) JobID() int64     { return 1 }
func (e *Env) TaskID() int64    { return 1 }
func (e *Env) TaskName() string { return e.Name }
func (e *Env) Attempt() int     { return e.Try }
func (e *Env) JobDir() string   { return e.Root }
func (e *Env) Dir() string {
	d := filepath.Join(e.Root, e.Name)
	os.MkdirAll(d, 0o755)
	return d
}

func (e *Env) Backend() (compute.Backend, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.backend == nil {
		b, _, err := tasks.NewBackend("go")
		if err != nil {
			return nil, err
		}
		e.backend = b
	}
	return e.backend, nil
}

func (e *Env) Progress(label string, done, total int) {}

// Metrics records values; one already recorded is skipped, as the store
// does (see tasks.Env).
func (e *Env) Metrics(step, epoch int, values map[string]float64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range values {
		m := Metric{step, epoch, k, v}
		if !slices.ContainsFunc(e.metrics, func(o Metric) bool {
			return o.Step == m.Step && o.Epoch == m.Epoch && o.Name == m.Name && (o.Value == m.Value || (math.IsNaN(o.Value) && math.IsNaN(m.Value)))
		}) {
			e.metrics = append(e.metrics, m)
		}
	}
	return nil
}

// Values returns the recorded values of a metric in order.
func (e *Env) Values(name string) []float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []float64
	for _, m := range e.metrics {
		if m.Name == name {
			out = append(out, m.Value)
		}
	}
	return out
}

func (e *Env) Artifact(role, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("artifact %s: %w", role, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.arts[role] = path
	return nil
}

// ArtifactPath returns the path recorded for a role.
func (e *Env) ArtifactPath(role string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.arts[role]
}

func (e *Env) Checkpoint(step int, path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ckpts = append(e.ckpts, step)
	e.ckptPath = path
	return nil
}

// CheckpointSteps lists the recorded checkpoint steps.
func (e *Env) CheckpointSteps() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.ckpts...)
}

func (e *Env) LatestCheckpoint() (int, string, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.ckpts) == 0 {
		return 0, "", false, nil
	}
	return e.ckpts[len(e.ckpts)-1], e.ckptPath, true, nil
}

func (e *Env) MarkDone(keys ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		if _, ok := e.items[k]; !ok {
			e.items[k] = ""
		}
	}
	return nil
}

func (e *Env) PutItems(items map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range items {
		e.items[k] = v
	}
	return nil
}

func (e *Env) Items() (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.items))
	for k, v := range e.items {
		out[k] = v
	}
	return out, nil
}

func (e *Env) DoneItems() (map[string]bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]bool, len(e.items))
	for k := range e.items {
		out[k] = true
	}
	return out, nil
}

func (e *Env) Logf(format string, args ...any) { e.TB.Logf(e.Name+": "+format, args...) }
