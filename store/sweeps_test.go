package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// newSweep creates a sweep of n points, each a gen → train → eval chain.
func newSweep(t *testing.T, db *DB, n int, prune string) (int64, []int64) {
	t.Helper()
	s := NewSweep{Kind: "k", Name: "lr", Spec: `{"grid":[]}`, Metric: "val_acc", Prune: prune}
	for i := range n {
		s.Points = append(s.Points, NewPoint{Params: fmt.Sprintf(`{"lr":%d}`, i+1), Job: NewJob{Kind: "k",
			Name: fmt.Sprintf("lr/%d", i+1), Params: "{}", Tasks: []NewTask{
				{Name: "gen", Kind: "x", Params: "{}"},
				{Name: "train", Kind: "x", Params: "{}", Deps: []string{"gen"}},
				{Name: "eval", Kind: "x", Params: "{}", Deps: []string{"train"}},
			}}})
	}
	id, jobs, err := db.CreateSweep(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return id, jobs
}

// runTask claims and finishes the next task of job, with metrics.
func runTask(t *testing.T, db *DB, job int64, state string, ms ...Metric) *Task {
	t.Helper()
	ctx := context.Background()
	task, err := db.Claim(ctx, "w", job, time.Minute)
	if err != nil || task == nil {
		t.Fatalf("claim in job %d: %v %v", job, task, err)
	}
	if err := db.AddMetrics(ctx, task.ID, ms); err != nil {
		t.Fatal(err)
	}
	errText := ""
	if state == Failed {
		errText = "boom"
	}
	if err := db.Finish(ctx, task.ID, "w", state, errText); err != nil {
		t.Fatal(err)
	}
	return task
}

func TestSweepPointsAreJobs(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		other := dag(db, t) // a job outside the sweep
		id, jobs := newSweep(t, db, 3, "")
		if len(jobs) != 3 || jobs[0] != other+1 {
			t.Fatalf("jobs %v", jobs)
		}
		s, err := db.Sweep(ctx, id)
		if err != nil || s.Kind != "k" || s.Metric != "val_acc" || s.Lower || s.Prune != "" {
			t.Fatalf("sweep %+v %v", s, err)
		}
		if so, err := db.SweepOfJob(ctx, jobs[1]); err != nil || so.ID != id {
			t.Fatalf("sweep of job %d: %+v %v", jobs[1], so, err)
		}
		if _, err := db.SweepOfJob(ctx, other); !errors.Is(err, ErrNotFound) {
			t.Fatalf("sweep of a plain job: %v", err)
		}
		refs, err := db.JobSweeps(ctx)
		if err != nil || len(refs) != 3 || refs[jobs[2]] != (PointRef{id, 3}) {
			t.Fatalf("job sweeps %v %v", refs, err)
		}
		// A worker scoped to the sweep takes only its points' tasks.
		task, err := db.ClaimIn(ctx, "w", Scope{Sweep: id}, time.Minute)
		if err != nil || task == nil || task.JobID != jobs[0] {
			t.Fatalf("claim in sweep: %+v %v", task, err)
		}
		if q, r, err := db.ActiveIn(ctx, Scope{Sweep: id}); err != nil || q != 8 || r != 1 {
			t.Fatalf("active in sweep: %d queued %d running %v", q, r, err)
		}
		db.Finish(ctx, task.ID, "w", Succeeded, "")
		runTask(t, db, jobs[0], Succeeded, Metric{Step: 10, Epoch: 1, Name: "val_acc", Value: 0.5},
			Metric{Step: 20, Epoch: 2, Name: "val_acc", Value: 0.8}, Metric{Step: 30, Epoch: 3, Name: "val_acc", Value: 0.7})
		runTask(t, db, jobs[0], Succeeded)
		runTask(t, db, jobs[1], Succeeded)
		runTask(t, db, jobs[1], Failed, Metric{Step: 10, Epoch: 1, Name: "val_acc", Value: 0.2})
		pts, err := db.SweepPoints(ctx, id)
		if err != nil || len(pts) != 3 {
			t.Fatalf("points %v %v", pts, err)
		}
		p := pts[0]
		if p.Job != jobs[0] || p.Index != 1 || p.Params != `{"lr":1}` || p.State != Succeeded || !p.HasBest || p.Best != 0.8 ||
			p.Epoch != 3 || p.StartedAt == "" || p.FinishedAt == "" || p.Error != "" {
			t.Fatalf("point 1: %+v", p)
		}
		if p := pts[1]; p.State != Failed || p.Best != 0.2 || p.Error != "boom" {
			t.Fatalf("point 2: %+v", p)
		}
		if p := pts[2]; p.State != Queued || p.HasBest || p.StartedAt != "" {
			t.Fatalf("point 3: %+v", p)
		}
		ss, err := db.Sweeps(ctx)
		if err != nil || len(ss) != 1 || ss[0].ID != id {
			t.Fatalf("sweeps %v %v", ss, err)
		}
	})
}

// A sweep whose last point cannot be stored leaves nothing behind.
func TestCreateSweepIsAllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		s := NewSweep{Kind: "k", Spec: "{}", Metric: "m", Points: []NewPoint{
			{Params: "{}", Job: NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{{Name: "a", Kind: "x", Params: "{}"}}}},
			{Params: "{}", Job: NewJob{Kind: "k", Params: "{}", Tasks: []NewTask{{Name: "a", Kind: "x", Params: "{}", Deps: []string{"nope"}}}}},
		}}
		if _, _, err := db.CreateSweep(ctx, s); err == nil {
			t.Fatal("a bad point was stored")
		}
		js, _ := db.Jobs(ctx)
		ss, _ := db.Sweeps(ctx)
		if len(js) != 0 || len(ss) != 0 {
			t.Fatalf("%d jobs and %d sweeps left behind", len(js), len(ss))
		}
	})
}

// Pruning: decisions are recorded once and returned again to a resumed
// task; a pruned task prunes the tasks after it and its job, and is
// neither failed nor retried.
func TestReportEpochAndPrunedState(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		id, jobs := newSweep(t, db, 2, `{"rule":"asha","min_epochs":1,"factor":3}`)
		runTask(t, db, jobs[0], Succeeded)
		train1, _ := db.ClaimIn(ctx, "w", Scope{Sweep: id}, time.Minute)
		calls := 0
		keep := func(own, others []EpochReport) (bool, string) {
			calls++
			return false, ""
		}
		for e, v := range []float64{0.5, 0.9} {
			if p, _, err := db.ReportEpoch(ctx, train1.ID, e+1, v, keep); err != nil || p {
				t.Fatalf("report: %v %v", p, err)
			}
		}
		db.Finish(ctx, train1.ID, "w", Succeeded, "")
		runTask(t, db, jobs[1], Succeeded)
		train2, _ := db.Claim(ctx, "w", jobs[1], time.Minute)
		var seenOwn, seenOthers []EpochReport
		prune := func(own, others []EpochReport) (bool, string) {
			calls++
			seenOwn, seenOthers = own, others
			return true, "weak"
		}
		p, why, err := db.ReportEpoch(ctx, train2.ID, 1, 0.1, prune)
		if err != nil || !p || why != "weak" {
			t.Fatalf("prune: %v %q %v", p, why, err)
		}
		wantOthers := []EpochReport{{Job: jobs[0], Epoch: 1, Value: 0.5, Done: true}, {Job: jobs[0], Epoch: 2, Value: 0.9, Done: true}}
		if !reflect.DeepEqual(seenOthers, wantOthers) || !reflect.DeepEqual(seenOwn, []EpochReport{{Job: jobs[1], Epoch: 1, Value: 0.1}}) {
			t.Fatalf("decide saw own %+v others %+v", seenOwn, seenOthers)
		}
		// The same epoch again (a resumed task): the recorded decision,
		// without asking the rule again.
		p, why, err = db.ReportEpoch(ctx, train2.ID, 1, 0.7, keep)
		if err != nil || !p || why != "weak" || calls != 3 {
			t.Fatalf("reported again: %v %q %v after %d calls", p, why, err, calls)
		}
		if err := db.Finish(ctx, train2.ID, "w", Pruned, "pruned after epoch 1: weak"); err != nil {
			t.Fatal(err)
		}
		j, _ := db.Job(ctx, jobs[1])
		ts, _ := db.Tasks(ctx, jobs[1])
		if j.State != Pruned || j.FinishedAt == "" || ts[2].State != Pruned || ts[2].Error != "upstream task train pruned" {
			t.Fatalf("job %s, eval %s %q", j.State, ts[2].State, ts[2].Error)
		}
		if n, err := db.RetryJob(ctx, jobs[1]); err != nil || n != 0 {
			t.Fatalf("retry of a pruned job requeued %d tasks (%v)", n, err)
		}
		if q, r, _ := db.ActiveIn(ctx, Scope{Sweep: id}); q+r != 1 { // job 1's eval
			t.Fatalf("active %d+%d", q, r)
		}
		pts, _ := db.SweepPoints(ctx, id)
		if pts[1].PrunedAt != 1 || pts[1].State != Pruned || pts[0].PrunedAt != 0 {
			t.Fatalf("points %+v", pts)
		}
		plain := dag(db, t)
		ts, _ = db.Tasks(ctx, plain)
		if _, _, err := db.ReportEpoch(ctx, ts[0].ID, 1, 0, keep); !errors.Is(err, ErrNotSweepPoint) {
			t.Fatalf("report of a plain job's task: %v", err)
		}
	})
}
