package store

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// same is == that also holds for two NaNs.
func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// NaN and ±Inf are stored and come back as themselves; aggregates (ranges,
// buckets) use the finite values and count the others.
func TestNonFiniteMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		task, _ := db.Claim(ctx, "w", job, time.Minute)
		in := []float64{0.5, math.Inf(1), 0.25, math.NaN(), math.Inf(-1), 0.75}
		var ms []Metric
		for i, v := range in {
			ms = append(ms, Metric{Step: i + 1, Epoch: 1, Name: "loss", Value: v})
		}
		if err := db.AddMetrics(ctx, task.ID, ms); err != nil {
			t.Fatal(err)
		}
		got, err := db.JobMetrics(ctx, job)
		if err != nil || len(got) != len(in) {
			t.Fatalf("metrics %v, %v", got, err)
		}
		for i, m := range got {
			if !same(m.Value, in[i]) {
				t.Errorf("step %d: %v, want %v", m.Step, m.Value, in[i])
			}
		}
		pts, err := db.MetricPoints(ctx, task.ID, "loss")
		if err != nil || len(pts) != len(in) || !math.IsNaN(pts[3].Value) || !math.IsInf(pts[1].Value, 1) {
			t.Fatalf("points %v, %v", pts, err)
		}
		// The documented representation: NaN is NULL, infinities are
		// themselves.
		var nulls, infs int
		db.sql.QueryRow(`SELECT count(*) FROM metrics WHERE value IS NULL`).Scan(&nulls)
		db.sql.QueryRow(`SELECT count(*) FROM metrics WHERE value > 1e308 OR value < -1e308`).Scan(&infs)
		if nulls != 1 || infs != 2 {
			t.Fatalf("stored: %d NULL, %d infinite values; want 1 and 2", nulls, infs)
		}
		rs, err := db.JobMetricRanges(ctx, job, "loss")
		if err != nil || len(rs) != 1 || rs[0].Count != 6 || rs[0].Min != 0.25 || rs[0].Max != 0.75 {
			t.Fatalf("ranges %+v, %v", rs, err)
		}
		bs, err := db.MetricBuckets(ctx, task.ID, "loss", false, 1, 6, 3)
		if err != nil || len(bs) != 3 {
			t.Fatalf("buckets %+v, %v", bs, err)
		}
		want := []MetricBucket{{1, 2, 0.5, 0.5, 2, 1}, {3, 4, 0.25, 0.25, 2, 1}, {5, 6, 0.75, 0.75, 2, 1}}
		for i, w := range want {
			if bs[i] != w {
				t.Errorf("bucket %d: %+v, want %+v", i, bs[i], w)
			}
		}
		// A metric with no finite value at all.
		db.AddMetrics(ctx, task.ID, []Metric{{Step: 1, Name: "val_loss", Value: math.NaN()}, {Step: 2, Name: "val_loss", Value: math.Inf(1)}})
		rs, err = db.JobMetricRanges(ctx, job, "val_loss")
		if err != nil || len(rs) != 1 || !math.IsNaN(rs[0].Min) || !math.IsNaN(rs[0].Max) || rs[0].Count != 2 {
			t.Fatalf("ranges of a non-finite metric %+v, %v", rs, err)
		}
		bs, err = db.MetricBuckets(ctx, task.ID, "val_loss", false, 1, 2, 1)
		if err != nil || len(bs) != 1 || !math.IsNaN(bs[0].Min) || bs[0].NonFinite != 2 {
			t.Fatalf("buckets of a non-finite metric %+v, %v", bs, err)
		}
		last, err := db.LastMetric(ctx, task.ID, "val_loss")
		if err != nil || !math.IsInf(last.Value, 1) {
			t.Fatalf("last %+v, %v", last, err)
		}
	})
}

// jobs retry with changed parameters: the failed and cancelled tasks get
// the new ones, succeeded tasks keep theirs, the job's parameters change,
// and the retry is recorded; a change with nothing to retry is refused.
func TestRetryJobWith(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		for _, want := range []struct{ name, state string }{{"gen", Succeeded}, {"train", Failed}} {
			task, err := db.Claim(ctx, "w", job, time.Minute)
			if err != nil || task.Name != want.name {
				t.Fatalf("claim: %+v %v", task, err)
			}
			if err := db.Finish(ctx, task.ID, "w", want.state, "diverged at step 3"); err != nil {
				t.Fatal(err)
			}
		}
		n, err := db.RetryJobWith(ctx, job, RetryChange{Params: `{"lr":1}`,
			TaskParams: map[string]string{"train": `{"lr":1}`, "eval": `{"lr":1}`, "gen": `{"lr":1}`},
			Changes:    `{"lr":[1e30,1]}`})
		if err != nil || n != 2 {
			t.Fatalf("retry: %d, %v", n, err)
		}
		j, _ := db.Job(ctx, job)
		ts, _ := db.Tasks(ctx, job)
		params := map[string]string{}
		for _, tk := range ts {
			params[tk.Name] = tk.State + " " + tk.Params
		}
		if j.Params != `{"lr":1}` || j.State != Running || params["gen"] != "succeeded {}" ||
			params["train"] != `queued {"lr":1}` || params["eval"] != `queued {"lr":1}` || params["other"] != "queued {}" {
			t.Fatalf("after retry: job %+v, tasks %v", j, params)
		}
		rs, err := db.JobRetries(ctx, job)
		if err != nil || len(rs) != 1 || rs[0].Tasks != "train eval" || rs[0].Changes != `{"lr":[1e30,1]}` || rs[0].At == "" {
			t.Fatalf("retries %+v, %v", rs, err)
		}
		// Nothing failed now: a plain retry does nothing, a change is refused.
		if n, err := db.RetryJob(ctx, job); err != nil || n != 0 {
			t.Fatalf("plain retry with nothing to do: %d, %v", n, err)
		}
		if _, err := db.RetryJobWith(ctx, job, RetryChange{Params: `{"lr":2}`}); !errors.Is(err, ErrNothingToRetry) {
			t.Fatalf("change with nothing to retry: %v", err)
		}
		if _, err := db.RetryJob(ctx, 99); !errors.Is(err, ErrNotFound) {
			t.Fatalf("retry of a missing job: %v", err)
		}
		if rs, _ := db.JobRetries(ctx, job); len(rs) != 1 {
			t.Fatalf("retries recorded: %d, want 1", len(rs))
		}
	})
}

// A task resumed after a crash records its last epoch again: identical
// values are kept once, a different value at the same step is new data.
func TestAddMetricsSkipsReplays(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := mustOpen(t, b)
		job := dag(db, t)
		task, _ := db.Claim(ctx, "w", job, time.Minute)
		epoch := []Metric{{Step: 100, Epoch: 1, Name: "loss", Value: 0.5}, {Step: 100, Epoch: 1, Name: "val_loss", Value: math.NaN()},
			{Step: 100, Epoch: 1, Name: "acc", Value: math.Inf(1)}}
		for range 3 {
			if err := db.AddMetrics(ctx, task.ID, epoch); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.AddMetrics(ctx, task.ID, []Metric{{Step: 100, Epoch: 1, Name: "loss", Value: 0.25}}); err != nil {
			t.Fatal(err)
		}
		ms, err := db.JobMetrics(ctx, job)
		if err != nil || len(ms) != 4 {
			t.Fatalf("%d rows after three replays and one new value, want 4: %v %v", len(ms), ms, err)
		}
	})
}
