package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/compute"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

var (
	errLeaseLost    = errors.New("lease lost to another worker")
	errJobCancelled = errors.New("job cancelled")
)

// Worker claims and runs tasks from a database.
type Worker struct {
	DB       *store.DB
	Registry *tasks.Registry
	// Backend is the --backend spec (auto, go, xla:cuda, xla:/path).
	Backend string
	// Workers is how many tasks run at once in this process (default 1).
	Workers int
	// Lease is how long a claim lasts without a heartbeat (default 30s);
	// a worker that dies loses its tasks to others after this long.
	Lease time.Duration
	// Poll is how often an idle worker looks for work (default 500ms).
	Poll time.Duration
	// Drain makes Run return once nothing is left to run.
	Drain bool
	// JobID restricts the worker to one job (0: any job).
	JobID int64
	// Log receives one line per task event; nil discards.
	Log io.Writer
	// Bars shows progress bars on Log.
	Bars bool
	// Owner identifies this process in leases (default host:pid).
	Owner string

	backendOnce sync.Once
	backend     compute.Backend
	backendName string
	backendErr  error
}

// Result counts what a Run did.
type Result struct {
	Ran, Succeeded, Failed, Cancelled, Interrupted int
}

func (r *Result) add(o Result) {
	r.Ran += o.Ran
	r.Succeeded += o.Succeeded
	r.Failed += o.Failed
	r.Cancelled += o.Cancelled
	r.Interrupted += o.Interrupted
}

// Run works until ctx is done (then running tasks are asked to checkpoint
// and stop, and are queued again) or, with Drain, until nothing is left.
func (w *Worker) Run(ctx context.Context) (Result, error) {
	n := w.Workers
	if n <= 0 {
		n = 1
	}
	if w.Lease <= 0 {
		w.Lease = 30 * time.Second
	}
	if w.Poll <= 0 {
		w.Poll = 500 * time.Millisecond
	}
	if w.Log == nil {
		w.Log = io.Discard
	}
	if w.Owner == "" {
		host, _ := os.Hostname()
		w.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	var (
		mu    sync.Mutex
		total Result
		first error
		wg    sync.WaitGroup
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := w.loop(ctx, fmt.Sprintf("%s/%d", w.Owner, i))
			mu.Lock()
			defer mu.Unlock()
			total.add(r)
			if err != nil && first == nil {
				first = err
			}
		}(i)
	}
	wg.Wait()
	return total, first
}

func (w *Worker) loop(ctx context.Context, owner string) (Result, error) {
	var res Result
	bg := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		t, err := w.DB.Claim(bg, owner, w.JobID, w.Lease)
		if err != nil {
			return res, err
		}
		if t == nil {
			if w.Drain {
				q, r, err := w.DB.Active(bg, w.JobID)
				if err != nil {
					return res, err
				}
				if q == 0 && r == 0 {
					return res, nil
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(w.Poll):
			}
			continue
		}
		res.add(w.run(ctx, owner, t))
	}
	return res, nil
}

// run executes one claimed task and records its outcome.
func (w *Worker) run(ctx context.Context, owner string, t *store.Task) Result {
	bg := context.WithoutCancel(ctx)
	start := time.Now()
	job, err := w.DB.Job(bg, t.JobID)
	if err != nil {
		w.logf("task %d: %v", t.ID, err)
		return Result{Ran: 1, Failed: 1}
	}
	label := fmt.Sprintf("job %d %s", t.JobID, t.Name)
	resumed := ""
	if t.Attempt > 1 {
		resumed = fmt.Sprintf(" (attempt %d)", t.Attempt)
	}
	w.logf("%s: started%s", label, resumed)

	taskCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hbDone := make(chan struct{})
	go w.heartbeat(taskCtx, cancel, owner, t.ID, hbDone)

	env := &env{w: w, task: t, job: job, ctx: bg, label: label}
	err = w.call(taskCtx, env, t)
	env.closeBar()
	cancel(nil)
	<-hbDone

	cause := context.Cause(taskCtx)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err == nil:
		if ferr := w.DB.Finish(bg, t.ID, owner, store.Succeeded, ""); ferr != nil {
			w.logf("%s: %v", label, ferr)
			return Result{Ran: 1, Failed: 1}
		}
		w.logf("%s: succeeded in %s", label, took)
		return Result{Ran: 1, Succeeded: 1}
	case errors.Is(cause, errLeaseLost):
		w.logf("%s: stopped: %v", label, errLeaseLost)
		return Result{Ran: 1, Failed: 1}
	case errors.Is(cause, errJobCancelled):
		if ferr := w.DB.Finish(bg, t.ID, owner, store.Cancelled, "job cancelled"); ferr != nil {
			w.logf("%s: %v", label, ferr)
		}
		w.logf("%s: cancelled after %s", label, took)
		return Result{Ran: 1, Cancelled: 1}
	case ctx.Err() != nil:
		if rerr := w.DB.Requeue(bg, t.ID, owner, "interrupted; will resume"); rerr != nil {
			w.logf("%s: %v", label, rerr)
		}
		w.logf("%s: interrupted after %s; queued to resume", label, took)
		return Result{Ran: 1, Interrupted: 1}
	default:
		msg := oneLine(err.Error())
		if ferr := w.DB.Finish(bg, t.ID, owner, store.Failed, msg); ferr != nil {
			w.logf("%s: %v", label, ferr)
		}
		w.logf("%s: failed: %s", label, msg)
		return Result{Ran: 1, Failed: 1}
	}
}

// call runs the task function, turning a panic into an error (the stack goes
// to panic.log in the task's directory, not to the user's terminal).
func (w *Worker) call(ctx context.Context, e *env, t *store.Task) (err error) {
	fn, ok := w.Registry.Task(t.Kind)
	if !ok {
		return fmt.Errorf("unknown task kind %q (this dl4img cannot run it)", t.Kind)
	}
	for _, d := range []string{e.JobDir(), e.Dir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("workdir: %w", err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			p := filepath.Join(e.Dir(), "panic.log")
			os.WriteFile(p, []byte(fmt.Sprintf("%v\n\n%s", r, debug.Stack())), 0o644)
			err = fmt.Errorf("internal error: %v (stack in %s)", oneLine(fmt.Sprint(r)), p)
		}
	}()
	return fn(ctx, e, json.RawMessage(t.Params))
}

func (w *Worker) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, owner string, id int64, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(w.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cancelled, err := w.DB.Heartbeat(context.WithoutCancel(ctx), id, owner, w.Lease)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			cancel(errLeaseLost)
			return
		case err != nil:
			w.logf("task %d: heartbeat: %v", id, err)
		case cancelled:
			cancel(errJobCancelled)
			return
		}
	}
}

func (w *Worker) logf(format string, args ...any) {
	fmt.Fprintf(w.Log, format+"\n", args...)
}

// getBackend creates the worker's backend once; tasks share it.
func (w *Worker) getBackend() (compute.Backend, string, error) {
	w.backendOnce.Do(func() {
		w.backend, w.backendName, w.backendErr = tasks.NewBackend(w.Backend)
	})
	return w.backend, w.backendName, w.backendErr
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
