package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Retry with --set: checked like a submission, refused when it would change
// the task graph, applied to the failed tasks and recorded.
func TestRetryWithSets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t)
	reg := testRegistry()
	id, err := Submit(ctx, db, reg, Request{Kind: "fan", Sets: []string{"n=2", "task_kind=fail"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{DB: db, Registry: reg, Root: dir, Backend: "go", Drain: true}
	if _, err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ set, want string }{
		{"n=3", "changes the job's tasks"},
		{"task_kind=quick", "changes the job's tasks"},
		{"bogus=1", `unknown parameter "bogus"`},
		{"sleep_ms=soon", "parameter sleep_ms: want int"},
		{"preset=x", "preset cannot change"},
	} {
		if _, _, err := Retry(ctx, db, reg, id, []string{c.set}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want bad input containing %q", c.set, err, c.want)
		}
	}
	n, changes, err := Retry(ctx, db, reg, id, []string{"sleep_ms=5"})
	if err != nil || n != 3 || string(changes) != `{"sleep_ms":[0,5]}` {
		t.Fatalf("retry: %d %s %v", n, changes, err)
	}
	j, _ := db.Job(ctx, id)
	ts, _ := db.Tasks(ctx, id)
	if !strings.Contains(j.Params, `"sleep_ms":5`) || !strings.Contains(ts[0].Params, `"sleep_ms":5`) || ts[0].State != "queued" {
		t.Fatalf("after the retry: job %s, task %+v", j.Params, ts[0])
	}
	if rs, _ := db.JobRetries(ctx, id); len(rs) != 1 || rs[0].Changes != string(changes) {
		t.Fatalf("retries recorded: %+v", rs)
	}
	// A job with nothing failed keeps its parameters.
	ok, err := Submit(ctx, db, reg, Request{Kind: "fan", Sets: []string{"n=1"}})
	if err != nil {
		t.Fatal(err)
	}
	w.JobID = ok
	if _, err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Retry(ctx, db, reg, ok, []string{"sleep_ms=6"}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "no failed or cancelled task") {
		t.Fatalf("a change with nothing to retry: %v", err)
	}
}
