//go:build soak

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/pgtest"
	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
)

// TestSoak is the soak benchmark that bench/soak.sh runs (build tag soak:
// never part of `make test`). SOAK_JOBS selftest jobs (default 1000, with
// SOAK_SETS, default preset=demo) are
// queued on each database of SOAK_DBS (default "postgres sqlite"), and
// SOAK_WORKERS worker processes (default 4) run them, each restarted when
// it dies, while a random one is SIGKILLed every SOAK_KILL_MIN to
// SOAK_KILL_MAX seconds (default 2 to 5) for SOAK_MINUTES (default 10). On
// PostgreSQL the server is stopped (fast shutdown) and started again after
// SOAK_DOWN seconds (default 20), at a third and at two thirds of that
// time. After the kills end the workers drain what is left, and the jobs
// that failed are retried (`jobs retry`) and drained too. Then every job
// must have succeeded exactly once, with complete metrics. The results go
// to stdout and, as Markdown, to SOAK_OUT/soak-DB.md.
func TestSoak(t *testing.T) {
	cfg := soakConfig{
		jobs:    envInt("SOAK_JOBS", 1000),
		workers: envInt("SOAK_WORKERS", 4),
		minutes: time.Duration(envInt("SOAK_MINUTES", 10)) * time.Minute,
		killMin: time.Duration(envInt("SOAK_KILL_MIN", 2)) * time.Second,
		killMax: time.Duration(envInt("SOAK_KILL_MAX", 5)) * time.Second,
		down:    time.Duration(envInt("SOAK_DOWN", 20)) * time.Second,
		sets:    strings.Fields(envStr("SOAK_SETS", "preset=demo")),
		lease:   envStr("SOAK_LEASE", "30s"),
		out:     os.Getenv("SOAK_OUT"),
	}
	for _, db := range strings.Fields(envStr("SOAK_DBS", "postgres sqlite")) {
		t.Run(db, func(t *testing.T) { soak(t, cfg, db) })
	}
}

type soakConfig struct {
	jobs, workers    int
	minutes, down    time.Duration
	killMin, killMax time.Duration
	sets             []string
	lease, out       string
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// supervisor keeps n worker processes running, as systemd would (a
// second between restarts of one that could not start: a worker started
// while the database is down exits 2 at once), and kills one at random on
// request.
type supervisor struct {
	mu       sync.Mutex
	procs    []*os.Process
	starts   int
	exits    map[string]int // how workers ended: "SIGKILL", "exit 2", …
	stopping bool
	wg       sync.WaitGroup
}

func (s *supervisor) run(t *testing.T, n int, cmd func(slot int) *exec.Cmd) {
	s.procs, s.exits = make([]*os.Process, n), map[string]int{}
	for slot := range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				s.mu.Lock()
				if s.stopping {
					s.mu.Unlock()
					return
				}
				c := cmd(slot)
				if err := c.Start(); err != nil {
					s.mu.Unlock()
					t.Errorf("start worker: %v", err)
					return
				}
				s.procs[slot] = c.Process
				s.starts++
				s.mu.Unlock()
				began := time.Now()
				c.Wait()
				how := "exit " + strconv.Itoa(c.ProcessState.ExitCode())
				if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					how = ws.Signal().String()
				}
				s.mu.Lock()
				s.procs[slot] = nil
				s.exits[how]++
				s.mu.Unlock()
				if time.Since(began) < 2*time.Second {
					time.Sleep(time.Second)
				}
			}
		}()
	}
}

func (s *supervisor) killOne(r *rand.Rand) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*os.Process
	for _, p := range s.procs {
		if p != nil {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return false
	}
	return live[r.IntN(len(live))].Signal(syscall.SIGKILL) == nil
}

func (s *supervisor) stop() {
	s.mu.Lock()
	s.stopping = true
	for _, p := range s.procs {
		if p != nil {
			p.Signal(syscall.SIGTERM)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func soak(t *testing.T, cfg soakConfig, kind string) {
	ctx := context.Background()
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	var srv *pgtest.Server
	dsn := filepath.Join(dir, "dl4img.db")
	if kind == "postgres" {
		srv, dsn = pgtest.Private(t)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range cfg.jobs {
		if _, err := jobs.Submit(ctx, db, registry(), jobs.Request{Kind: "selftest", Sets: cfg.sets}); err != nil {
			t.Fatal(err)
		}
	}
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	if cfg.out != "" {
		logDir = cfg.out
	}
	var sup supervisor
	start := time.Now()
	load := []string{loadavg()}
	sup.run(t, cfg.workers, func(slot int) *exec.Cmd {
		c := commandDB(dir, dsn, runs, "worker", "--lease", cfg.lease)
		f, _ := os.OpenFile(filepath.Join(logDir, fmt.Sprintf("soak-%s-worker%d.log", kind, slot)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		c.Stdout, c.Stderr = f, f
		return c
	})
	// The kills, and the server's two restarts.
	kills, restarts := 0, 0
	killsDone := make(chan struct{})
	go func() {
		defer close(killsDone)
		r := rand.New(rand.NewPCG(1, 2))
		next := []time.Duration{cfg.minutes / 3, 2 * cfg.minutes / 3}
		for time.Since(start) < cfg.minutes && !allDone(ctx, db, cfg.jobs) {
			time.Sleep(cfg.killMin + time.Duration(r.Int64N(int64(cfg.killMax-cfg.killMin)+1)))
			if sup.killOne(r) {
				kills++
			}
			if srv != nil && len(next) > 0 && time.Since(start) >= next[0] {
				next = next[1:]
				t.Logf("%s: stopping the server for %s", time.Since(start).Round(time.Second), cfg.down)
				srv.Down()
				time.Sleep(cfg.down)
				if err := srv.Up(); err != nil {
					t.Errorf("restart the server: %v", err)
					return
				}
				restarts++
				load = append(load, loadavg())
			}
		}
	}()
	<-killsDone
	killEnd := time.Since(start)
	doneInWindow := countState(ctx, db, store.Succeeded)
	// Drain what the kills left (for at most an hour).
	for deadline := time.Now().Add(time.Hour); !allDone(ctx, db, cfg.jobs) && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
	}
	// What an operator does next: `jobs retry` the failed jobs (a task
	// whose worker was killed in each of its 3 attempts fails, by design:
	// it looks like a task that crashes its worker) and let them finish.
	var retried []string
	js, _ := db.Jobs(ctx)
	for _, j := range js {
		if j.State != store.Failed {
			continue
		}
		why := ""
		ts, _ := db.Tasks(ctx, j.ID)
		for _, task := range ts {
			if task.State == store.Failed {
				why = task.Name + ": " + task.Error
				break
			}
		}
		if _, _, err := jobs.Retry(ctx, db, registry(), j.ID, nil); err != nil {
			t.Errorf("retry job %d: %v", j.ID, err)
		}
		retried = append(retried, fmt.Sprintf("job %d (%s)", j.ID, why))
	}
	for deadline := time.Now().Add(30 * time.Minute); len(retried) > 0 && !allDone(ctx, db, cfg.jobs) && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
	}
	finished := lastFinish(ctx, db, start)
	sup.stop()
	load = append(load, loadavg())

	r := checkSoak(t, ctx, db, runs, cfg.jobs)
	wall := finished.Sub(start)
	row := fmt.Sprintf("| %s | %d | %d | %d | %d | %s | %.1f | %d (%d tasks) | %d | %d | %s | %s |", kind, cfg.jobs, cfg.workers, kills,
		restarts, wall.Round(time.Second), float64(r.succeeded)/wall.Minutes(), r.reclaims, r.reclaimedTasks, doneInWindow,
		len(retried), r.verdict(), strings.Join(load, " → "))
	fmt.Printf("\nsoak %s: %d jobs, %d workers (%d starts; ended by %v), %d SIGKILLs in %s, %d server restarts; %d jobs done within the kills\n",
		kind, cfg.jobs, cfg.workers, sup.starts, sup.exits, kills, killEnd.Round(time.Second), restarts, doneInWindow)
	fmt.Printf("all jobs finished after %s: %.1f jobs/minute; re-claims %d (%d tasks claimed more than once, %d lease expiries)\n",
		wall.Round(time.Second), float64(r.succeeded)/wall.Minutes(), r.reclaims, r.reclaimedTasks, r.expired)
	fmt.Printf("retried by hand after the drain: %d %v\n", len(retried), retried)
	fmt.Printf("check: %s\n%s\n", r.verdict(), row)
	for _, p := range r.problems[:min(len(r.problems), 20)] {
		fmt.Println("  " + p)
	}
	if cfg.out != "" {
		os.WriteFile(filepath.Join(cfg.out, "soak-"+kind+".md"), []byte(row+"\n"), 0o644)
	}
	if len(r.problems) > 0 {
		t.Errorf("%d problems", len(r.problems))
	}
}

func countState(ctx context.Context, db *store.DB, state string) int {
	js, err := db.Jobs(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, j := range js {
		if j.State == state {
			n++
		}
	}
	return n
}

func allDone(ctx context.Context, db *store.DB, n int) bool {
	js, err := db.Jobs(ctx)
	if err != nil || len(js) != n {
		return false // the server may be down
	}
	for _, j := range js {
		if j.State == store.Queued || j.State == store.Running {
			return false
		}
	}
	return true
}

func lastFinish(ctx context.Context, db *store.DB, start time.Time) time.Time {
	js, _ := db.Jobs(ctx)
	last := start
	for _, j := range js {
		if t, err := time.Parse("2006-01-02T15:04:05.000Z", j.FinishedAt); err == nil && t.After(last) {
			last = t
		}
	}
	return last
}

type soakResult struct {
	succeeded, reclaims, reclaimedTasks, expired int
	problems                                     []string
}

func (r soakResult) verdict() string {
	if len(r.problems) == 0 {
		return fmt.Sprintf("all %d succeeded exactly once, metrics complete", r.succeeded)
	}
	return fmt.Sprintf("%d problems (%d succeeded)", len(r.problems), r.succeeded)
}

// checkSoak: every job succeeded; every task succeeded; the training task
// has each epoch metric once per epoch, the evaluation its test accuracy
// once; one submission per job, on disk, complete.
func checkSoak(t *testing.T, ctx context.Context, db *store.DB, runs string, n int) soakResult {
	var r soakResult
	bad := func(f string, a ...any) { r.problems = append(r.problems, fmt.Sprintf(f, a...)) }
	js, err := db.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != n {
		bad("%d jobs in the store, want %d", len(js), n)
	}
	epochNames := []string{"acc", "epoch_seconds", "loss", "lr", "train_eval_loss", "val_acc", "val_loss"}
	for _, j := range js {
		if j.State != store.Succeeded {
			bad("job %d %s", j.ID, j.State)
			continue
		}
		r.succeeded++
		var p struct {
			Epochs  int `json:"epochs"`
			Samples int `json:"samples"`
		}
		if err := json.Unmarshal([]byte(j.Params), &p); err != nil {
			bad("job %d params: %v", j.ID, err)
			continue
		}
		ts, _ := db.Tasks(ctx, j.ID)
		for _, task := range ts {
			if task.State != store.Succeeded {
				bad("job %d task %s %s: %s", j.ID, task.Name, task.State, task.Error)
			}
			if c := len(strings.Fields(task.Workers)); c > 1 {
				r.reclaims += c - 1
				r.reclaimedTasks++
			}
			if task.Attempt > 1 {
				r.expired += task.Attempt - 1
			}
		}
		ms, _ := db.JobMetrics(ctx, j.ID)
		seen := map[string]int{}
		for _, m := range ms {
			seen[fmt.Sprintf("%s/%s/%d", m.Task, m.Name, m.Epoch)]++
		}
		for e := 1; e <= p.Epochs; e++ {
			for _, name := range epochNames {
				if c := seen["train/"+name+"/"+strconv.Itoa(e)]; c != 1 {
					bad("job %d: train %s of epoch %d recorded %d times", j.ID, name, e, c)
				}
			}
		}
		if c := seen["evaluate/test_acc/"+strconv.Itoa(p.Epochs)]; c != 1 {
			bad("job %d: test_acc recorded %d times", j.ID, c)
		}
		if len(ms) != 7*p.Epochs+1 {
			bad("job %d: %d metric rows, want %d", j.ID, len(ms), 7*p.Epochs+1)
		}
		as, _ := db.JobArtifacts(ctx, j.ID)
		if len(as) != 1 || as[0].Role != "submission" {
			bad("job %d: artifacts %v", j.ID, as)
			continue
		}
		b, err := os.ReadFile(jobs.Resolve(runs, as[0].Path))
		if lines := strings.Count(string(b), "\n"); err != nil || lines != 1+p.Samples/4 {
			bad("job %d submission: %d lines, %v", j.ID, lines, err)
		}
	}
	sort.Strings(r.problems)
	return r
}
