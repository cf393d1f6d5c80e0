package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/internal/pgtest"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
)

// sweepFixture is a store with one plain job and a sweep of five points
// over a log-uniform learning rate and a choice: two succeeded, one
// pruned, one failed, one running.
type sweepFixture struct {
	st    *store.DB
	dir   string
	sweep int64
	jobs  []int64 // the points' jobs, in point order
	plain int64
}

// sweepPoints are the fixture's points: swept values, final state, and
// val_acc per epoch.
var sweepPoints = []struct {
	lr    float64
	loss  string
	state string
	acc   []float64
}{
	{3e-3, "dice", store.Succeeded, []float64{0.6, 0.8, 0.91}},
	{2e-5, "bce", store.Pruned, []float64{0.3}},
	{4e-2, "bce", store.Failed, []float64{0.5}},
	{6e-4, "bce", store.Succeeded, []float64{0.5, 0.7, 0.86}},
	{1e-4, "dice", store.Running, []float64{0.4}},
}

func newSweepFixture(tb testing.TB, dsn string) *sweepFixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	if dsn == "" {
		dsn = filepath.Join(dir, "dl4img.db")
	}
	w, err := store.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	f := &sweepFixture{dir: dir}
	plan := []store.NewTask{
		{Name: "train", Kind: "selftest.train", Params: "{}"},
		{Name: "evaluate", Kind: "selftest.evaluate", Params: "{}", Deps: []string{"train"}},
	}
	if f.plain, err = w.CreateJob(ctx, store.NewJob{Kind: "selftest", Name: "alone", Params: "{}", Tasks: plan}); err != nil {
		tb.Fatal(err)
	}
	lr, _ := sweep.ParseSpace("learning_rate=loguniform(1e-5,1e-1)")
	loss, _ := sweep.ParseSpace("loss=choice(bce,dice)")
	spec, _ := json.Marshal(sweep.Spec{Space: []sweep.Param{lr, loss}, Random: 5, Seed: 3, Set: []string{"preset=quick"}})
	ns := store.NewSweep{Kind: "selftest", Name: "lr-search", Spec: string(spec), Metric: "val_acc",
		Prune: `{"rule":"asha","min_epochs":1,"factor":3}`}
	for i, p := range sweepPoints {
		ns.Points = append(ns.Points, store.NewPoint{Params: fmt.Sprintf(`{"learning_rate":%g,"loss":%q}`, p.lr, p.loss),
			Job: store.NewJob{Kind: "selftest", Name: fmt.Sprintf("lr-search/%d", i+1), Params: "{}", Tasks: plan}})
	}
	if f.sweep, f.jobs, err = w.CreateSweep(ctx, ns); err != nil {
		tb.Fatal(err)
	}
	for i, p := range sweepPoints {
		train, err := w.Claim(ctx, "fixture", f.jobs[i], time.Hour)
		if err != nil || train == nil {
			tb.Fatalf("claim: %v %v", train, err)
		}
		var ms []store.Metric
		for e, v := range p.acc {
			ms = append(ms, store.Metric{Step: 10 * (e + 1), Epoch: e + 1, Name: "val_acc", Value: v})
			pruned := p.state == store.Pruned && e == len(p.acc)-1
			if _, _, err := w.ReportEpoch(ctx, train.ID, e+1, v, func(own, others []store.EpochReport) (bool, string) {
				return pruned, "weak"
			}); err != nil {
				tb.Fatal(err)
			}
		}
		if err := w.AddMetrics(ctx, train.ID, ms); err != nil {
			tb.Fatal(err)
		}
		switch p.state {
		case store.Running:
			continue
		case store.Failed:
			err = w.Finish(ctx, train.ID, "fixture", store.Failed, "diverged at step 12 (epoch 2): loss is NaN")
		default:
			err = w.Finish(ctx, train.ID, "fixture", p.state, "")
		}
		if err != nil {
			tb.Fatal(err)
		}
		if p.state == store.Succeeded {
			ev, _ := w.Claim(ctx, "fixture", f.jobs[i], time.Hour)
			if err := w.Finish(ctx, ev.ID, "fixture", store.Succeeded, ""); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if f.st, err = store.OpenReadOnly(ctx, dsn); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.st.Close() })
	return f
}

func (f *sweepFixture) server(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(f.st, Options{Root: filepath.Join(f.dir, "runs"), Headline: func(string) string { return "val_acc" }})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestSweepPages(t *testing.T) {
	f := newSweepFixture(t, "")
	s := f.server(t)
	rec := get(t, s, "/sweeps")
	body := rec.Body.String()
	for _, want := range []string{fmt.Sprintf(`href="/sweeps/%d"`, f.sweep), "lr-search", "2 succeeded", "1 pruned", "1 failed",
		"1 running", fmt.Sprintf("job %d</a> val_acc 0.91", f.jobs[0])} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("sweeps page (%d) lacks %q", rec.Code, want)
		}
	}
	rec = get(t, s, fmt.Sprintf("/sweeps/%d", f.sweep))
	body = rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("sweep page: %d %.300s", rec.Code, body)
	}
	// The ranking: best first; the pruned point after the others with values.
	rows := regexp.MustCompile(`<tr data-job="(\d+)"`).FindAllStringSubmatch(body, -1)
	var order []string
	for _, r := range rows {
		order = append(order, r[1])
	}
	want := []string{fmt.Sprint(f.jobs[0]), fmt.Sprint(f.jobs[3]), fmt.Sprint(f.jobs[2]), fmt.Sprint(f.jobs[4]), fmt.Sprint(f.jobs[1])}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("ranking %v, want %v", order, want)
	}
	for _, want := range []string{`id="p-learning_rate"`, `id="p-loss"`, `data-logx="1"`, "learning_rate (log)", "diverged at step 12",
		`data-active="1"`, "asha", "preset=quick", "5 random draws, seed 3", fmt.Sprintf("/compare?jobs=%d%%2c%d%%2c%d%%2c%d%%2c%d", f.jobs[0],
			f.jobs[3], f.jobs[2], f.jobs[4], f.jobs[1]), `class="dot st-pruned"`} {
		if !strings.Contains(body, want) {
			t.Errorf("sweep page lacks %q", want)
		}
	}
	// One dot per point and parameter; the choice is a column per value.
	if n := strings.Count(body, "<circle "); n != 2*len(sweepPoints) {
		t.Errorf("%d dots, want %d", n, 2*len(sweepPoints))
	}
	if !strings.Contains(body, `text-anchor="middle">bce</text>`) || !strings.Contains(body, `text-anchor="middle">0.001</text>`) {
		t.Error("axis labels: want columns bce/dice and log ticks 0.001")
	}
	for _, bad := range []string{"<script>", "style=", " onclick"} {
		if strings.Contains(body, bad) {
			t.Errorf("page has %q, which the CSP blocks", bad)
		}
	}
	if rec := get(t, s, "/sweeps/99"); rec.Code != 404 {
		t.Errorf("unknown sweep: %d", rec.Code)
	}
	if rec := get(t, s, "/sweeps/x"); rec.Code != 400 {
		t.Errorf("malformed sweep id: %d", rec.Code)
	}
}

// The sweeps API on both databases: what `dl4img sweep show --json`
// prints, and the jobs list's links.
func TestSweepAPI(t *testing.T) {
	for _, db := range []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"sqlite", func(testing.TB) string { return "" }},
		{"postgres", func(tb testing.TB) string { return pgtest.NewDB(tb) }},
	} {
		t.Run(db.name, func(t *testing.T) {
			f := newSweepFixture(t, db.dsn(t))
			s := f.server(t)
			list := decode[SweepList](t, get(t, s, "/api/sweeps"), 200)
			if len(list.Sweeps) != 1 || !list.Sweeps[0].Running || list.Sweeps[0].BestJob != f.jobs[0] ||
				list.Sweeps[0].States[store.Pruned] != 1 || list.Sweeps[0].Points != 5 {
				t.Fatalf("sweeps: %+v", list)
			}
			r := decode[history.Ranking](t, get(t, s, fmt.Sprintf("/api/sweeps/%d", f.sweep)), 200)
			if len(r.Points) != 5 || r.BestJob != f.jobs[0] || r.Rule == nil || r.Rule.Name != "asha" || len(r.Swept) != 2 ||
				r.Swept[0].Dist != sweep.LogUniform || r.Spec.Seed != 3 {
				t.Fatalf("ranking: %+v", r)
			}
			p := r.Points[len(r.Points)-1]
			if p.Job != f.jobs[1] || p.State != store.Pruned || p.PrunedAt != 1 || p.Rank != 5 || float64(*p.Best) != 0.3 ||
				string(p.Params["loss"]) != `"bce"` {
				t.Errorf("pruned point: %+v", p)
			}
			decode[map[string]string](t, get(t, s, "/api/sweeps/7"), 404)
			jobs := decode[JobList](t, get(t, s, "/api/jobs"), 200)
			refs := map[int64]*PointRef{}
			for _, j := range jobs.Jobs {
				refs[j.ID] = j.Sweep
			}
			if refs[f.plain] != nil || refs[f.jobs[3]] == nil || *refs[f.jobs[3]] != (PointRef{f.sweep, 4}) {
				t.Errorf("jobs list sweep links: plain %v, point 4 %v", refs[f.plain], refs[f.jobs[3]])
			}
		})
	}
}
