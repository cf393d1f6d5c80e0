package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/pgtest"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

type fanParams struct {
	tasks.Common
	N     int    `json:"n"`
	Kind  string `json:"task_kind"`
	Sleep int    `json:"sleep_ms"`
}

// testRegistry has job kinds whose tasks record what they did.
func testRegistry() *tasks.Registry {
	r := tasks.NewRegistry()
	r.RegisterJob(tasks.JobKind{
		Name:      "fan",
		NewParams: func() any { return &fanParams{N: 3, Kind: "quick"} },
		Plan: func(p any) ([]tasks.TaskSpec, error) {
			fp := p.(*fanParams)
			var specs []tasks.TaskSpec
			for i := 0; i < fp.N; i++ {
				specs = append(specs, tasks.TaskSpec{Name: fmt.Sprintf("t%03d", i), Kind: fp.Kind})
			}
			specs = append(specs, tasks.TaskSpec{Name: "after", Kind: "quick", Deps: []string{specs[0].Name}})
			return specs, nil
		},
	})
	r.RegisterTask("quick", func(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
		var p fanParams
		if err := tasks.Decode(raw, &p); err != nil {
			return err
		}
		time.Sleep(time.Duration(p.Sleep) * time.Millisecond)
		f, err := os.OpenFile(filepath.Join(env.JobDir(), "ran.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s %d\n", env.TaskName(), os.Getpid())
		return err
	})
	r.RegisterTask("noop", func(ctx context.Context, env tasks.Env, raw json.RawMessage) error { return nil })
	r.RegisterTask("slow", func(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
		for i := 0; ; i++ {
			env.Progress("spin", i, 1000000)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	r.RegisterTask("boom", func(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
		var m map[string]int
		m["x"]++ // nil map: panics
		return nil
	})
	r.RegisterTask("fail", func(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
		return errors.New("labels.txt:3: unknown character 'é'\nsecond line hidden")
	})
	return r
}

// TestMain doubles as a worker process for the multi-process test (the
// database's DSN comes by environment, as a password must).
func TestMain(m *testing.M) {
	if db := os.Getenv("DL4IMG_TEST_WORKER_DB"); db != "" {
		os.Exit(helperWorker(db, os.Getenv("DL4IMG_TEST_WORKER_ROOT")))
	}
	os.Exit(pgtest.Main(m))
}

func helperWorker(dsn, root string) int {
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer db.Close()
	slots, err := strconv.Atoi(os.Getenv("DL4IMG_TEST_WORKER_SLOTS"))
	if err != nil {
		slots = 2
	}
	w := &Worker{DB: db, Registry: testRegistry(), Root: root, Backend: "go", Drain: true, Poll: 20 * time.Millisecond, Workers: slots}
	res, err := w.Run(context.Background())
	if err != nil || res.Failed > 0 {
		fmt.Fprintln(os.Stderr, res, err)
		return 1
	}
	return 0
}

// backends are the databases the runner's tests run on.
var backends = []struct {
	name   string
	newDSN func(tb testing.TB) string
}{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "t.db") }},
	{"postgres", pgtest.NewDB},
}

// eachBackend runs fn once per database, with a fresh database's DSN.
func eachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.newDSN(t)) })
	}
}

func open(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	return open(t, filepath.Join(t.TempDir(), "t.db"))
}

func submitFan(t *testing.T, db *store.DB, sets ...string) int64 {
	t.Helper()
	id, err := Submit(context.Background(), db, testRegistry(), Request{Kind: "fan", Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// worker returns a worker on db with a fresh workdir root.
func worker(t *testing.T, db *store.DB) *Worker {
	return &Worker{DB: db, Registry: testRegistry(), Root: t.TempDir(), Backend: "go", Poll: 10 * time.Millisecond}
}

func TestSubmitRejectsBadInput(t *testing.T) {
	db := openDB(t)
	for _, req := range []Request{
		{Kind: "nope"},
		{Kind: "fan", Sets: []string{"n=x"}},
		{Kind: "fan", Sets: []string{"bogus=1"}},
		{Kind: "fan", Config: []byte("{")},
	} {
		if _, err := Submit(context.Background(), db, testRegistry(), req); !errors.Is(err, ErrBadInput) {
			t.Errorf("%+v: err %v, want bad input", req, err)
		}
	}
	if js, _ := db.Jobs(context.Background()); len(js) != 0 {
		t.Fatalf("rejected submissions stored %d jobs", len(js))
	}
}

// Four worker processes on one database and 50 quick tasks: every task runs
// exactly once, on SQLite and on PostgreSQL.
func TestWorkerProcessesRunEachTaskOnce(t *testing.T) {
	eachBackend(t, testWorkerProcesses)
}

// runWorkerProcesses runs n worker processes (this test binary, see
// TestMain) with slots tasks at once each until the queue is drained.
func runWorkerProcesses(tb testing.TB, dsn, root string, n, slots int) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([][]byte, n)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^$", "-test.bench=^$")
			cmd.Env = append(os.Environ(), "DL4IMG_TEST_WORKER_DB="+dsn, "DL4IMG_TEST_WORKER_ROOT="+root,
				"DL4IMG_TEST_WORKER_SLOTS="+strconv.Itoa(slots))
			outs[i], errs[i] = cmd.CombinedOutput()
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
	}
}

func testWorkerProcesses(t *testing.T, dsn string) {
	db := open(t, dsn)
	root := t.TempDir()
	job := submitFan(t, db, "n=49", "sleep_ms=10") // 49 + "after" = 50 tasks
	runWorkerProcesses(t, dsn, root, 4, 2)
	j, _ := db.Job(context.Background(), job)
	f, err := os.Open(filepath.Join(Resolve(root, j.WorkDir), "ran.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runs := map[string]int{}
	pids := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, pid, _ := strings.Cut(sc.Text(), " ")
		runs[name]++
		pids[pid] = true
	}
	if len(runs) != 50 {
		t.Fatalf("%d distinct tasks ran, want 50", len(runs))
	}
	for name, n := range runs {
		if n != 1 {
			t.Errorf("task %s ran %d times", name, n)
		}
	}
	t.Logf("tasks spread over %d processes", len(pids))
	if j.State != store.Succeeded {
		t.Fatalf("job state %s", j.State)
	}
	ts, _ := db.Tasks(context.Background(), job)
	for _, task := range ts {
		if task.State != store.Succeeded || task.Attempt != 1 || strings.Count(task.Workers, ":") != 1 {
			t.Errorf("task %s: %s attempt %d workers %q", task.Name, task.State, task.Attempt, task.Workers)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func taskState(db *store.DB, job int64, name string) store.Task {
	ts, _ := db.Tasks(context.Background(), job)
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return store.Task{}
}

func TestInterruptRequeuesRunningTask(t *testing.T) {
	eachBackend(t, testInterrupt)
}

func testInterrupt(t *testing.T, dsn string) {
	db := open(t, dsn)
	job := submitFan(t, db, "n=1", "task_kind=slow")
	ctx, cancel := context.WithCancel(context.Background())
	w := worker(t, db)
	done := make(chan Result)
	go func() { r, _ := w.Run(ctx); done <- r }()
	waitFor(t, "slow task running", func() bool { return taskState(db, job, "t000").State == store.Running })
	cancel()
	res := <-done
	if res.Interrupted != 1 {
		t.Fatalf("result %+v", res)
	}
	task := taskState(db, job, "t000")
	if task.State != store.Queued || task.Attempt != 0 || !strings.Contains(task.Error, "interrupted") {
		t.Fatalf("after interrupt: %s attempt %d %q", task.State, task.Attempt, task.Error)
	}
	if task.ProgressTotal != 1000000 {
		t.Fatalf("progress not stored: %+v", task)
	}
}

func TestCancelStopsRunningTask(t *testing.T) {
	eachBackend(t, testCancel)
}

func testCancel(t *testing.T, dsn string) {
	db := open(t, dsn)
	job := submitFan(t, db, "n=1", "task_kind=slow")
	w := worker(t, db)
	w.Lease, w.Drain = 300*time.Millisecond, true
	done := make(chan Result)
	go func() { r, _ := w.Run(context.Background()); done <- r }()
	waitFor(t, "slow task running", func() bool { return taskState(db, job, "t000").State == store.Running })
	if err := db.CancelJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.Cancelled != 1 {
			t.Fatalf("result %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop the cancelled task")
	}
	if j, _ := db.Job(context.Background(), job); j.State != store.Cancelled {
		t.Fatalf("job %s", j.State)
	}
	if s := taskState(db, job, "after").State; s != store.Cancelled {
		t.Fatalf("dependent task %s", s)
	}
}

func TestFailuresAndPanicsAreOneLineErrors(t *testing.T) {
	for _, kind := range []string{"fail", "boom"} {
		t.Run(kind, func(t *testing.T) {
			db := openDB(t)
			job := submitFan(t, db, "n=2", "task_kind="+kind)
			w := worker(t, db)
			w.Drain = true
			res, err := w.Run(context.Background())
			if err != nil || res.Failed != 2 || res.Succeeded != 0 {
				t.Fatalf("result %+v err %v", res, err)
			}
			task := taskState(db, job, "t000")
			if task.State != store.Failed || strings.Contains(task.Error, "\n") {
				t.Fatalf("task %s error %q", task.State, task.Error)
			}
			if after := taskState(db, job, "after"); after.State != store.Cancelled {
				t.Fatalf("dependent: %s", after.State)
			}
			switch kind {
			case "fail":
				if task.Error != "labels.txt:3: unknown character 'é'" {
					t.Fatalf("error %q", task.Error)
				}
			case "boom":
				j, _ := db.Job(context.Background(), job)
				if !strings.Contains(task.Error, "internal error") {
					t.Fatalf("error %q", task.Error)
				}
				if b, err := os.ReadFile(filepath.Join(Resolve(w.Root, j.WorkDir), "t000", "panic.log")); err != nil || !strings.Contains(string(b), "goroutine") {
					t.Fatalf("panic.log: %v", err)
				}
			}
		})
	}
}

func TestDrainWaitsForRunningDependency(t *testing.T) {
	db := openDB(t)
	job := submitFan(t, db, "n=3", "sleep_ms=50")
	w := worker(t, db)
	w.Poll, w.Drain, w.Workers = 5*time.Millisecond, true, 3
	res, err := w.Run(context.Background())
	if err != nil || res.Succeeded != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	if j, _ := db.Job(context.Background(), job); j.State != store.Succeeded {
		t.Fatalf("job %s", j.State)
	}
}

// An idle PostgreSQL worker wakes on NOTIFY: with a poll interval far
// longer than the test, a task queued later still starts at once.
func TestIdleWorkerWakesOnNotify(t *testing.T) {
	dsn := pgtest.NewDB(t)
	db := open(t, dsn)
	w := worker(t, open(t, dsn))
	w.Poll = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result)
	go func() { r, _ := w.Run(ctx); done <- r }()
	time.Sleep(300 * time.Millisecond) // idle, listening
	job := submitFan(t, db, "n=1")
	waitFor(t, "the queued job done", func() bool {
		j, _ := db.Job(context.Background(), job)
		return j.State == store.Succeeded
	})
	cancel()
	if r := <-done; r.Succeeded != 2 {
		t.Fatalf("result %+v", r)
	}
}

// A worker whose database goes away retries for DBTimeout, then stops its
// task and returns ErrDBUnavailable; it does not fail the task.
func TestDatabaseGoneStopsWorker(t *testing.T) {
	srv, dsn := pgtest.Private(t)
	db := open(t, dsn)
	job := submitFan(t, db, "n=1", "task_kind=slow")
	w := worker(t, db)
	w.Lease, w.DBTimeout = 600*time.Millisecond, 1500*time.Millisecond
	var log strings.Builder
	w.Log = &syncWriter{w: &log}
	done := make(chan error)
	go func() { _, err := w.Run(context.Background()); done <- err }()
	waitFor(t, "slow task running", func() bool { return taskState(db, job, "t000").State == store.Running })
	srv.Kill()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDBUnavailable) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(start); took < w.DBTimeout || took > w.DBTimeout+5*time.Second {
			t.Fatalf("gave up after %s, DBTimeout %s", took, w.DBTimeout)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not give up")
	}
	if strings.Contains(log.String(), "t000: failed") {
		t.Fatalf("a task was failed for the outage:\n%s", log.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// BenchmarkClaimThroughput: four worker processes, one task at a time
// each, drain 500 no-op tasks; tasks/s is the queue's claim-and-finish
// rate (process start-up included, ~2% of a run).
func BenchmarkClaimThroughput(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			var took time.Duration
			for range b.N {
				dsn := be.newDSN(b)
				db, err := store.Open(context.Background(), dsn)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Submit(context.Background(), db, testRegistry(), Request{Kind: "fan", Sets: []string{"n=499", "task_kind=noop"}}); err != nil {
					b.Fatal(err)
				}
				db.Close()
				start := time.Now()
				runWorkerProcesses(b, dsn, b.TempDir(), 4, 1)
				took += time.Since(start)
			}
			b.ReportMetric(float64(500*b.N)/took.Seconds(), "tasks/s")
		})
	}
}
