package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestMain doubles as a worker process for the multi-process test.
func TestMain(m *testing.M) {
	if db := os.Getenv("DL4IMG_TEST_WORKER_DB"); db != "" {
		os.Exit(helperWorker(db))
	}
	os.Exit(m.Run())
}

func helperWorker(path string) int {
	db, err := store.Open(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer db.Close()
	w := &Worker{DB: db, Registry: testRegistry(), Backend: "go", Drain: true, Poll: 20 * time.Millisecond, Workers: 2}
	res, err := w.Run(context.Background())
	if err != nil || res.Failed > 0 {
		fmt.Fprintln(os.Stderr, res, err)
		return 1
	}
	return 0
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func submitFan(t *testing.T, db *store.DB, sets ...string) int64 {
	t.Helper()
	id, err := Submit(context.Background(), db, testRegistry(), Request{Kind: "fan", Sets: sets, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return id
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
// exactly once.
func TestWorkerProcessesRunEachTaskOnce(t *testing.T) {
	db := openDB(t)
	job := submitFan(t, db, "n=50", "sleep_ms=10")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	outs := make([][]byte, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "DL4IMG_TEST_WORKER_DB="+db.Path())
			outs[i], errs[i] = cmd.CombinedOutput()
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
	}
	j, _ := db.Job(context.Background(), job)
	f, err := os.Open(filepath.Join(j.WorkDir, "ran.log"))
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
	if len(runs) != 51 {
		t.Fatalf("%d distinct tasks ran, want 51", len(runs))
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
		if task.State != store.Succeeded || task.Attempt != 1 {
			t.Errorf("task %s: %s attempt %d", task.Name, task.State, task.Attempt)
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
	db := openDB(t)
	job := submitFan(t, db, "n=1", "task_kind=slow")
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{DB: db, Registry: testRegistry(), Backend: "go", Poll: 10 * time.Millisecond}
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
	db := openDB(t)
	job := submitFan(t, db, "n=1", "task_kind=slow")
	w := &Worker{DB: db, Registry: testRegistry(), Backend: "go", Poll: 10 * time.Millisecond, Lease: 300 * time.Millisecond, Drain: true}
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
			w := &Worker{DB: db, Registry: testRegistry(), Backend: "go", Poll: 10 * time.Millisecond, Drain: true}
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
				if b, err := os.ReadFile(filepath.Join(j.WorkDir, "t000", "panic.log")); err != nil || !strings.Contains(string(b), "goroutine") {
					t.Fatalf("panic.log: %v", err)
				}
			}
		})
	}
}

func TestDrainWaitsForRunningDependency(t *testing.T) {
	db := openDB(t)
	job := submitFan(t, db, "n=3", "sleep_ms=50")
	w := &Worker{DB: db, Registry: testRegistry(), Backend: "go", Poll: 5 * time.Millisecond, Drain: true, Workers: 3}
	res, err := w.Run(context.Background())
	if err != nil || res.Succeeded != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	if j, _ := db.Job(context.Background(), job); j.State != store.Succeeded {
		t.Fatalf("job %s", j.State)
	}
}
