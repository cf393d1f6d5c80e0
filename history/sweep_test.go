package history

import (
	"testing"
	"time"

	"github.com/dl4img/dl4img/store"
)

func TestRankSweep(t *testing.T) {
	spec := `{"grid":[{"name":"lr","dist":"grid","values":["1","2","3","4","5"]}],"seed":1}`
	pt := func(i int, state string, best float64, has bool) store.SweepPoint {
		return store.SweepPoint{Job: int64(10 + i), Index: i, Params: `{"lr":1}`, State: state, Best: best, HasBest: has,
			StartedAt: "2026-01-01T00:00:00.000Z"}
	}
	pts := []store.SweepPoint{
		pt(1, store.Succeeded, 0.5, true),
		pt(2, store.Queued, 0, false),
		pt(3, store.Failed, 0.2, true), // best loss, but failed
		pt(4, store.Pruned, 0.9, true),
		pt(5, store.Succeeded, 0.5, true), // ties with 1: point order
	}
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	for _, c := range []struct {
		lower bool
		order []int
		best  int64
	}{
		{true, []int{3, 1, 5, 4, 2}, 11},  // val_loss: lower first; the failed point is not the best job
		{false, []int{4, 1, 5, 3, 2}, 11}, // val_acc: higher first; the pruned point is not the best job
	} {
		r, err := RankSweep(store.Sweep{ID: 1, Metric: "m", Lower: c.lower, Spec: spec, Prune: `{"rule":"asha","min_epochs":1,"factor":3}`}, pts, now)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range c.order {
			p := r.Points[i]
			rank := i + 1
			if want == 2 {
				rank = 0
			}
			if p.Point != want || p.Rank != rank {
				t.Fatalf("lower %v: place %d is point %d rank %d, want point %d rank %d", c.lower, i+1, p.Point, p.Rank, want, rank)
			}
		}
		if r.BestJob != c.best || r.Rule == nil || len(r.Swept) != 1 || r.Points[0].DurationS != 60 {
			t.Fatalf("lower %v: best job %d, rule %v, swept %v, running time %v", c.lower, r.BestJob, r.Rule, r.Swept, r.Points[0].DurationS)
		}
	}
	if _, err := RankSweep(store.Sweep{ID: 2, Spec: "{"}, pts, now); err == nil {
		t.Fatal("a broken spec was read")
	}
}
