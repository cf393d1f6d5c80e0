package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/pgtest"
)

// Every way of pointing at the wrong PostgreSQL database is refused with an
// error that names it without the password.
func TestOpenBadPostgres(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Shared(t)
	foreign, newer := pgtest.NewDB(t), pgtest.NewDB(t)
	pgtest.Exec(t, foreign, `CREATE TABLE customers (id int)`)
	pgtest.Exec(t, newer, `CREATE TABLE dl4img_schema (version int); INSERT INTO dl4img_schema VALUES (99)`)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	wrongPW := strings.Replace(srv.URL("postgres"), pgtest.Password, "not-the-"+pgtest.Password, 1)
	cases := []struct {
		name, dsn, want string
		is              error
	}{
		{"malformed", "postgres://postgres:" + pgtest.Password + "@127.0.0.1:notaport/x", "not a valid PostgreSQL URL", nil},
		{"unreachable", "postgres://postgres:" + pgtest.Password + "@" + closed + "/x?sslmode=disable", "connect", nil},
		{"wrong password", wrongPW, "password authentication failed", nil},
		{"no such database", srv.URL("nosuchdb"), `database "nosuchdb" does not exist`, nil},
		{"not dl4img's", foreign, "other tables (customers)", ErrNotDL4img},
		{"newer schema", newer, "schema version 99", ErrNewerSchema},
		{"other scheme", "mysql://u:" + pgtest.Password + "@h/db", "unsupported URL scheme", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(ctx, c.dsn)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || strings.Contains(msg, pgtest.Password) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line saying %q, without the password", msg, c.want)
			}
			if !strings.Contains(msg, "xxxxx") {
				t.Fatalf("error %q does not name the database (redacted)", msg)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v is not %v", err, c.is)
			}
		})
	}
	// The refused databases were left alone.
	sdb, _ := sql.Open("pgx", foreign)
	defer sdb.Close()
	var n int
	if err := sdb.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema='public'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("foreign database has %d tables now (%v)", n, err)
	}
}

func TestRedactAndScrub(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:pw@h:5432/db?sslmode=require", "postgres://u:xxxxx@h:5432/db?sslmode=require"},
		{"postgresql://u:p%40ss/w@h/db", "postgresql://u:xxxxx@h/db"},
		{"postgres://u@h/db?password=pw&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"postgres://h/db", "postgres://h/db"},
		{"/tmp/x:y@z.db", "/tmp/x:y@z.db"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := Scrub("bad p@ss/w and p%40ss/w", "postgres://u:p%40ss/w@h/db"); strings.Contains(got, "ss/w") {
		t.Errorf("Scrub left the password: %q", got)
	}
}

// Claimers on separate connections pools (as separate processes would
// be) take every task exactly once, and the job ends succeeded: the
// claim's row locks and the job-row lock leave no lost update.
func TestConcurrentClaimsEachTaskOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dsn := b.newDSN(t)
		db := openDSN(t, dsn)
		var tasks []NewTask
		for i := range 60 {
			tasks = append(tasks, NewTask{Name: fmt.Sprintf("t%02d", i), Kind: "x", Params: "{}"})
		}
		job, err := db.CreateJob(ctx, NewJob{Kind: "k", Params: "{}", Tasks: tasks})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		claimed := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 4 {
			h := openDSN(t, dsn)
			for slot := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("w%d/%d", w, slot)
					for {
						task, err := h.Claim(ctx, owner, 0, time.Minute)
						if err != nil {
							errs <- err
							return
						}
						if task == nil {
							return
						}
						mu.Lock()
						claimed[task.ID]++
						mu.Unlock()
						if err := h.Finish(ctx, task.ID, owner, Succeeded, ""); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(claimed) != len(tasks) {
			t.Fatalf("%d tasks claimed, want %d", len(claimed), len(tasks))
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("task %d claimed %d times", id, n)
			}
		}
		if j, _ := db.Job(ctx, job); j.State != Succeeded || j.FinishedAt == "" {
			t.Fatalf("job %s finished %q", j.State, j.FinishedAt)
		}
	})
}

// A worker waiting on Ready wakes when another process queues a task; on
// SQLite there is no notification (nil channel) and workers poll.
func TestReadyWakesOnNewWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dsn := b.newDSN(t)
		waiter, submitter := openDSN(t, dsn), openDSN(t, dsn)
		ch := waiter.Ready()
		if b.name == "sqlite" {
			if ch != nil {
				t.Fatal("SQLite has a ready channel")
			}
			return
		}
		// The listener connects in the background; a notification sent
		// before it listens still fires the channel (it fires on connect).
		time.Sleep(200 * time.Millisecond)
		ch = waiter.Ready()
		if _, err := submitter.CreateJob(context.Background(), NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{{Name: "a", Kind: "x", Params: "{}"}}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no wake-up after a job was queued")
		}
	})
}

// history fills a database with a small but complete history: two jobs,
// dependencies, a claimed and finished task with metrics, artifacts,
// checkpoints and items.
func history(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	dag(db, t)
	dag(db, t)
	task, err := db.Claim(ctx, "host:1/0", 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	db.AddMetrics(ctx, task.ID, []Metric{{Step: 1, Epoch: 1, Name: "loss", Value: 0.1234567890123}, {Step: 1, Epoch: 1, Name: "Acc", Value: 1e-300},
		{Step: 2, Epoch: 1, Name: "loss", Value: math.NaN()}, {Step: 3, Epoch: 1, Name: "loss", Value: math.Inf(-1)}})
	db.AddArtifact(ctx, Artifact{TaskID: task.ID, Role: "submission", Path: "job-1/result.txt", Bytes: 3, SHA256: "abc"})
	db.AddCheckpoint(ctx, Checkpoint{TaskID: task.ID, Step: 7, Path: "job-1/gen/checkpoint-7"})
	db.PutItems(ctx, task.ID, map[string]string{"a": `{"x":1}`, "b": ""})
	db.MarkItemsDone(ctx, task.ID, "c")
	if err := db.Finish(ctx, task.ID, "host:1/0", Succeeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.CancelJob(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RetryJobWith(ctx, 2, RetryChange{Params: `{"x":1}`, Changes: `{"x":[null,1]}`}); err != nil {
		t.Fatal(err)
	}
	if err := db.CancelJob(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// A sweep with a pruned point.
	sw, jobs := newSweep(t, db, 2, `{"rule":"asha","min_epochs":1,"factor":3}`)
	runTask(t, db, jobs[0], Succeeded)
	train, _ := db.ClaimIn(ctx, "w", Scope{Sweep: sw}, time.Minute)
	if _, _, err := db.ReportEpoch(ctx, train.ID, 1, 0.25, func(own, others []EpochReport) (bool, string) { return true, "weak" }); err != nil {
		t.Fatal(err)
	}
	if err := db.Finish(ctx, train.ID, "w", Pruned, "pruned"); err != nil {
		t.Fatal(err)
	}
}

// dump reads everything a user sees of a history.
func dump(t *testing.T, db *DB) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	js, err := db.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out["jobs"] = js
	for _, j := range js {
		ts, _ := db.Tasks(ctx, j.ID)
		ms, _ := db.JobMetrics(ctx, j.ID)
		as, _ := db.JobArtifacts(ctx, j.ID)
		rs, _ := db.JobRetries(ctx, j.ID)
		out[fmt.Sprint("tasks", j.ID)], out[fmt.Sprint("metrics", j.ID)], out[fmt.Sprint("artifacts", j.ID)] = ts, ms, as
		out[fmt.Sprint("retries", j.ID)] = rs
		for _, task := range ts {
			cs, _ := db.Checkpoints(ctx, task.ID)
			items, _ := db.Items(ctx, task.ID)
			out[fmt.Sprint("checkpoints", task.ID)], out[fmt.Sprint("items", task.ID)] = cs, items
		}
	}
	ss, err := db.Sweeps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out["sweeps"] = ss
	for _, s := range ss {
		out[fmt.Sprint("points", s.ID)], _ = db.SweepPoints(ctx, s.ID)
	}
	return out
}

// SQLite → PostgreSQL → SQLite keeps every row and id; new rows in the
// copy get fresh ids; a destination with jobs is refused; an interrupted
// copy leaves the destination empty.
func TestCopyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := mustOpen(t, backends[0])
	history(t, src)
	pg := mustOpen(t, backends[1])
	n, err := Copy(ctx, src, pg, nil)
	if err != nil || n == 0 {
		t.Fatalf("copy to postgres: %d rows, %v", n, err)
	}
	back := mustOpen(t, backends[0])
	var last, total int64
	if _, err := Copy(ctx, pg, back, func(done, tot int64) { last, total = done, tot }); err != nil {
		t.Fatal(err)
	}
	if last != n || total != n {
		t.Fatalf("progress ended at %d/%d, copied %d", last, total, n)
	}
	want := dump(t, src)
	for name, db := range map[string]*DB{"postgres": pg, "sqlite again": back} {
		// Compared as printed: NaN != NaN for reflect.DeepEqual.
		if got := dump(t, db); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("%s differs:\n got %v\nwant %v", name, got, want)
		}
	}
	// Ids continue after the copied ones.
	id, err := pg.CreateJob(ctx, NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{{Name: "a", Kind: "x", Params: "{}"}}})
	if err != nil || id != 5 {
		t.Fatalf("new job in the copy: id %d, %v", id, err)
	}
	if _, err := Copy(ctx, src, pg, nil); !errors.Is(err, ErrDestinationNotEmpty) {
		t.Fatalf("copy into a database with jobs: %v", err)
	}
	for _, b := range backends {
		t.Run("interrupted to "+b.name, func(t *testing.T) {
			dst := mustOpen(t, b)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := Copy(cctx, src, dst, func(done, total int64) {
				if done > 0 {
					cancel()
				}
			})
			if err == nil {
				t.Fatal("copy went on after cancel")
			}
			if js, _ := dst.Jobs(ctx); len(js) != 0 {
				t.Fatalf("interrupted copy left %d jobs", len(js))
			}
		})
	}
}

// A server that goes away makes the store's errors say "unavailable", so
// workers retry them instead of failing tasks.
func TestUnavailableServer(t *testing.T) {
	srv, dsn := pgtest.Private(t)
	db := openDSN(t, dsn)
	ctx := context.Background()
	if _, err := db.Claim(ctx, "w", 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, err := db.Claim(ctx, "w", 0, time.Minute)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("claim with the server gone: %v (unavailable: %v)", err, IsUnavailable(err))
	}
	if _, err := db.Job(ctx, 999); !IsUnavailable(err) {
		t.Fatalf("read with the server gone: %v", err)
	}
	if IsUnavailable(ErrNotFound) || IsUnavailable(fmt.Errorf("x: %w", ErrLeaseLost)) {
		t.Fatal("ordinary errors taken for unavailability")
	}
}
