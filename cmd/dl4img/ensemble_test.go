package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/store"
)

var submittedRE = regexp.MustCompile(`(?m)^job (\d+) \(`)

// runJob runs a job to the end and returns its id. (It reads the id from
// the log: a test process that opened the SQLite file more than once
// would lose its locks on it; see store.checkFile.)
func runJob(t *testing.T, dir string, args ...string) int64 {
	t.Helper()
	out, errOut, code := dl(t, dir, append([]string{"run"}, args...)...)
	m := submittedRE.FindStringSubmatch(errOut)
	if code != 0 || m == nil {
		t.Fatalf("run %v: exit %d\n%s%s", args, code, out, errOut)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// transferDemo is a small transfer job on generated cats and dogs; jobs
// with the same seed predict the same test images.
var transferDemo = []string{"transfer", "--set", "preset=demo", "--set", "synth_per_class=40", "--set", "synth_test=30",
	"--set", "cam_images=0"}

// Averaging two transfer jobs writes a valid Kaggle submission: one
// id,label row per test image, P(dog) clipped, the mean of the members'
// probabilities; its scores sit beside its members' in runs compare.
func TestEnsembleTransfer(t *testing.T) {
	dir := t.TempDir()
	a := runJob(t, dir, transferDemo...)
	b := runJob(t, dir, append(transferDemo, "--set", "dropout=0.2", "--set", "weight_decay=0.01,0.1")...)
	out, errOut, code := dl(t, dir, "ensemble", "--jobs", fmt.Sprintf("%d,%d", a, b), "--out", "final")
	if code != 0 {
		t.Fatalf("ensemble: exit %d\n%s%s", code, out, errOut)
	}
	sub := filepath.Join(dir, "final", "submission.csv")
	if !strings.Contains(out, "submission: "+sub) || !regexp.MustCompile(`submit/test_loss\s+\S+\s+\S+\s+\S+`).MatchString(out) {
		t.Fatalf("output:\n%s", out)
	}
	rows := readCSV(t, sub)
	ents, _ := os.ReadDir(filepath.Join(dir, "runs", fmt.Sprintf("job-%d", a), "data", "test"))
	var ids []string
	for _, e := range ents {
		ids = append(ids, strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
	}
	if len(rows) != 31 || len(ids) != 30 || rows[0][0] != "id" || rows[0][1] != "label" {
		t.Fatalf("submission: %d rows, header %v; %d test images", len(rows), rows[0], len(ids))
	}
	var got []string
	for _, r := range rows[1:] {
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil || v < 0.005 || v > 0.995 {
			t.Fatalf("row %v: not a clipped probability", r)
		}
		got = append(got, r[0])
	}
	sort.Strings(got)
	sort.Strings(ids)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("submission ids %v, test images %v", got, ids)
	}
	avg := readCSV(t, filepath.Join(dir, "final", "probabilities.csv"))
	pa := readCSV(t, filepath.Join(dir, "runs", fmt.Sprintf("job-%d", a), "probabilities.csv"))
	pb := readCSV(t, filepath.Join(dir, "runs", fmt.Sprintf("job-%d", b), "probabilities.csv"))
	for i := 1; i < len(avg); i++ {
		for k := 1; k < len(avg[i]); k++ {
			x, _ := strconv.ParseFloat(avg[i][k], 64)
			y, _ := strconv.ParseFloat(pa[i][k], 64)
			z, _ := strconv.ParseFloat(pb[i][k], 64)
			if math.Abs(x-(y+z)/2) > 1e-12 {
				t.Fatalf("probabilities row %d: %v is not the mean of %v and %v", i, x, y, z)
			}
		}
	}
	j, err := openStore(t, dir).Job(t.Context(), b+1)
	if err != nil || j.Kind != "ensemble" || j.State != store.Succeeded {
		t.Fatalf("ensemble job: %+v %v", j, err)
	}
	out, _, _ = dl(t, dir, "runs", "compare", fmt.Sprint(b+1), fmt.Sprint(a), fmt.Sprint(b))
	if !regexp.MustCompile(`submit/test_acc\s+[\d.]+ / [\d.]+\s+[\d.]+ / [\d.]+\s+[\d.]+ / [\d.]+`).MatchString(out) {
		t.Fatalf("runs compare does not line the scores up:\n%s", out)
	}
}

// Two segment jobs: their probability maps averaged into one, scored and
// submitted like a single model's.
func TestEnsembleSegment(t *testing.T) {
	dir := t.TempDir()
	a := runJob(t, dir, "segment", "--set", "preset=quick")
	b := runJob(t, dir, "segment", "--set", "preset=quick", "--set", "learning_rate=0.01")
	out, errOut, code := dl(t, dir, "ensemble", "--jobs", fmt.Sprintf("%d,%d", a, b))
	if code != 0 {
		t.Fatalf("ensemble: exit %d\n%s%s", code, out, errOut)
	}
	rows := readCSV(t, filepath.Join(dir, "runs", fmt.Sprintf("job-%d", b+1), "submission.csv"))
	if len(rows) != 2 || rows[0][0] != "slide" || rows[1][2] == "" {
		t.Fatalf("submission %v", rows)
	}
	if _, err := os.Stat(rows[1][3]); err != nil {
		t.Fatalf("averaged mask: %v", err)
	}
	if !regexp.MustCompile(`predict/test_dice\s+[\d.]+\s+[\d.]+\s+[\d.]+`).MatchString(out) {
		t.Fatalf("output:\n%s", out)
	}
}

// Bad ensembles are one line and exit 2, and create nothing.
func TestEnsembleBadInput(t *testing.T) {
	dir := t.TempDir()
	a := runJob(t, dir, transferDemo...)
	b := runJob(t, dir, append(transferDemo, "--set", "dropout=0.2")...)
	other := runJob(t, dir, append(transferDemo, "--set", "seed=2")...) // other generated test images
	seg := runJob(t, dir, "segment", "--set", "preset=quick")
	st1 := runJob(t, dir, "selftest", "--set", "preset=quick")
	st2 := runJob(t, dir, "selftest", "--set", "preset=quick")
	shared1 := runJob(t, dir, append(transferDemo, "--set", "out=shared")...)
	shared2 := runJob(t, dir, append(transferDemo, "--set", "out=shared", "--set", "dropout=0.3")...)
	qout, _, _ := dl(t, dir, "submit", "transfer", "--set", "preset=demo")
	queued := strings.TrimSpace(qout)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "give the members"},
		{[]string{"--jobs", fmt.Sprint(a), "--sweep", "1"}, "give the members"},
		{[]string{"--jobs", fmt.Sprint(a)}, "at least 2 finished jobs, got 1"},
		{[]string{"--jobs", fmt.Sprintf("%d,x", a)}, `"x" is not a job ID`},
		{[]string{"--jobs", fmt.Sprintf("%d,99", a)}, "job 99: not found"},
		{[]string{"--jobs", fmt.Sprintf("%d,%d", a, a)}, fmt.Sprintf("job %d is given twice", a)},
		{[]string{"--jobs", fmt.Sprintf("%d,%s", a, queued)}, fmt.Sprintf("job %s is queued: an ensemble combines finished", queued)},
		{[]string{"--jobs", fmt.Sprintf("%d,%d", a, seg)}, fmt.Sprintf("jobs %d (transfer) and %d (segment) are of different kinds", a, seg)},
		{[]string{"--jobs", fmt.Sprintf("%d,%d,%d", a, b, other)}, fmt.Sprintf("jobs %d and %d predicted different test sets", a, other)},
		{[]string{"--jobs", fmt.Sprintf("%d,%d", st1, st2)}, "jobs of kind selftest cannot be ensembled"},
		{[]string{"--jobs", fmt.Sprintf("%d,%d", shared1, shared2)}, fmt.Sprintf("jobs %d and %d wrote their predictions to the same", shared1, shared2)},
		{[]string{"--sweep", "5"}, "sweep 5: not found"},
	}
	before, _, _ := dl(t, dir, "jobs", "list")
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := dl(t, dir, append([]string{"ensemble"}, c.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr %q: want one line containing %q", errOut, c.want)
			}
		})
	}
	if after, _, _ := dl(t, dir, "jobs", "list"); after != before {
		t.Fatalf("bad ensembles changed the history:\n%s\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs", fmt.Sprintf("job-%d", shared2+2))); !os.IsNotExist(err) {
		t.Fatalf("a job directory was written: %v", err)
	}
}
