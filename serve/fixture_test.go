package serve

import (
	"context"
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dl4img/dl4img/store"
)

// fixture is a store with every kind of job the UI shows, written through
// the store's API the way a worker writes it, then opened read-only.
type fixture struct {
	st                       *store.DB
	dir                      string
	done, failed, run, done2 int64 // job ids
	png, csv, blob, symlink  int64 // artifact ids of job done
	failedArt                int64 // an artifact of job failed
	pngBytes                 []byte
	outside                  string // a file outside every workdir
	headline                 func(string) string
}

// newFixture builds the fixture in a SQLite file; points is how many steps
// the finished job's training loss has (the benchmark uses 100k).
func newFixture(tb testing.TB, points int) *fixture {
	return newFixtureOn(tb, points, "")
}

// newFixtureOn builds the fixture in the database dsn ("": a new SQLite file).
func newFixtureOn(tb testing.TB, points int, dsn string) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	dbPath := dsn
	if dbPath == "" {
		dbPath = filepath.Join(dir, "dl4img.db")
	}
	w, err := store.Open(ctx, dbPath)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{dir: dir, headline: func(k string) string {
		if k == "selftest" {
			return "val_acc"
		}
		return ""
	}}
	runs := filepath.Join(dir, "runs")
	plan := []store.NewTask{
		{Name: "generate", Kind: "selftest.generate", Params: "{}"},
		{Name: "train", Kind: "selftest.train", Params: "{}", Deps: []string{"generate"}},
		{Name: "evaluate", Kind: "selftest.evaluate", Params: "{}", Deps: []string{"train"}},
		{Name: "submit", Kind: "selftest.submit", Params: "{}", Deps: []string{"train"}},
	}
	newJob := func(name, params string) int64 {
		id, err := w.CreateJob(ctx, store.NewJob{Kind: "selftest", Name: name, Params: params, Tasks: plan})
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(runs, fmt.Sprintf("job-%d", id)), 0o755); err != nil {
			tb.Fatal(err)
		}
		return id
	}
	// step claims job's next task and ends it in state (or leaves it
	// running when state is Running).
	step := func(job int64, state, errText string, body func(t *store.Task)) {
		t, err := w.Claim(ctx, "fixture", job, time.Hour)
		if err != nil || t == nil {
			tb.Fatalf("claim job %d: %v %v", job, t, err)
		}
		if err := w.SetBackend(ctx, t.ID, "go:ops_sequential"); err != nil {
			tb.Fatal(err)
		}
		if body != nil {
			body(t)
		}
		if state != store.Running {
			if err := w.Finish(ctx, t.ID, "fixture", state, errText); err != nil {
				tb.Fatal(err)
			}
		}
	}
	addArt := func(taskID int64, role, path string) int64 {
		if err := w.AddArtifact(ctx, store.Artifact{TaskID: taskID, Role: role, Path: path, Bytes: 1, SHA256: "00"}); err != nil {
			tb.Fatal(err)
		}
		return lastArtifact(tb, w, taskID)
	}
	curves := func(taskID int64, epochs, perEpoch int, lossScale float64) {
		var ms []store.Metric
		for s := 1; s <= epochs*perEpoch; s++ {
			ms = append(ms, store.Metric{Step: s, Epoch: (s-1)/perEpoch + 1, Name: "step_loss",
				Value: lossScale * (0.1 + math.Exp(-float64(s)/float64(epochs*perEpoch)*4)*(1+0.1*math.Sin(float64(s))))})
		}
		ms[len(ms)*2/5].Value = 3 * lossScale // a spike that downsampling must keep
		for e := 1; e <= epochs; e++ {
			x := float64(e) / float64(epochs)
			ms = append(ms,
				store.Metric{Step: e * perEpoch, Epoch: e, Name: "loss", Value: lossScale * (0.1 + math.Exp(-4*x))},
				store.Metric{Step: e * perEpoch, Epoch: e, Name: "val_loss", Value: lossScale * (0.15 + math.Exp(-3.5*x))},
				store.Metric{Step: e * perEpoch, Epoch: e, Name: "acc", Value: 1 - 0.6*math.Exp(-4*x)},
				store.Metric{Step: e * perEpoch, Epoch: e, Name: "val_acc", Value: 0.97 - 0.6*math.Exp(-3.5*x)})
		}
		if err := w.AddMetrics(ctx, taskID, ms); err != nil {
			tb.Fatal(err)
		}
	}

	// A finished job with curves, an image, a CSV, a binary file, a
	// checkpoint, and a symlink planted in its workdir.
	f.done = newJob("baseline", `{"epochs":12,"hidden":32,"learning_rate":0.01,"preset":"demo"}`)
	jobDir := filepath.Join(runs, fmt.Sprintf("job-%d", f.done))
	step(f.done, store.Succeeded, "", nil)
	step(f.done, store.Succeeded, "", func(t *store.Task) {
		perEpoch := max(1, points/12)
		curves(t.ID, 12, perEpoch, 1)
		if err := w.AddCheckpoint(ctx, store.Checkpoint{TaskID: t.ID, Step: 12 * perEpoch,
			Path: filepath.Join(jobDir, "train", "checkpoints", "ckpt-1200")}); err != nil {
			tb.Fatal(err)
		}
		f.pngBytes = writePNG(tb, filepath.Join(jobDir, "train", "cam.png"))
		f.png = addArt(t.ID, "cam", filepath.Join(jobDir, "train", "cam.png"))
	})
	step(f.done, store.Succeeded, "", func(t *store.Task) {
		if err := w.AddMetrics(ctx, t.ID, []store.Metric{{Step: 1200, Epoch: 12, Name: "test_acc", Value: 0.955}}); err != nil {
			tb.Fatal(err)
		}
		blob := filepath.Join(jobDir, "model.bin")
		writeFile(tb, blob, "\x00\x01binary")
		f.blob = addArt(t.ID, "model", blob)
		f.outside = filepath.Join(dir, "secret.txt")
		writeFile(tb, f.outside, "root:x:0:0:secret")
		link := filepath.Join(jobDir, "evil.png")
		if err := os.Symlink(f.outside, link); err != nil {
			tb.Fatal(err)
		}
		f.symlink = addArt(t.ID, "plot", link)
	})
	step(f.done, store.Succeeded, "", func(t *store.Task) {
		sub := filepath.Join(jobDir, "submission.csv")
		rows := [][]string{{"id", "label"}}
		for i := range 50 {
			rows = append(rows, []string{fmt.Sprint(i), fmt.Sprint(i % 3)})
		}
		writeCSV(tb, sub, rows)
		f.csv = addArt(t.ID, "submission", sub)
	})

	// A second finished run with other parameters, for comparisons.
	f.done2 = newJob("wider", `{"epochs":12,"hidden":64,"learning_rate":0.01,"preset":"demo"}`)
	step(f.done2, store.Succeeded, "", nil)
	step(f.done2, store.Succeeded, "", func(t *store.Task) { curves(t.ID, 12, max(1, min(points/12, 100)), 0.8) })
	step(f.done2, store.Succeeded, "", nil)
	step(f.done2, store.Succeeded, "", nil)

	// A failed job: training failed (attempts used up), the rest cancelled.
	// It diverged at learning rate 50, was retried at 5 (recorded), and
	// diverged again.
	f.failed = newJob("diverged", `{"epochs":3,"hidden":32,"learning_rate":50,"preset":"demo"}`)
	step(f.failed, store.Succeeded, "", func(t *store.Task) {
		p := filepath.Join(runs, fmt.Sprintf("job-%d", f.failed), "points.csv")
		writeCSV(tb, p, [][]string{{"x", "y"}, {"1", "2"}})
		f.failedArt = addArt(t.ID, "data", p)
	})
	step(f.failed, store.Failed, "diverged at step 2 (epoch 1): loss is NaN; last finite checkpoint at step 0; try a lower learning_rate (now 50)", nil)
	lower := `{"epochs":3,"hidden":32,"learning_rate":5,"preset":"demo"}`
	if _, err := w.RetryJobWith(ctx, f.failed, store.RetryChange{Params: lower, Changes: `{"learning_rate":[50,5]}`,
		TaskParams: map[string]string{"train": lower, "evaluate": lower, "submit": lower}}); err != nil {
		tb.Fatal(err)
	}
	// Its loss has a gap (a NaN at step 9) and ends infinite at step 17;
	// its learning rate is constant.
	step(f.failed, store.Failed, "diverged at step 17 (epoch 1): loss is Inf; last finite checkpoint at step 10; try a lower learning_rate (now 5)", func(t *store.Task) {
		var ms []store.Metric
		for s := 1; s <= 17; s++ {
			v := 3.2 - 0.1*float64(s) + 0.05*float64(s%3)
			switch s {
			case 9:
				v = math.NaN()
			case 17:
				v = math.Inf(1)
			}
			ms = append(ms, store.Metric{Step: s, Epoch: 1, Name: "loss", Value: v},
				store.Metric{Step: s, Epoch: 1, Name: "lr", Value: 0.003})
		}
		if err := w.AddMetrics(ctx, t.ID, ms); err != nil {
			tb.Fatal(err)
		}
	})

	// A running job: training is halfway.
	f.run = newJob("running", `{"epochs":10,"hidden":32,"learning_rate":0.01,"preset":"demo"}`)
	step(f.run, store.Succeeded, "", nil)
	step(f.run, store.Running, "", func(t *store.Task) {
		curves(t.ID, 5, 3, 1)
		if err := w.SetProgress(ctx, t.ID, "epoch 6/10", 150, 300); err != nil {
			tb.Fatal(err)
		}
	})
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if f.st, err = store.OpenReadOnly(ctx, dbPath); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.st.Close() })
	return f
}

func (f *fixture) server(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Headline == nil {
		opt.Headline = f.headline
	}
	if opt.Root == "" {
		opt.Root = filepath.Join(f.dir, "runs")
	}
	s, err := New(f.st, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func lastArtifact(tb testing.TB, db *store.DB, taskID int64) int64 {
	tb.Helper()
	t, err := db.Task(context.Background(), taskID)
	if err != nil {
		tb.Fatal(err)
	}
	as, err := db.JobArtifactRecords(context.Background(), t.JobID)
	if err != nil || len(as) == 0 {
		tb.Fatal(err)
	}
	return as[len(as)-1].ID
}

func writeFile(tb testing.TB, path, s string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func writeCSV(tb testing.TB, path string, rows [][]string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	cw := csv.NewWriter(fh)
	cw.WriteAll(rows)
	if err := fh.Close(); err != nil {
		tb.Fatal(err)
	}
}

// writePNG writes a small heat-map-like image (a CAM stand-in).
func writePNG(tb testing.TB, path string) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := range 64 {
		for x := range 96 {
			d := math.Hypot(float64(x-60), float64(y-30)) / 50
			v := math.Max(0, 1-d)
			img.Set(x, y, color.RGBA{uint8(255 * v), uint8(80 + 100*v), uint8(255 * (1 - v)), 255})
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := png.Encode(fh, img); err != nil {
		tb.Fatal(err)
	}
	fh.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
