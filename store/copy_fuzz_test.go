package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// copyTemplate writes a small but complete history (every table, NaN and
// infinite metrics, a retry) into path through the store's API.
func copyTemplate(tb testing.TB, path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for range 2 {
		job, err := db.CreateJob(ctx, NewJob{Kind: "k", Name: "n", Params: `{"lr":0.1}`, Tasks: []NewTask{
			{Name: "gen", Kind: "x", Params: "{}"}, {Name: "train", Kind: "x", Params: "{}", Deps: []string{"gen"}}}})
		if err != nil {
			tb.Fatal(err)
		}
		task, err := db.Claim(ctx, "h:1/0", job, time.Minute)
		if err != nil || task == nil {
			tb.Fatal(err)
		}
		db.AddMetrics(ctx, task.ID, []Metric{{Step: 1, Epoch: 1, Name: "loss", Value: 0.5}, {Step: 2, Epoch: 1, Name: "loss", Value: math.NaN()},
			{Step: 3, Epoch: 1, Name: "loss", Value: math.Inf(1)}})
		db.AddArtifact(ctx, Artifact{TaskID: task.ID, Role: "submission", Path: "job-1/s.csv", Bytes: 3, SHA256: "ab"})
		db.AddCheckpoint(ctx, Checkpoint{TaskID: task.ID, Step: 2, Path: "job-1/c"})
		db.PutItems(ctx, task.ID, map[string]string{"a": `{"x":1}`})
		db.Finish(ctx, task.ID, "h:1/0", Failed, "diverged")
		if _, err := db.RetryJobWith(ctx, job, RetryChange{Params: `{"lr":0.01}`, Changes: `{"lr":[0.1,0.01]}`}); err != nil {
			tb.Fatal(err)
		}
	}
}

// FuzzCopy is db copy from a hostile source: a history whose rows hold
// any value of any type (SQLite's columns take what they are given), or
// none, or point at rows that do not exist. Copy and every reader of the
// copied history either work or return an error; none panics or hangs.
func FuzzCopy(f *testing.F) {
	dir := f.TempDir()
	tmpl := filepath.Join(dir, "template.db")
	copyTemplate(f, tmpl)
	raw, err := os.ReadFile(tmpl)
	if err != nil {
		f.Fatal(err)
	}
	// An op is: table, column, row, kind (null, int, float, text, blob,
	// delete), then its value's bytes.
	f.Add([]byte{})
	f.Add([]byte{3, 5, 1, 2, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f})          // metrics.value = NaN bits
	f.Add([]byte{1, 6, 1, 3, 5, 'h', 'e', 'l', 'l', 'o'})            // tasks.state = "hello"
	f.Add([]byte{3, 2, 2, 3, 3, 'a', 'b', 'c', 0, 1, 4, 0, 9})       // metrics.step = "abc"
	f.Add([]byte{0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0x80, 1, 1, 1, 5}) // jobs.id = min int64; delete a task
	f.Add([]byte{7, 4, 1, 4, 4, 0xff, 0xfe, 0, 1})                   // job_retries.changes = a blob
	f.Fuzz(func(t *testing.T, ops []byte) {
		defer fuzzguard.Deadline()()
		src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
		for _, p := range []string{src, dst} {
			for _, ext := range []string{"", "-wal", "-shm"} {
				os.Remove(p + ext)
			}
		}
		if err := os.WriteFile(src, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		damage(t, src, ops)
		ctx := context.Background()
		s, err := Open(ctx, src)
		if err != nil {
			return
		}
		defer s.Close()
		d, err := Open(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := Copy(ctx, s, d, nil); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("copy error is not one line: %q", err)
			}
			return
		}
		readAll(ctx, d)
	})
}

// damage applies ops to the database at path with plain SQL (foreign keys
// off, so rows may point nowhere).
func damage(t *testing.T, path string, ops []byte) {
	sdb, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for len(ops) >= 4 {
		tab := copyTables[int(ops[0])%len(copyTables)]
		cols := strings.Split(tab.cols, ", ")
		col, row, kind := cols[int(ops[1])%len(cols)], int(ops[2])%4+1, ops[3]%6
		ops = ops[4:]
		var v any
		switch kind {
		case 1, 2:
			var b [8]byte
			ops = ops[copy(b[:], ops):]
			u := binary.LittleEndian.Uint64(b[:])
			v = int64(u)
			if kind == 2 {
				v = math.Float64frombits(u)
			}
		case 3, 4:
			n := 0
			if len(ops) > 0 {
				n, ops = int(ops[0])%64, ops[1:]
			}
			n = min(n, len(ops))
			v, ops = string(ops[:n]), ops[n:]
			if kind == 4 {
				v = []byte(v.(string))
			}
		}
		q := fmt.Sprintf(`UPDATE %s SET %s=? WHERE rowid=(SELECT rowid FROM %s ORDER BY rowid LIMIT 1 OFFSET %d)`, tab.name, col, tab.name, row-1)
		args := []any{v}
		if kind == 5 {
			q = fmt.Sprintf(`DELETE FROM %s WHERE rowid=(SELECT rowid FROM %s ORDER BY rowid LIMIT 1 OFFSET %d)`, tab.name, tab.name, row-1)
			args = nil
		}
		sdb.Exec(q, args...) // a constraint may refuse it: that is fine
	}
}

// readAll reads a history through every read the CLI and the web UI use.
func readAll(ctx context.Context, db *DB) {
	js, _ := db.Jobs(ctx)
	for _, j := range js {
		db.Job(ctx, j.ID)
		db.JobMetrics(ctx, j.ID)
		db.JobArtifacts(ctx, j.ID)
		db.JobArtifactRecords(ctx, j.ID)
		db.JobRetries(ctx, j.ID)
		rs, _ := db.JobMetricRanges(ctx, j.ID, "")
		for _, r := range rs {
			db.MetricPoints(ctx, r.TaskID, r.Name)
			db.LastMetric(ctx, r.TaskID, r.Name)
			db.MetricBuckets(ctx, r.TaskID, r.Name, false, r.MinStep, r.MaxStep, 10)
			db.MetricBuckets(ctx, r.TaskID, r.Name, true, r.MinEpoch, r.MaxEpoch, 3)
		}
		ts, _ := db.Tasks(ctx, j.ID)
		for _, task := range ts {
			db.Task(ctx, task.ID)
			db.Checkpoints(ctx, task.ID)
			db.LatestCheckpoint(ctx, task.ID)
			db.Items(ctx, task.ID)
			db.ItemsDone(ctx, task.ID)
		}
	}
	db.Active(ctx, 0)
}
