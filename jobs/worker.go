package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

// ErrDBUnavailable is returned by Run when the database stayed unreachable
// for longer than the worker's DBTimeout.
var ErrDBUnavailable = errors.New("database unreachable")

// Worker claims and runs tasks from a database.
type Worker struct {
	DB       *store.DB
	Registry *tasks.Registry
	// Root is the workdir root: job directories, checkpoints and artifacts
	// are recorded relative to it, so workers on machines that mount the
	// shared folder at different paths each pass their own.
	Root string
	// Backend is the --backend spec (auto, go, xla:cuda, xla:/path).
	Backend string
	// Workers is how many tasks run at once in this process (default 1).
	Workers int
	// Lease is how long a claim lasts without a heartbeat (default 30s);
	// a worker that dies loses its tasks to others after this long.
	Lease time.Duration
	// Poll is how often an idle worker looks for work (default 500ms); on
	// PostgreSQL it also wakes when notified of new work.
	Poll time.Duration
	// DBTimeout is how long the worker retries an unreachable database,
	// with backoff, before Run gives up with ErrDBUnavailable (default 2m).
	// Running tasks stop at a safe point meanwhile only once it has passed.
	DBTimeout time.Duration
	// Drain makes Run return once nothing is left to run.
	Drain bool
	// JobID restricts the worker to one job (0: any job).
	JobID int64
	// Sweep restricts the worker to one sweep's points (0: any job).
	Sweep int64
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
	Ran, Succeeded, Failed, Cancelled, Interrupted, Pruned int
}

func (r *Result) add(o Result) {
	r.Ran += o.Ran
	r.Succeeded += o.Succeeded
	r.Failed += o.Failed
	r.Cancelled += o.Cancelled
	r.Interrupted += o.Interrupted
	r.Pruned += o.Pruned
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
	if w.DBTimeout <= 0 {
		w.DBTimeout = 2 * time.Minute
	}
	if w.Root == "" {
		return Result{}, errors.New("worker: no workdir root")
	}
	if w.Log == nil {
		w.Log = io.Discard
	}
	if w.Owner == "" {
		host, _ := os.Hostname()
		w.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	// One slot's fatal error (the database gone for good) stops the others
	// at their next safe point.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
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
				stop()
			}
		}(i)
	}
	wg.Wait()
	return total, first
}

func (w *Worker) loop(ctx context.Context, owner string) (Result, error) {
	var res Result
	bg := context.WithoutCancel(ctx)
	var out outage
	for ctx.Err() == nil {
		// Taken before looking, so a notification in between still wakes us.
		ready := w.DB.Ready()
		scope := store.Scope{Job: w.JobID, Sweep: w.Sweep}
		t, err := w.DB.ClaimIn(bg, owner, scope, w.Lease)
		idle := t == nil && err == nil
		if idle && w.Drain {
			var q, r int
			if q, r, err = w.DB.ActiveIn(bg, scope); err == nil && q == 0 && r == 0 {
				return res, nil
			}
		}
		if err != nil {
			wait, ferr := w.retry(&out, err)
			if ferr != nil {
				return res, ferr
			}
			sleep(ctx, wait, nil)
			continue
		}
		out.ok()
		if idle {
			sleep(ctx, w.Poll, ready)
			continue
		}
		r, err := w.run(ctx, owner, t)
		res.add(r)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// sleep waits d, or less if ctx ends or wake fires.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// outage tracks how long the database has been unreachable.
type outage struct {
	since time.Time
	next  time.Duration
}

func (o *outage) ok() { o.since = time.Time{} }

// retry decides what to do after a database error: wait and try again
// (backoff from 250ms doubling to 10s, with jitter) while the database has
// been unreachable for less than DBTimeout; otherwise a fatal error.
func (w *Worker) retry(o *outage, err error) (time.Duration, error) {
	if !store.IsUnavailable(err) {
		return 0, err
	}
	now := time.Now()
	if o.since.IsZero() {
		o.since, o.next = now, 250*time.Millisecond
		w.logf("%s (%v); retrying for up to %s", ErrDBUnavailable, oneLine(err.Error()), w.DBTimeout)
	}
	if now.Sub(o.since) >= w.DBTimeout {
		return 0, fmt.Errorf("%w for %s, giving up: %s", ErrDBUnavailable, w.DBTimeout, oneLine(err.Error()))
	}
	d := o.next/2 + time.Duration(rand.Int64N(int64(o.next)))
	o.next = min(2*o.next, 10*time.Second)
	return min(d, o.since.Add(w.DBTimeout).Sub(now)), nil
}

// record runs a write that must land (a task's outcome), retrying while the
// database is unreachable, up to DBTimeout.
func (w *Worker) record(ctx context.Context, fn func() error) error {
	var out outage
	for {
		err := fn()
		if err == nil {
			return nil
		}
		wait, ferr := w.retry(&out, err)
		if ferr != nil {
			return ferr
		}
		sleep(ctx, wait, nil)
	}
}

// run executes one claimed task and records its outcome. Its error is
// fatal for the worker: the database has been unreachable too long.
func (w *Worker) run(ctx context.Context, owner string, t *store.Task) (Result, error) {
	bg := context.WithoutCancel(ctx)
	start := time.Now()
	var job *store.Job
	err := w.record(bg, func() (err error) {
		job, err = w.DB.Job(bg, t.JobID)
		return err
	})
	if err != nil {
		w.logf("task %d: %v", t.ID, err)
		if errors.Is(err, ErrDBUnavailable) {
			return Result{}, err
		}
		return Result{Ran: 1, Failed: 1}, nil
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
	// save writes the outcome, retrying while the database is unreachable.
	// If it never lands, the lease runs out and another worker rescues the
	// task (from its last checkpoint).
	save := func(write func() error) error {
		err := w.record(bg, write)
		if err != nil {
			w.logf("%s: %v", label, err)
		}
		return err
	}
	finish := func(state, msg string) error {
		return save(func() error { return w.DB.Finish(bg, t.ID, owner, state, msg) })
	}
	requeue := func(reason string) error {
		return save(func() error { return w.DB.Requeue(bg, t.ID, owner, reason) })
	}
	fatal := func(err error) error {
		if errors.Is(err, ErrDBUnavailable) {
			return err
		}
		return nil
	}
	switch {
	case errors.Is(cause, ErrDBUnavailable):
		w.logf("%s: stopped after %s: %v", label, took, cause)
		return Result{Ran: 1, Interrupted: 1}, cause
	case err == nil:
		if ferr := finish(store.Succeeded, ""); ferr != nil {
			return Result{Ran: 1, Failed: 1}, fatal(ferr)
		}
		w.logf("%s: succeeded in %s", label, took)
		return Result{Ran: 1, Succeeded: 1}, nil
	case errors.Is(err, tasks.ErrPruned):
		// Not a failure: the sweep stopped a weak point. Not retried.
		msg := oneLine(err.Error())
		ferr := finish(store.Pruned, msg)
		w.logf("%s: %s", label, msg)
		return Result{Ran: 1, Pruned: 1}, fatal(ferr)
	case errors.Is(cause, errLeaseLost):
		w.logf("%s: stopped: %v", label, errLeaseLost)
		return Result{Ran: 1, Failed: 1}, nil
	case errors.Is(cause, errJobCancelled):
		ferr := finish(store.Cancelled, "job cancelled")
		w.logf("%s: cancelled after %s", label, took)
		return Result{Ran: 1, Cancelled: 1}, fatal(ferr)
	case ctx.Err() != nil:
		rerr := requeue("interrupted; will resume")
		w.logf("%s: interrupted after %s; queued to resume", label, took)
		return Result{Ran: 1, Interrupted: 1}, fatal(rerr)
	case store.IsUnavailable(err):
		// The task stopped because its records could not be written: not
		// its fault. It resumes from its last recorded checkpoint.
		w.logf("%s: stopped after %s: %s: %s", label, took, ErrDBUnavailable, oneLine(err.Error()))
		return Result{Ran: 1, Interrupted: 1}, fatal(requeue("database unreachable; will resume"))
	default:
		msg := oneLine(err.Error())
		ferr := finish(store.Failed, msg)
		w.logf("%s: failed: %s", label, msg)
		return Result{Ran: 1, Failed: 1}, fatal(ferr)
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
	var out outage
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cancelled, err := w.DB.Heartbeat(context.WithoutCancel(ctx), id, owner, w.Lease)
		if err == nil || !store.IsUnavailable(err) {
			out.ok()
		}
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			cancel(errLeaseLost)
			return
		case store.IsUnavailable(err):
			// Training goes on (its checkpoints are files) until the
			// database has been gone for DBTimeout; then it stops at a
			// safe point.
			if _, ferr := w.retry(&out, err); ferr != nil {
				cancel(ferr)
				return
			}
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
