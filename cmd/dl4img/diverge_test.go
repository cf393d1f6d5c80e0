package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/pgtest"
)

// runner runs the binary against one database.
type runner func(t *testing.T, args ...string) (stdout, stderr string, code int)

var divergedLine = regexp.MustCompile(`diverged at step (\d+) \(epoch (\d+)\): (\w+) is (NaN|Inf|-Inf); last finite checkpoint at step (\d+); try a lower learning_rate \(now ([^)]+)\)`)

// divergeAndRetry: an absurd learning rate gives the one-line divergence
// message and exit 1, with the metrics (NaN included, as null) in jobs
// show --json; jobs retry --set resumes from the last finite checkpoint,
// succeeds, and the change is in the history.
func divergeAndRetry(t *testing.T, dl runner) {
	_, errOut, code := dl(t, "run", "selftest", "--set", "preset=demo", "--set", "learning_rate=1e30")
	m := divergedLine.FindStringSubmatch(errOut)
	if code != 1 || m == nil || m[6] != "1e+30" {
		t.Fatalf("run with learning_rate=1e30: exit %d, want 1 and the diverged line\n%s", code, errOut)
	}
	last := strings.TrimSpace(errOut[strings.LastIndex(strings.TrimSpace(errOut), "\n")+1:])
	if !strings.HasPrefix(last, "dl4img: job 1 failed: train: diverged at step ") {
		t.Fatalf("last line %q does not say why", last)
	}
	out, _, _ := dl(t, "jobs", "show", "--json", "1")
	var v struct {
		Tasks   []struct{ Name, State, Error string } `json:"tasks"`
		Metrics []struct {
			Task, Name string
			Last       *float64 `json:"last"`
			Count      int      `json:"count"`
			Step       int      `json:"last_step"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("jobs show --json: %v\n%s", err, out)
	}
	if v.Tasks[1].State != "failed" || !divergedLine.MatchString(v.Tasks[1].Error) {
		t.Fatalf("train task %+v", v.Tasks[1])
	}
	step, _ := strconv.Atoi(m[1])
	found := false
	for _, mt := range v.Metrics {
		if mt.Task == "train" && mt.Name == m[3] && mt.Last == nil && mt.Step == step {
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s metric ending in null at step %d in\n%s", m[3], step, out)
	}
	if out, _, _ := dl(t, "jobs", "show", "1"); !regexp.MustCompile(`train\s+` + m[3] + `\s+(NaN|Inf|-Inf)\s`).MatchString(out) {
		t.Fatalf("jobs show does not show the non-finite value:\n%s", out)
	}

	// The retry at a sane rate resumes from the last finite checkpoint
	// (here the start: selftest explodes at its second step; the loop's
	// tests resume from later ones) and succeeds.
	resume := m[5]
	for _, bad := range [][]string{{"learning_rate=fast", "parameter learning_rate"}, {"preset=demo", "preset cannot change"},
		{"nope=1", `unknown parameter "nope"`}} {
		_, errOut, code := dl(t, "jobs", "retry", "1", "--set", bad[0])
		if code != 2 || !strings.Contains(errOut, bad[1]) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("retry --set %s: exit %d, want 2 and one line with %q: %s", bad[0], code, bad[1], errOut)
		}
	}
	out, errOut, code = dl(t, "jobs", "retry", "1", "--set", "learning_rate=0.01")
	if code != 0 || !strings.Contains(out, "with learning_rate 1e+30 → 0.01") {
		t.Fatalf("retry --set: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = dl(t, "worker", "--drain")
	if code != 0 {
		t.Fatalf("worker after retry: exit %d\n%s", code, errOut)
	}
	if resume != "0" && !strings.Contains(errOut, "resuming from checkpoint at step "+resume+" ") {
		t.Fatalf("retry did not resume from the last finite checkpoint (step %s):\n%s", resume, errOut)
	}
	if _, errOut, code := dl(t, "jobs", "retry", "1", "--set", "learning_rate=0.001"); code != 2 || !strings.Contains(errOut, "no failed or cancelled task") {
		t.Fatalf("retry --set of a finished job: exit %d %s", code, errOut)
	}
	out, _, _ = dl(t, "jobs", "show", "1")
	if !strings.Contains(out, "state succeeded") || !regexp.MustCompile(`retried \S+: train, evaluate, submit queued again; learning_rate 1e\+30 → 0.01`).MatchString(out) {
		t.Fatalf("jobs show after the retry:\n%s", out)
	}
	out, _, _ = dl(t, "jobs", "show", "--json", "1")
	var r struct {
		Params struct {
			LearningRate float64 `json:"learning_rate"`
		} `json:"params"`
		Retries []struct {
			Changes map[string][2]float64 `json:"changes"`
		} `json:"retries"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Retries) != 1 ||
		r.Retries[0].Changes["learning_rate"] != [2]float64{1e30, 0.01} || r.Params.LearningRate != 0.01 {
		t.Fatalf("jobs show --json after the retry: %+v %v", r, err)
	}
	// The history commands take the non-finite values: gaps in the plot,
	// NaN/Inf in the comparison (a second diverged run).
	if _, _, code := dl(t, "run", "selftest", "-q", "--set", "preset=quick", "--set", "learning_rate=1e4"); code != 1 {
		t.Fatalf("run with learning_rate=1e4: exit %d", code)
	}
	if out, errOut, code := dl(t, "runs", "plot", "1", "2", "-o", "curves.png"); code != 0 {
		t.Fatalf("runs plot of diverged runs: exit %d %s%s", code, out, errOut)
	}
	if out, _, code := dl(t, "runs", "compare", "--csv", "1", "2"); code != 0 || !regexp.MustCompile(`metric_last,train/loss,,[0-9.e-]+,(NaN|Inf|-Inf|1\.\d+e\+1\d)\n`).MatchString(out) {
		t.Fatalf("runs compare --csv: exit %d\n%s", code, out)
	}
}

func TestDivergeAndRetry(t *testing.T) {
	dir := t.TempDir()
	divergeAndRetry(t, func(t *testing.T, args ...string) (string, string, int) { return dl(t, dir, args...) })
}

func TestPostgresDivergeAndRetry(t *testing.T) {
	dsn, dir := pgtest.NewDB(t), t.TempDir()
	runs := filepath.Join(dir, "runs")
	divergeAndRetry(t, func(t *testing.T, args ...string) (string, string, int) { return dlDB(t, dir, dsn, runs, args...) })
}
