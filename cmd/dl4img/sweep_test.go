package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/store"
)

// showSweep returns `sweep show ID --json`.
func showSweepJSON(t *testing.T, dir string, id int64, db ...string) *history.Ranking {
	t.Helper()
	var out, errOut string
	var code int
	if len(db) > 0 {
		out, errOut, code = dlDB(t, dir, db[0], db[1], "sweep", "show", fmt.Sprint(id), "--json")
	} else {
		out, errOut, code = dl(t, dir, "sweep", "show", fmt.Sprint(id), "--json")
	}
	if code != 0 {
		t.Fatalf("sweep show: exit %d %s", code, errOut)
	}
	var r history.Ranking
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sweep show --json: %v\n%s", err, out)
	}
	return &r
}

// bestInStore is a job's best val_acc over its tasks and epochs, read
// from the store's metrics.
func bestInStore(t *testing.T, db *store.DB, job int64) float64 {
	t.Helper()
	ms, err := db.JobMetrics(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	best := math.Inf(-1)
	for _, m := range ms {
		if m.Name == "val_acc" {
			best = math.Max(best, m.Value)
		}
	}
	return best
}

// A 2×2 grid runs exactly four jobs; the ranking is the store's metrics
// in order; the CSV, the list and the plot say the same.
func TestSweepGridRunsEveryPoint(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := dl(t, dir, "sweep", "selftest", "--name", "grid", "--set", "preset=quick",
		"--grid", "learning_rate=0.05,0.0001", "--grid", "hidden=4,32", "--run")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "sweep 1 (selftest, grid): 4 points queued as jobs 1-4") ||
		!strings.Contains(errOut, "point 3  job 3  learning_rate=0.0001 hidden=4") {
		t.Errorf("log:\n%s", errOut)
	}
	db := openStore(t, dir)
	js, _ := db.Jobs(context.Background())
	if len(js) != 4 {
		t.Fatalf("%d jobs, want 4", len(js))
	}
	r := showSweepJSON(t, dir, 1)
	if len(r.Points) != 4 || r.Sweep.Metric != "val_acc" || r.Sweep.Lower || len(r.Swept) != 2 {
		t.Fatalf("ranking: %+v", r)
	}
	seen := map[string]bool{}
	for i, p := range r.Points {
		want := bestInStore(t, db, p.Job)
		if p.State != store.Succeeded || p.Best == nil || float64(*p.Best) != want || p.Rank != i+1 || p.Epochs != 2 {
			t.Errorf("rank %d: %+v, store's best val_acc %v", i+1, p, want)
		}
		if i > 0 && float64(*p.Best) > float64(*r.Points[i-1].Best) {
			t.Errorf("rank %d (%v) is better than rank %d", i+1, *p.Best, i)
		}
		seen[string(p.Params["learning_rate"])+"/"+string(p.Params["hidden"])] = true
		if j, _ := db.Job(context.Background(), p.Job); j.Name != fmt.Sprintf("grid/%d", p.Point) {
			t.Errorf("job %d is named %q", p.Job, j.Name)
		}
	}
	if len(seen) != 4 || !seen["0.0001/4"] || !seen["0.05/32"] {
		t.Errorf("points %v", seen)
	}
	if r.BestJob != r.Points[0].Job || !strings.Contains(out, fmt.Sprintf("best: job %d", r.BestJob)) {
		t.Errorf("best job %d; printed:\n%s", r.BestJob, out)
	}
	out, _, code = dl(t, dir, "sweep", "show", "1", "--csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 5 ||
		!slices.Equal(rows[0], []string{"rank", "point", "job", "state", "learning_rate", "hidden", "val_acc", "epochs", "pruned_at", "duration_s"}) ||
		rows[1][2] != fmt.Sprint(r.BestJob) {
		t.Errorf("csv (exit %d, %v):\n%s", code, err, out)
	}
	out, _, code = dl(t, dir, "sweep", "list")
	if code != 0 || !strings.Contains(out, "grid") || !strings.Contains(out, "4 succeeded") {
		t.Errorf("list:\n%s", out)
	}
	plot := filepath.Join(dir, "sweep.png")
	if _, errOut, code := dl(t, dir, "runs", "plot", "--sweep", "1", "-o", plot); code != 0 {
		t.Fatalf("plot: %d %s", code, errOut)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}

// sweepPointParams lists the points' swept values in point order.
func sweepPointParams(r *history.Ranking) []string {
	out := make([]string, len(r.Points))
	for _, p := range r.Points {
		b, _ := json.Marshal(p.Params)
		out[p.Point-1] = string(b)
	}
	return out
}

func TestRandomSweepSameSeedSamePoints(t *testing.T) {
	dir := t.TempDir()
	args := []string{"sweep", "selftest", "--random", "6", "--space", "learning_rate=loguniform(1e-4,1e-1)",
		"--space", "hidden=int(4,64)", "--space", "batch_size=choice(16,32,64)"}
	for _, seed := range []string{"7", "7", "8"} {
		if _, errOut, code := dl(t, dir, append(args, "--seed", seed)...); code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
	}
	a, b, c := sweepPointParams(showSweepJSON(t, dir, 1)), sweepPointParams(showSweepJSON(t, dir, 2)), sweepPointParams(showSweepJSON(t, dir, 3))
	if len(a) != 6 || !slices.Equal(a, b) {
		t.Fatalf("seed 7 drew\n%v\nthen\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 drew the same points")
	}
	// Values are typed as the kind reads them: numbers, not strings.
	var p map[string]any
	json.Unmarshal([]byte(a[0]), &p)
	if _, ok := p["learning_rate"].(float64); !ok {
		t.Errorf("learning_rate stored as %T", p["learning_rate"])
	}
}

// asha sweep: the best point first, then three that barely learn. Each
// epoch is long enough (1,500 steps) to kill a worker in the middle.
var ashaSweep = []string{"sweep", "selftest", "--set", "preset=quick", "--set", "epochs=3", "--set", "steps_per_epoch=1500",
	"--set", "checkpoint_every=250", "--grid", "learning_rate=0.05,1e-7,2e-7,3e-7", "--prune", "asha", "--lease", "2s"}

type decision struct {
	State    string
	PrunedAt int
}

func decisions(r *history.Ranking) []decision {
	out := make([]decision, len(r.Points))
	for _, p := range r.Points {
		out[p.Point-1] = decision{p.State, p.PrunedAt}
	}
	return out
}

// ASHA prunes the weak points at the first rung (epoch 1) and never the
// best; a pruned point keeps its metrics and checkpoint, is pruned (not
// failed) and was not retried. A worker killed during the same sweep and
// a second worker draining it reach the same decisions.
func TestASHAPrunesWeakPointsAndSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := dl(t, dir, append(ashaSweep, "--run")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	r := showSweepJSON(t, dir, 1)
	want := []decision{{store.Succeeded, 0}, {store.Pruned, 1}, {store.Pruned, 1}, {store.Pruned, 1}}
	if got := decisions(r); !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v\n%s", got, want, out)
	}
	db := openStore(t, dir)
	for _, p := range r.Points[1:] {
		train := task(t, db, p.Job, "train")
		if train.State != store.Pruned || train.Attempt != 1 || !strings.Contains(train.Error, "pruned after epoch 1: asha: val_acc") {
			t.Errorf("job %d train: %s attempt %d %q", p.Job, train.State, train.Attempt, train.Error)
		}
		if ev := task(t, db, p.Job, "evaluate"); ev.State != store.Pruned || ev.Attempt != 0 {
			t.Errorf("job %d evaluate: %s attempt %d", p.Job, ev.State, ev.Attempt)
		}
		if c, ok, _ := db.LatestCheckpoint(context.Background(), train.ID); !ok || c.Step != 1500 {
			t.Errorf("job %d: last checkpoint %+v, want the pruned epoch's (1500)", p.Job, c)
		}
		if p.Best == nil || p.Epochs != 1 {
			t.Errorf("job %d lost its metrics: %+v", p.Job, p)
		}
	}
	if !strings.Contains(out, "pruning asha") || !strings.Contains(errOut, "pruned after epoch 1") {
		t.Errorf("output:\n%s\n%s", out, errOut)
	}

	// The same sweep in another history, its worker killed mid-sweep.
	dir2 := t.TempDir()
	if _, errOut, code := dl(t, dir2, ashaSweep...); code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	db2 := openStore(t, dir2)
	cmd := command(dir2, "worker", "--drain", "--lease", "2s")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once point 2's first rung is decided, before or while it
	// records the outcome.
	train2 := task(t, db2, 2, "train")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pts, err := db2.SweepPoints(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if pts[1].PrunedAt > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("point 2 never reached its rung:\n%s", errBuf.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c, _, _ := db2.LatestCheckpoint(context.Background(), train2.ID)
	t.Logf("killed with point 2's train %s, its last checkpoint at step %d", task(t, db2, 2, "train").State, c.Step)
	if _, errOut, code := dl(t, dir2, "worker", "--drain", "--lease", "2s"); code != 0 {
		t.Fatalf("drain after the kill: exit %d\n%s", code, errOut)
	}
	r2 := showSweepJSON(t, dir2, 1)
	if got := decisions(r2); !slices.Equal(got, want) {
		t.Fatalf("after kill and drain: decisions %v, want %v\nkilled worker:\n%s", got, want, errBuf.String())
	}
	if tr := task(t, db2, 2, "train"); tr.State != store.Pruned || tr.ID != train2.ID {
		t.Fatalf("point 2 train: %+v", tr)
	}
}

// Bad sweeps are one line and exit 2, and queue nothing.
func TestSweepBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--grid", "learning_rate="}, "--grid learning_rate=: no values"},
		{[]string{"--grid", "learning_rate=0.1,,0.2"}, "an empty value"},
		{[]string{"--random", "3", "--space", "learning_rate=loguniform(0,1)"}, "loguniform bounds must be > 0"},
		{[]string{"--random", "3", "--space", "learning_rate=gauss(0,1)"}, `unknown distribution "gauss"`},
		{[]string{"--random", "3", "--space", "learning_rate=uniform(0.1"}, "want key=uniform"},
		{[]string{"--grid", "lr=0.1,0.2"}, `kind selftest has no parameter "lr"`},
		{[]string{"--random", "2", "--space", "widht=int(2,8)"}, `kind selftest has no parameter "widht"`},
		{[]string{"--space", "hidden=int(2,8)"}, "--space needs --random N"},
		{[]string{"--random", "3", "--grid", "hidden=2,4"}, "--random N needs at least one --space"},
		{[]string{}, "nothing to sweep"},
		{[]string{"--grid", "hidden=2,4", "--set", "hidden=8"}, "parameter hidden is both --set and swept"},
		{[]string{"--grid", "hidden=2,x"}, `point 2 of 2 (hidden=x): parameter hidden: want int, got "x"`},
		{[]string{"--grid", "learning_rate=0.1,-1"}, "point 2 of 2 (learning_rate=-1): parameter learning_rate: must be >= 0"},
		{[]string{"--grid", "hidden=2,4", "--prune", "hyperband"}, `--prune "hyperband": want asha or median`},
		{[]string{"--grid", "hidden=2,4", "--prune", "asha", "--prune-factor", "1"}, "--prune-factor: must be >= 2"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := dl(t, dir, append([]string{"sweep", "selftest"}, c.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr %q: want one line containing %q", errOut, c.want)
			}
		})
	}
	for _, args := range [][]string{{"sweep", "show", "9"}, {"sweep", "show", "x"}, {"sweep", "nosuchkind", "--grid", "a=1"}} {
		if _, errOut, code := dl(t, dir, args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d %q", args, code, errOut)
		}
	}
	out, _, _ := dl(t, dir, "jobs", "list")
	list, _, _ := dl(t, dir, "sweep", "list")
	if strings.Count(strings.TrimSpace(out), "\n") != 0 || strings.Count(strings.TrimSpace(list), "\n") != 0 {
		t.Fatalf("bad sweeps queued something:\n%s\n%s", out, list)
	}
}

// The median rule: once two points have finished, a point whose best
// val_acc by epoch 2 is below theirs stops there.
func TestMedianPrunes(t *testing.T) {
	dir := t.TempDir()
	if out, errOut, code := dl(t, dir, "sweep", "selftest", "--set", "preset=quick", "--set", "epochs=4",
		"--grid", "learning_rate=0.05,0.03,1e-7,2e-7", "--prune", "median", "--prune-startup", "2", "--prune-min-epochs", "2", "--run"); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	want := []decision{{store.Succeeded, 0}, {store.Succeeded, 0}, {store.Pruned, 2}, {store.Pruned, 2}}
	if got := decisions(showSweepJSON(t, dir, 1)); !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
}

// A point that fails does not stop the sweep: the other points run, the
// ranking shows the failure's line, and `sweep --run` exits 1.
func TestSweepCarriesOnWhenAPointFails(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := dl(t, dir, "gen", "captcha", "--out", "test", "-n", "4", "--width", "48", "--height", "24",
		"--charset", "0123456789", "--length", "2"); code != 0 {
		t.Fatal(errOut)
	}
	labels := filepath.Join(dir, "test", "labels.txt")
	b, _ := os.ReadFile(labels)
	lines := strings.Split(string(b), "\n")
	lines[2] = "7Z" // a character the readers do not read
	os.WriteFile(labels, []byte(strings.Join(lines, "\n")), 0o644)
	out, errOut, code := dl(t, dir, "sweep", "captcha-ctc", "--set", "preset=demo", "--set", "epochs=1", "--set", "steps_per_epoch=2",
		"--set", "val_size=8", "--set", "test_dir=test", "--grid", "skip_bad=false,true", "--run")
	if code != 1 || !strings.Contains(errOut, "dl4img: sweep 1: 1 of 2 points failed (see dl4img sweep show 1)") {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "point 1 (job 1) failed: test_dir: labels.txt:3:") {
		t.Errorf("ranking does not show the failure:\n%s", out)
	}
	want := []decision{{store.Failed, 0}, {store.Succeeded, 0}}
	if got := decisions(showSweepJSON(t, dir, 1)); !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
}
