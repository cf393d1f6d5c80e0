package jobs

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/schollz/progressbar/v3"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
	"github.com/dl4img/dl4img/tasks"
)

// env implements tasks.Env for one running task.
type env struct {
	w     *Worker
	task  *store.Task
	job   *store.Job
	ctx   context.Context // not cancelled by interruption: records must land
	label string

	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	barLabel  string
	lastStore time.Time

	// The sweep the task's job is a point of, and its pruning rule (nil:
	// not a point, or no rule), looked up once (Prune).
	sweepOnce sync.Once
	sweep     *store.Sweep
	rule      *sweep.Rule
	sweepErr  error
}

var _ tasks.Env = (*env)(nil)

func (e *env) JobID() int64     { return e.task.JobID }
func (e *env) TaskID() int64    { return e.task.ID }
func (e *env) TaskName() string { return e.task.Name }
func (e *env) Attempt() int     { return e.task.Attempt }
func (e *env) JobDir() string   { return Resolve(e.w.Root, e.job.WorkDir) }
func (e *env) Dir() string      { return filepath.Join(e.JobDir(), e.task.Name) }

func (e *env) Backend() (compute.Backend, error) {
	b, name, err := e.w.getBackend()
	if err != nil {
		return nil, err
	}
	if err := e.w.DB.SetBackend(e.ctx, e.task.ID, name); err != nil {
		return nil, fmt.Errorf("record backend: %w", err)
	}
	return b, nil
}

func (e *env) Progress(label string, done, total int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w.Bars {
		if e.bar == nil || label != e.barLabel {
			if e.bar != nil {
				e.bar.Finish()
				fmt.Fprintln(e.w.Log)
			}
			e.bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(e.w.Log),
				progressbar.OptionSetDescription(e.label+" "+label),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
			)
			e.barLabel = label
		}
		e.bar.Set(done)
	}
	// The store copy is for `jobs show`; once a second is plenty.
	if now := time.Now(); now.Sub(e.lastStore) >= time.Second || done == total {
		e.lastStore = now
		if err := e.w.DB.SetProgress(e.ctx, e.task.ID, label, done, total); err != nil {
			e.w.logf("%s: progress: %v", e.label, err)
		}
	}
}

func (e *env) closeBar() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bar != nil {
		e.bar.Finish()
		fmt.Fprintln(e.w.Log)
		e.bar = nil
	}
}

func (e *env) Metrics(step, epoch int, values map[string]float64) error {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	ms := make([]store.Metric, 0, len(values))
	for _, n := range names {
		ms = append(ms, store.Metric{Step: step, Epoch: epoch, Name: n, Value: values[n]})
	}
	if err := e.w.DB.AddMetrics(e.ctx, e.task.ID, ms); err != nil {
		return fmt.Errorf("record metrics: %w", err)
	}
	return nil
}

func (e *env) Artifact(role, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	n, sum, err := tasks.FileDigest(abs)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", role, err)
	}
	rec := store.Artifact{TaskID: e.task.ID, Role: role, Path: relative(e.w.Root, abs), Bytes: n, SHA256: sum}
	if err := e.w.DB.AddArtifact(e.ctx, rec); err != nil {
		return fmt.Errorf("record artifact %s: %w", abs, err)
	}
	return nil
}

func (e *env) Checkpoint(step int, path string) error {
	rec := store.Checkpoint{TaskID: e.task.ID, Step: step, Path: relative(e.w.Root, path)}
	if err := e.w.DB.AddCheckpoint(e.ctx, rec); err != nil {
		return fmt.Errorf("record checkpoint: %w", err)
	}
	return nil
}

func (e *env) LatestCheckpoint() (int, string, bool, error) {
	c, ok, err := e.w.DB.LatestCheckpoint(e.ctx, e.task.ID)
	return c.Step, Resolve(e.w.Root, c.Path), ok, err
}

func (e *env) MarkDone(keys ...string) error {
	return e.w.DB.MarkItemsDone(e.ctx, e.task.ID, keys...)
}

func (e *env) PutItems(items map[string]string) error {
	return e.w.DB.PutItems(e.ctx, e.task.ID, items)
}

func (e *env) Items() (map[string]string, error) {
	return e.w.DB.Items(e.ctx, e.task.ID)
}

func (e *env) DoneItems() (map[string]bool, error) {
	return e.w.DB.ItemsDone(e.ctx, e.task.ID)
}

func (e *env) Logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bar != nil {
		e.bar.Clear() // the line goes where the bar was; the bar redraws below
	}
	e.w.logf("%s: %s", e.label, fmt.Sprintf(format, args...))
}
