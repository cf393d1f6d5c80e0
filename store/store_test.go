package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is one driver of the shared suite: every test that takes a
// backend runs once on SQLite and once on a real PostgreSQL server.
type backend struct {
	name string
	// newDSN names a fresh, empty database.
	newDSN func(tb testing.TB) string
}

var backends = []backend{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "t.db") }},
	{"postgres", func(tb testing.TB) string { return pgtest.NewDB(tb) }},
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// openDSN opens dsn, closing it at the end of the test.
func openDSN(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// mustOpen opens a fresh database of the backend.
func mustOpen(tb testing.TB, b backend) *DB {
	tb.Helper()
	return openDSN(tb, b.newDSN(tb))
}

func TestMigrationsFromEmptyAndReopen(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dsn := b.newDSN(t)
		db, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := db.Version(ctx); v != SchemaVersion {
			t.Fatalf("version %d, want %d", v, SchemaVersion)
		}
		id, err := db.CreateJob(ctx, NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{{Name: "a", Kind: "x", Params: "{}"}}})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		// Re-open: migrations are not re-applied and data is intact.
		db = openDSN(t, dsn)
		if v, _ := db.Version(ctx); v != SchemaVersion {
			t.Fatalf("version after reopen %d", v)
		}
		j, err := db.Job(ctx, id)
		if err != nil || j.WorkDir != "job-1" || j.State != Queued {
			t.Fatalf("job after reopen: %+v, %v", j, err)
		}
	})
}

// Several processes opening a new database at once migrate it once.
func TestConcurrentFirstOpen(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dsn := b.newDSN(t)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				db, err := Open(context.Background(), dsn)
				if err == nil {
					db.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if v, _ := openDSN(t, dsn).Version(context.Background()); v != SchemaVersion {
			t.Fatalf("version %d", v)
		}
	})
}

func TestSQLitePragmas(t *testing.T) {
	db := mustOpen(t, backends[0])
	var mode string
	db.sql.QueryRow("PRAGMA journal_mode").Scan(&mode)
	var fk int
	db.sql.QueryRow("PRAGMA foreign_keys").Scan(&fk)
	if mode != "wal" || fk != 1 {
		t.Fatalf("journal_mode %q foreign_keys %d", mode, fk)
	}
}

// A database written by the first schema version is migrated on open and
// keeps its rows.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	sdb, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(migrations[0].sqlite + `; PRAGMA user_version = 1;
		INSERT INTO jobs(id, kind, params, state, workdir, created_at) VALUES (1, 'k', '{}', 'queued', '/w', 'now');
		INSERT INTO tasks(id, job_id, name, kind, params, state) VALUES (1, 1, 'a', 'x', '{}', 'queued');
		INSERT INTO task_items(task_id, key) VALUES (1, 'old');
		INSERT INTO metrics(task_id, step, epoch, name, value, at) VALUES (1, 10, 1, 'loss', 0.5, 'now')`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Version(ctx); v != SchemaVersion {
		t.Fatalf("version %d", v)
	}
	items, err := db.Items(ctx, 1)
	if err != nil || len(items) != 1 || items["old"] != "" {
		t.Fatalf("items after migration: %v %v", items, err)
	}
	// Migration 4 rebuilt the metrics table around its rows.
	ms, err := db.JobMetrics(ctx, 1)
	if err != nil || len(ms) != 1 || ms[0].Value != 0.5 || ms[0].Step != 10 {
		t.Fatalf("metrics after migration: %+v %v", ms, err)
	}
	if err := db.AddMetrics(ctx, 1, []Metric{{Step: 11, Name: "loss", Value: math.NaN()}}); err != nil {
		t.Fatalf("NaN after migration: %v", err)
	}
}

func TestOpenBadPaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDB, []byte("hello, this is not a database at all"), 0o644)
	newer := filepath.Join(dir, "newer.db")
	{
		sdb, err := sql.Open("sqlite3", newer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdb.Exec("CREATE TABLE x(a); PRAGMA user_version = 999"); err != nil {
			t.Fatal(err)
		}
		sdb.Close()
	}
	foreign := filepath.Join(dir, "foreign.db")
	{
		sdb, err := sql.Open("sqlite3", foreign)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdb.Exec("CREATE TABLE customers(a); CREATE TABLE orders(b)"); err != nil {
			t.Fatal(err)
		}
		sdb.Close()
	}
	file := filepath.Join(dir, "plainfile")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		name, path, want string
		is               error
	}{
		{"missing directory", filepath.Join(dir, "nope", "x.db"), "does not exist", nil},
		{"parent is a file", filepath.Join(file, "x.db"), "not a directory", nil},
		{"not sqlite", notDB, "not a SQLite database", nil},
		{"directory", dir, "is a directory", nil},
		{"newer schema", newer, "schema version 999", ErrNewerSchema},
		{"not dl4img's", foreign, "other tables (customers, orders)", ErrNotDL4img},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(ctx, c.path)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Fatalf("error %q: want it to name %s and say %q", err, c.path, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v is not %v", err, c.is)
			}
		})
	}
	// The failed opens changed nothing.
	if b, _ := os.ReadFile(notDB); string(b) != "hello, this is not a database at all" {
		t.Fatal("not-a-database file was modified")
	}
}

func dag(db *DB, t *testing.T) int64 {
	t.Helper()
	id, err := db.CreateJob(context.Background(), NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{
		{Name: "gen", Kind: "x", Params: "{}"},
		{Name: "train", Kind: "x", Params: "{}", Deps: []string{"gen"}, MaxAttempts: 2},
		{Name: "eval", Kind: "x", Params: "{}", Deps: []string{"train"}},
		{Name: "other", Kind: "x", Params: "{}"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func claimName(t *testing.T, db *DB, owner string, lease time.Duration) string {
	t.Helper()
	task, err := db.Claim(context.Background(), owner, 0, lease)
	if err != nil {
		t.Fatal(err)
	}
	if task == nil {
		return ""
	}
	return task.Name
}

func TestClaimRespectsDependencies(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		if n := claimName(t, db, "w1", time.Minute); n != "gen" {
			t.Fatalf("first claim %q", n)
		}
		if n := claimName(t, db, "w2", time.Minute); n != "other" {
			t.Fatalf("second claim %q, want other (train waits for gen)", n)
		}
		if n := claimName(t, db, "w3", time.Minute); n != "" {
			t.Fatalf("claimed %q while dependencies run", n)
		}
		ts, _ := db.Tasks(ctx, job)
		if err := db.Finish(ctx, ts[0].ID, "w2", Succeeded, ""); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("finish by a non-owner: %v", err)
		}
		if err := db.Finish(ctx, ts[0].ID, "w1", Succeeded, ""); err != nil {
			t.Fatal(err)
		}
		if n := claimName(t, db, "w3", time.Minute); n != "train" {
			t.Fatalf("after gen: claimed %q", n)
		}
		j, _ := db.Job(ctx, job)
		if j.State != Running {
			t.Fatalf("job state %s", j.State)
		}
	})
}

func TestExpiredLeaseRequeuesThenFails(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		claimName(t, db, "w1", time.Minute) // gen
		ts, _ := db.Tasks(ctx, job)
		db.Finish(ctx, ts[0].ID, "w1", Succeeded, "")
		if n := claimName(t, db, "dead", 200*time.Millisecond); n != "train" {
			t.Fatalf("claimed %q", n)
		}
		if n := claimName(t, db, "w1", time.Minute); n != "other" {
			t.Fatalf("claimed %q", n)
		}
		time.Sleep(250 * time.Millisecond)
		// Rescue happens inside the next claim: train is back, attempt 2.
		task, err := db.Claim(ctx, "w2", job, time.Millisecond)
		if err != nil || task == nil || task.Name != "train" || task.Attempt != 2 {
			t.Fatalf("reclaim: %+v %v", task, err)
		}
		if _, err := db.Heartbeat(ctx, task.ID, "dead", time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("dead worker heartbeat: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
		// Second expiry uses up max_attempts=2: failed, and eval is cancelled.
		if n := claimName(t, db, "w3", time.Minute); n != "" {
			t.Fatalf("claimed %q after max attempts", n)
		}
		ts, _ = db.Tasks(ctx, job)
		if ts[1].State != Failed || !strings.Contains(ts[1].Error, "max attempts") {
			t.Fatalf("train: %s %q", ts[1].State, ts[1].Error)
		}
		if ts[2].State != Cancelled || !strings.Contains(ts[2].Error, "upstream task train failed") {
			t.Fatalf("eval: %s %q", ts[2].State, ts[2].Error)
		}
		if err := db.Finish(ctx, ts[3].ID, "w1", Succeeded, ""); err != nil {
			t.Fatal(err)
		}
		j, _ := db.Job(ctx, job)
		if j.State != Failed || j.FinishedAt == "" {
			t.Fatalf("job %s finished %q", j.State, j.FinishedAt)
		}
		// Retry: failed and cancelled tasks queued again, done ones kept.
		n, err := db.RetryJob(ctx, job)
		if err != nil || n != 2 {
			t.Fatalf("retry: %d %v", n, err)
		}
		ts, _ = db.Tasks(ctx, job)
		if ts[0].State != Succeeded || ts[1].State != Queued || ts[1].Attempt != 0 || ts[2].State != Queued {
			t.Fatalf("after retry: %s %s(%d) %s", ts[0].State, ts[1].State, ts[1].Attempt, ts[2].State)
		}
	})
}

func TestRequeueKeepsAttemptBudget(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		task, _ := db.Claim(ctx, "w", job, time.Minute)
		if err := db.Requeue(ctx, task.ID, "w", "interrupted"); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Task(ctx, task.ID)
		if got.State != Queued || got.Attempt != 0 || got.Error != "interrupted" {
			t.Fatalf("%+v", got)
		}
	})
}

func TestCancelJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		task, _ := db.Claim(ctx, "w", job, time.Minute)
		if err := db.CancelJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		cancelled, err := db.Heartbeat(ctx, task.ID, "w", time.Minute)
		if err != nil || !cancelled {
			t.Fatalf("heartbeat after cancel: %v %v", cancelled, err)
		}
		if n := claimName(t, db, "w2", time.Minute); n != "" {
			t.Fatalf("claimed %q from a cancelled job", n)
		}
		db.Finish(ctx, task.ID, "w", Cancelled, "job cancelled")
		j, _ := db.Job(ctx, job)
		if j.State != Cancelled {
			t.Fatalf("job state %s", j.State)
		}
		if err := db.CancelJob(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cancel unknown job: %v", err)
		}
	})
}

func TestRecords(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		task, _ := db.Claim(ctx, "w", job, time.Minute)
		if err := db.AddMetrics(ctx, task.ID, []Metric{{Step: 10, Epoch: 1, Name: "loss", Value: 0.5}, {Step: 20, Epoch: 2, Name: "loss", Value: 0.25}}); err != nil {
			t.Fatal(err)
		}
		ms, _ := db.JobMetrics(ctx, job)
		if len(ms) != 2 || ms[1].Value != 0.25 || ms[1].Task != "gen" {
			t.Fatalf("metrics %+v", ms)
		}
		for _, s := range []int{50, 100} {
			db.AddCheckpoint(ctx, Checkpoint{TaskID: task.ID, Step: s, Path: "p"})
		}
		c, ok, err := db.LatestCheckpoint(ctx, task.ID)
		if err != nil || !ok || c.Step != 100 {
			t.Fatalf("latest checkpoint %+v %v %v", c, ok, err)
		}
		db.AddArtifact(ctx, Artifact{TaskID: task.ID, Role: "submission", Path: "/x", Bytes: 1, SHA256: "a"})
		db.AddArtifact(ctx, Artifact{TaskID: task.ID, Role: "submission", Path: "/x", Bytes: 2, SHA256: "b"})
		as, _ := db.JobArtifacts(ctx, job)
		if len(as) != 1 || as[0].Bytes != 2 {
			t.Fatalf("artifacts %+v", as)
		}
		db.MarkItemsDone(ctx, task.ID, "tile-1", "tile-2", "tile-1")
		done, _ := db.ItemsDone(ctx, task.ID)
		if len(done) != 2 || !done["tile-2"] {
			t.Fatalf("items %v", done)
		}
		if err := db.PutItems(ctx, task.ID, map[string]string{"tile-2": `{"split":"val"}`, "tile-3": `{"split":"train"}`}); err != nil {
			t.Fatal(err)
		}
		items, _ := db.Items(ctx, task.ID)
		if len(items) != 3 || items["tile-1"] != "" || items["tile-2"] != `{"split":"val"}` {
			t.Fatalf("items %v", items)
		}
		var n int
		q := `SELECT count(*) FROM task_items WHERE json_extract(value, '$.split') = 'train'`
		if b.name == "postgres" {
			q = `SELECT count(*) FROM task_items WHERE value::json->>'split' = 'train'`
		}
		db.sql.QueryRow(q).Scan(&n)
		if n != 1 {
			t.Fatalf("query by JSON value: %d rows", n)
		}
	})
}

func TestCreateJobRejectsBadDAG(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db := mustOpen(t, b)
		_, err := db.CreateJob(context.Background(), NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{
			{Name: "a", Kind: "x", Params: "{}", Deps: []string{"b"}},
			{Name: "b", Kind: "x", Params: "{}"},
		}})
		if err == nil || !strings.Contains(err.Error(), `depends on "b"`) {
			t.Fatalf("err %v", err)
		}
		js, _ := db.Jobs(context.Background())
		if len(js) != 0 {
			t.Fatal("a rejected job was half-stored")
		}
	})
}
