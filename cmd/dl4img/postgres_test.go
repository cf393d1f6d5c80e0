package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/pgtest"
	"github.com/dl4img/dl4img/store"
)

// dlDB runs the binary with --db and --workdir given by environment (as a
// password must travel), in dir.
func dlDB(t *testing.T, dir, dsn, workdir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := commandDB(dir, dsn, workdir, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	noPassword(t, o.String()+e.String())
	return o.String(), e.String(), code
}

func commandDB(dir, dsn, workdir string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DL4IMG_DB="+dsn, "DL4IMG_WORKDIR="+workdir, "DL4IMG_BACKEND=go")
	return cmd
}

func noPassword(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, pgtest.Password) {
		t.Fatalf("password printed:\n%s", s)
	}
}

// Bad databases, given by flag or by DL4IMG_DB: one line, exit 2, no
// password, no panic.
func TestPostgresBadInput(t *testing.T) {
	srv := pgtest.Shared(t)
	foreign, newer, full := pgtest.NewDB(t), pgtest.NewDB(t), pgtest.NewDB(t)
	pgtest.Exec(t, foreign, `CREATE TABLE customers (id int)`)
	pgtest.Exec(t, newer, `CREATE TABLE dl4img_schema (version int); INSERT INTO dl4img_schema VALUES (99)`)
	dir := t.TempDir()
	if _, errOut, code := dlDB(t, dir, full, "runs", "submit", "selftest"); code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	pw := pgtest.Password
	cases := []struct {
		name, dsn string
		args      []string
		want      string
	}{
		{"malformed", "postgres://postgres:" + pw + "@127.0.0.1:port/x", []string{"jobs", "list"}, "not a valid PostgreSQL URL"},
		{"unreachable", "postgres://postgres:" + pw + "@" + closed + "/x?sslmode=disable", []string{"jobs", "list"}, "connection refused"},
		{"wrong password", strings.Replace(srv.URL("postgres"), pw, pw+"x", 1), []string{"jobs", "list"}, "password authentication failed"},
		{"not dl4img's", foreign, []string{"jobs", "list"}, "not a dl4img database"},
		{"newer", newer, []string{"worker", "--drain"}, "schema version 99"},
		{"copy into jobs", full, []string{"db", "copy", "--from", full, "--to", full}, "destination already holds jobs"},
		{"copy from nothing", full, []string{"db", "copy", "--from", "missing.db", "--to", "x.db"}, "missing.db"},
	}
	for _, c := range cases {
		for _, how := range []string{"env", "flag"} {
			t.Run(c.name+" by "+how, func(t *testing.T) {
				args := c.args
				if how == "flag" {
					args = append([]string{"--db", c.dsn}, args...)
				}
				out, errOut, code := dlDB(t, dir, c.dsn, "runs", args...)
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				if code != 2 || len(lines) != 1 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "goroutine") {
					t.Fatalf("exit %d, stderr %q: want 2 and one line saying %q\nstdout: %s", code, errOut, c.want, out)
				}
			})
		}
	}
}

// A worker on one machine is killed mid-training; a worker that mounts the
// same folder at another path (a symlink) finishes the job from the last
// checkpoint; jobs show lists both workers.
func TestPostgresKillAndResumeElsewhere(t *testing.T) {
	dsn := pgtest.NewDB(t)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	os.MkdirAll(shared, 0o755)
	other := filepath.Join(dir, "mnt-other")
	if err := os.Symlink(shared, other); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := dlDB(t, dir, dsn, shared, "submit", "selftest", "--set", "epochs=2", "--set", "steps_per_epoch=1500", "--set", "checkpoint_every=100")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	job, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first := commandDB(dir, dsn, shared, "worker", "--drain", "--lease", "2s")
	var errBuf bytes.Buffer
	first.Stderr = &errBuf
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	train := task(t, db, job, "train")
	waitCheckpoint(t, db, train.ID, 300, first, &errBuf)
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	ck, _, _ := db.LatestCheckpoint(context.Background(), train.ID)
	if filepath.IsAbs(ck.Path) || !strings.HasPrefix(ck.Path, "job-") {
		t.Fatalf("checkpoint recorded as %q, want a path relative to the workdir root", ck.Path)
	}

	_, errOut, code = dlDB(t, dir, dsn, other, "worker", "--drain", "--lease", "2s")
	if code != 0 {
		t.Fatalf("second worker exit %d:\n%s", code, errOut)
	}
	m := resumeRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("second worker did not resume:\n%s", errOut)
	}
	if step, _ := strconv.Atoi(m[1]); step < 300 {
		t.Fatalf("resumed from step %d, want >= 300", step)
	}
	out, _, code = dlDB(t, dir, dsn, other, "jobs", "show", strconv.FormatInt(job, 10), "--json")
	if code != 0 {
		t.Fatal(code)
	}
	var v jobView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Job.State != store.Succeeded {
		t.Fatalf("job %s", v.Job.State)
	}
	host, _ := os.Hostname()
	pid := regexp.MustCompile(`^` + regexp.QuoteMeta(host) + `:(\d+)/0$`)
	for _, tk := range v.Tasks {
		if tk.Name != "train" {
			continue
		}
		ws := strings.Fields(tk.Workers)
		if len(ws) != 2 || !pid.MatchString(ws[0]) || !pid.MatchString(ws[1]) || ws[0] == ws[1] {
			t.Fatalf("train workers %q: want two host:pid/slot, different pids", tk.Workers)
		}
		if strconv.Itoa(first.Process.Pid) != pid.FindStringSubmatch(ws[0])[1] {
			t.Fatalf("first worker %s is not the killed pid %d", ws[0], first.Process.Pid)
		}
		out, _, _ = dlDB(t, dir, dsn, other, "jobs", "show", strconv.FormatInt(job, 10))
		if !strings.Contains(out, ws[0]+","+ws[1]) || !strings.Contains(out, other) {
			t.Fatalf("jobs show lacks the workers %s or the workdir %s:\n%s", tk.Workers, other, out)
		}
	}
	for _, a := range v.Artifacts {
		if filepath.IsAbs(a.Path) {
			t.Fatalf("artifact recorded as %q, want relative", a.Path)
		}
	}
}

// Every history command reads PostgreSQL, and db copy SQLite → PostgreSQL
// → SQLite keeps jobs show --json and runs compare --json identical.
func TestPostgresCopyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	lite := filepath.Join(dir, "a.db")
	runs := filepath.Join(dir, "runs")
	for _, sets := range [][]string{{"--set", "preset=quick"}, {"--set", "preset=quick", "--set", "hidden=8"}} {
		if _, errOut, code := dlDB(t, dir, lite, runs, append([]string{"run", "selftest", "-q"}, sets...)...); code != 0 {
			t.Fatalf("run: %s", errOut)
		}
	}
	// A cancelled job too, so other states and error texts travel.
	if _, errOut, code := dlDB(t, dir, lite, runs, "submit", "selftest"); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := dlDB(t, dir, lite, runs, "jobs", "cancel", "3"); code != 0 {
		t.Fatal(errOut)
	}
	// A diverged run: its NaN loss must survive both copies.
	if _, errOut, code := dlDB(t, dir, lite, runs, "run", "selftest", "-q", "--set", "preset=quick", "--set", "learning_rate=1e30"); code != 1 {
		t.Fatalf("diverged run: exit %d %s", code, errOut)
	}
	pg := pgtest.NewDB(t)
	back := filepath.Join(dir, "b.db")
	for _, c := range [][2]string{{lite, pg}, {pg, back}} {
		out, errOut, code := dlDB(t, dir, lite, runs, "db", "copy", "--from", c[0], "--to", c[1])
		if code != 0 || !strings.Contains(out, "copied") {
			t.Fatalf("db copy: exit %d\n%s%s", code, out, errOut)
		}
	}
	view := func(dsn string, args ...string) string {
		out, errOut, code := dlDB(t, dir, dsn, runs, args...)
		if code != 0 {
			t.Fatalf("%v on %s: exit %d %s", args, store.Redact(dsn), code, errOut)
		}
		return out
	}
	cmds := [][]string{{"runs", "compare", "--json", "1", "2", "3"}, {"jobs", "list"}}
	for _, id := range []string{"1", "2", "3", "4"} {
		cmds = append(cmds, []string{"jobs", "show", "--json", id}, []string{"jobs", "show", id})
	}
	for _, args := range cmds {
		want := view(lite, args...)
		for _, dsn := range []string{pg, back} {
			if got := view(dsn, args...); got != want {
				t.Fatalf("%v differs on %s:\n%s\nwant\n%s", args, store.Redact(dsn), got, want)
			}
		}
	}
	for _, dsn := range []string{pg, back} {
		if out := view(dsn, "jobs", "show", "4"); !regexp.MustCompile(`train\s+loss\s+NaN\s`).MatchString(out) {
			t.Fatalf("the NaN loss did not survive the copy to %s:\n%s", store.Redact(dsn), out)
		}
	}
	// The other commands that read a history work on PostgreSQL too.
	png := filepath.Join(dir, "curves.png")
	view(pg, "runs", "plot", "1", "2", "-o", png)
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	// segment predict looks the job up and resolves its directory under
	// --workdir (a selftest job has no segmentation model: bad input).
	_, errOut, code := dlDB(t, dir, pg, runs, "segment", "predict", "--model", "1", "--out", "p", "x.tif")
	if code != 2 || !strings.Contains(errOut, filepath.Join(runs, "job-1")) {
		t.Fatalf("segment predict --model 1: exit %d %s", code, errOut)
	}
}

// run, jobs cancel and jobs retry on PostgreSQL, as on SQLite.
func TestPostgresRunCancelRetry(t *testing.T) {
	dsn := pgtest.NewDB(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	out, errOut, code := dlDB(t, dir, dsn, runs, "run", "selftest", "--set", "preset=quick")
	if code != 0 || !strings.Contains(out, "submission: "+filepath.Join(runs, "job-1")) || !strings.Contains(errOut, "postgres://postgres:xxxxx@") {
		t.Fatalf("run: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := dlDB(t, dir, dsn, runs, "submit", "selftest"); code != 0 {
		t.Fatal(errOut)
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "cancel", "2"}, "cancel requested"},
		{[]string{"jobs", "retry", "2"}, "4 task(s) queued again"},
	} {
		if out, errOut, code := dlDB(t, dir, dsn, runs, step.args...); code != 0 || !strings.Contains(out, step.want) {
			t.Fatalf("%v: exit %d %s%s", step.args, code, out, errOut)
		}
	}
	if _, errOut, code := dlDB(t, dir, dsn, runs, "worker", "--drain", "--quiet"); code != 0 {
		t.Fatal(errOut)
	}
	if out, _, _ := dlDB(t, dir, dsn, runs, "jobs", "list"); strings.Count(out, "succeeded") != 2 {
		t.Fatalf("jobs list:\n%s", out)
	}
}

// A password given on the command line does not stay there: dl4img
// re-executes itself with it in the environment, so ps shows none.
func TestPasswordLeavesArgv(t *testing.T) {
	dsn := pgtest.NewDB(t)
	dir := t.TempDir()
	cmd := exec.Command(exe, "--db", dsn, "--workdir", filepath.Join(dir, "runs"), "worker")
	cmd.Env = append(os.Environ(), "DL4IMG_BACKEND=go")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	proc := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cmdline")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(proc)
		if err != nil {
			t.Fatal(err)
		}
		argv := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if strings.Contains(argv, "worker") && !strings.Contains(argv, pgtest.Password) {
			if strings.Contains(argv, "--db") {
				t.Fatalf("--db left in argv: %s", argv)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("password still in argv: %s", argv)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The worker runs with it: it claims a job submitted now.
	out, errOut, code := dlDB(t, dir, dsn, filepath.Join(dir, "runs"), "submit", "selftest", "--set", "preset=quick")
	if code != 0 {
		t.Fatal(errOut)
	}
	waitFor := time.Now().Add(30 * time.Second)
	for {
		out, _, _ = dlDB(t, dir, dsn, filepath.Join(dir, "runs"), "jobs", "list")
		if strings.Contains(out, "succeeded") {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatalf("the worker did not run the job:\n%s\n%s", out, errBuf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	noPassword(t, errBuf.String())
}

// The database goes away under a training worker: it keeps training while
// it retries, then exits 1 with one line; the checkpoints stay.
func TestPostgresGoneDuringWork(t *testing.T) {
	srv, dsn := pgtest.Private(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	job := func() int64 {
		out, errOut, code := dlDB(t, dir, dsn, runs, "submit", "selftest", "--set", "epochs=4", "--set", "steps_per_epoch=2500", "--set", "checkpoint_every=100")
		if code != 0 {
			t.Fatal(errOut)
		}
		id, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		return id
	}()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	cmd := commandDB(dir, dsn, runs, "worker", "--drain", "--lease", "3s", "--db-timeout", "3s")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	train := task(t, db, job, "train")
	waitCheckpoint(t, db, train.ID, 200, cmd, &errBuf)
	db.Close()
	srv.Kill()
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("worker still running a minute after the database went away:\n%s", errBuf.String())
	}
	ee, ok := err.(*exec.ExitError)
	lines := strings.Split(strings.TrimSpace(errBuf.String()), "\n")
	last := lines[len(lines)-1]
	if !ok || ee.ExitCode() != 1 || !strings.HasPrefix(last, "dl4img: database unreachable for 3s") || strings.Contains(errBuf.String(), "goroutine") {
		t.Fatalf("exit %v, last line %q; want 1 and one line saying the database is unreachable\n%s", err, last, errBuf.String())
	}
	noPassword(t, errBuf.String())
	cks, _ := filepath.Glob(filepath.Join(runs, "job-1", "train", "checkpoints", "checkpoint-*"))
	if len(cks) == 0 {
		t.Fatal("no checkpoint files left")
	}
}

// A sweep on PostgreSQL, its points run by two worker slots at once (the
// pruning decisions are taken one at a time under the sweep's row lock),
// then an ensemble of two of its kind's jobs.
func TestPostgresSweepAndEnsemble(t *testing.T) {
	dsn := pgtest.NewDB(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	out, errOut, code := dlDB(t, dir, dsn, runs, "sweep", "selftest", "--set", "preset=quick", "--set", "steps_per_epoch=300",
		"--set", "epochs=3", "--grid", "learning_rate=0.05,1e-7", "--grid", "hidden=8,32", "--prune", "asha", "--run", "--workers", "2")
	if code != 0 {
		t.Fatalf("sweep: exit %d\n%s%s", code, out, errOut)
	}
	r := showSweepJSON(t, dir, 1, dsn, runs)
	if len(r.Points) != 4 || r.BestJob == 0 {
		t.Fatalf("ranking %+v", r)
	}
	for _, p := range r.Points {
		good := string(p.Params["learning_rate"]) == "0.05"
		if p.State != store.Succeeded && p.State != store.Pruned || good && p.State != store.Succeeded ||
			p.State == store.Pruned && p.PrunedAt != 1 {
			t.Errorf("point %d (%s): %s pruned at %d", p.Point, p.Params["learning_rate"], p.State, p.PrunedAt)
		}
	}
	if !strings.Contains(out, "pruning asha") {
		t.Errorf("ranking:\n%s", out)
	}
	var jobs []string
	for _, extra := range [][]string{nil, {"--set", "dropout=0.2"}} {
		args := append(append([]string{"run", "-q"}, transferDemo...), extra...)
		if _, errOut, code := dlDB(t, dir, dsn, runs, args...); code != 0 {
			t.Fatalf("transfer: %s", errOut)
		}
		jobs = append(jobs, strconv.Itoa(5+len(jobs)))
	}
	out, errOut, code = dlDB(t, dir, dsn, runs, "ensemble", "--jobs", strings.Join(jobs, ","))
	if code != 0 || !strings.Contains(out, "submission: "+filepath.Join(runs, "job-7", "submission.csv")) {
		t.Fatalf("ensemble: exit %d\n%s%s", code, out, errOut)
	}
}
