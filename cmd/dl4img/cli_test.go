package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/internal/pgtest"
	"github.com/dl4img/dl4img/store"
)

// exe is the dl4img binary under test, built once by TestMain.
var exe string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dl4img-cli-test")
	if err != nil {
		panic(err)
	}
	exe = filepath.Join(dir, "dl4img")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build dl4img:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// dl runs the binary in dir with a database and workdir there.
func dl(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command(dir, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DL4IMG_DB="+filepath.Join(dir, "dl4img.db"), "DL4IMG_WORKDIR="+filepath.Join(dir, "runs"),
		"DL4IMG_BACKEND=go")
	return cmd
}

func TestHelp(t *testing.T) {
	out, _, code := dl(t, t.TempDir(), "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"submit", "run", "worker", "jobs", "runs", "kinds", "--db", "--workdir", "--quiet"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	out, _, _ = dl(t, t.TempDir(), "kinds")
	for _, want := range []string{"selftest", "train_dir", "steps_per_epoch", "checkpoint_every", "preset demo", "arith-ctc —"} {
		if !strings.Contains(out, want) {
			t.Errorf("kinds lacks %q:\n%s", want, out)
		}
	}
	// Named kinds only.
	out, _, code = dl(t, t.TempDir(), "kinds", "arith-ctc", "selftest")
	if code != 0 || !strings.HasPrefix(out, "arith-ctc —") || !strings.Contains(out, "\nselftest —") || strings.Contains(out, "segment —") {
		t.Errorf("kinds arith-ctc selftest: exit %d\n%s", code, out)
	}
}

func TestBadInputIsOneLineAndExit2(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{epochs: 3"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a database, just text"), 0o644)
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644)
	newer := filepath.Join(dir, "newer.db")
	sdb, err := sql.Open("sqlite3", newer)
	if err != nil {
		t.Fatal(err)
	}
	sdb.Exec("CREATE TABLE x(a); PRAGMA user_version = 99")
	sdb.Close()
	// A job that exists before the bad commands must survive them.
	id, _, code := dl(t, dir, "submit", "selftest")
	if code != 0 {
		t.Fatalf("submit: %d", code)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--nope", "jobs", "list"}, "flag provided but not defined"},
		{[]string{"submit", "nosuchkind"}, `unknown job kind "nosuchkind"`},
		{[]string{"kinds", "selftest", "nosuch"}, `unknown job kind "nosuch"`},
		{[]string{"submit"}, "want exactly one job KIND"},
		{[]string{"submit", "selftest", "--set", "epochs=many"}, `parameter epochs: want int, got "many"`},
		{[]string{"submit", "selftest", "--set", "epoch=3"}, `unknown parameter "epoch" for kind selftest`},
		{[]string{"submit", "selftest", "--set", "preset=huge"}, `no preset "huge"`},
		{[]string{"submit", "selftest", "--config", "bad.json"}, "bad.json: config is not a JSON object"},
		{[]string{"submit", "selftest", "--config", "missing.json"}, "missing.json"},
		{[]string{"run", "selftest", "--set", "batch_size=-1"}, "parameter batch_size"},
		{[]string{"--db", filepath.Join(dir, "no", "such", "dir", "x.db"), "jobs", "list"}, "does not exist"},
		{[]string{"--db", filepath.Join(dir, "notes.txt"), "jobs", "list"}, "not a SQLite database"},
		{[]string{"--db", newer, "jobs", "list"}, "schema version 99"},
		{[]string{"--workdir", filepath.Join(dir, "afile", "runs"), "submit", "selftest"}, "workdir"},
		{[]string{"worker", "--backend", "tpu"}, `unknown backend "tpu"`},
		{[]string{"worker", "--backend", "xla:cuda", "--drain"}, "no XLA CUDA PJRT plugin"},
		{[]string{"jobs", "show", "999"}, "job 999: not found"},
		{[]string{"jobs", "show", "abc"}, `job ID "abc"`},
		{[]string{"runs", "compare"}, "want at least 1 job ID"},
		{[]string{"serve", "--addr", "0.0.0.0:0"}, "give --token too"},
		{[]string{"serve", "--addr", "nonsense"}, `--addr "nonsense"`},
		{[]string{"--db", filepath.Join(dir, "none.db"), "serve"}, "none.db"},
		{[]string{"--db", newer, "serve"}, "schema version 99"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			if strings.Contains(strings.Join(c.args, " "), "xla:cuda") && os.Getenv("PJRT_PLUGIN_LIBRARY_PATH") != "" {
				t.Skip("a CUDA plugin is configured here")
			}
			out, errOut, code := dl(t, dir, c.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "goroutine") {
				t.Fatalf("stderr %q: want one line containing %q", errOut, c.want)
			}
		})
	}
	out, _, code := dl(t, dir, "jobs", "list")
	if code != 0 || !strings.Contains(out, strings.TrimSpace(id)+"  ") {
		t.Fatalf("the earlier job is gone after bad commands (exit %d):\n%s", code, out)
	}
}

// TestMissingOneDNN: without libdnnl a command that needs the engine stops
// with one line naming the package to install; the others still work.
func TestMissingOneDNN(t *testing.T) {
	if engine.Name != "go+onednn" {
		t.Skip("built without oneDNN")
	}
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		cmd := command(dir, args...)
		cmd.Env = append(cmd.Env, "DL4IMG_DNNL_LIBRARY=libdl4img-missing.so.2")
		var e bytes.Buffer
		cmd.Stderr = &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return e.String(), ee.ExitCode()
		}
		return e.String(), 0
	}
	errOut, code := run("bench", "captcha-cnn", "--steps", "1")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "apt-get install libdnnl2") {
		t.Errorf("bench without libdnnl: exit %d, stderr %q; want 2 and one line naming libdnnl2", code, errOut)
	}
	if errOut, code := run("jobs", "list"); code != 0 {
		t.Errorf("jobs list without libdnnl: exit %d, %s", code, errOut)
	}
}

func TestRunSelftestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := dl(t, dir, "run", "selftest", "--name", "small", "--set", "preset=quick")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	m := regexp.MustCompile(`submission: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no submission path in %q", out)
	}
	sub, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(sub)), "\n"); lines[0] != "id,label" || len(lines) != 251 {
		t.Fatalf("submission has %d lines, header %q", len(lines), lines[0])
	}
	// A second run with other params, then the history commands.
	if _, errOut, code := dl(t, dir, "run", "selftest", "--set", "preset=quick", "--set", "hidden=8", "--quiet"); code != 0 {
		t.Fatalf("second run: %d %s", code, errOut)
	}
	out, _, code = dl(t, dir, "jobs", "show", "1", "--json")
	if code != 0 {
		t.Fatal(code)
	}
	var v jobView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Job.State != store.Succeeded || len(v.Tasks) != 4 || v.Job.Name != "small" {
		t.Fatalf("job view: %+v", v.Job)
	}
	acc := -1.0
	for _, m := range v.Metrics {
		if m.Task == "evaluate" && m.Name == "test_acc" {
			acc = float64(m.Last)
		}
	}
	if acc < 0.8 {
		t.Fatalf("selftest test accuracy %v: the model did not learn", acc)
	}
	for _, task := range v.Tasks {
		if task.Name == "train" && task.Backend != engine.Name {
			t.Fatalf("backend recorded %q", task.Backend)
		}
	}
	out, _, code = dl(t, dir, "runs", "compare", "1", "2")
	if code != 0 || !regexp.MustCompile(`hidden\s+\*\s+32\s+8`).MatchString(out) || !strings.Contains(out, "train/val_acc") {
		t.Fatalf("compare (exit %d):\n%s", code, out)
	}
	if regexp.MustCompile(`epochs\s+\*`).MatchString(out) {
		t.Fatalf("equal params marked as different:\n%s", out)
	}
	out, _, code = dl(t, dir, "runs", "compare", "1", "2", "--csv")
	if code != 0 || !strings.Contains(out, "param,hidden,true,32,8") {
		t.Fatalf("compare --csv:\n%s", out)
	}
	png1 := filepath.Join(dir, "curves.png")
	out, _, code = dl(t, dir, "runs", "plot", "1", "2", "-o", png1)
	if code != 0 {
		t.Fatalf("plot exit %d", code)
	}
	f, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 800 {
		t.Fatalf("plot png: %v %v", err, img)
	}
}

// openStore opens the test's database from the test process.
func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(dir, "dl4img.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func task(t *testing.T, db *store.DB, job int64, name string) store.Task {
	t.Helper()
	ts, err := db.Tasks(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no task %s", name)
	return store.Task{}
}

// longJob submits a selftest long enough to be interrupted mid-training.
func longJob(t *testing.T, dir string) int64 {
	t.Helper()
	out, errOut, code := dl(t, dir, "submit", "selftest", "--set", "epochs=4", "--set", "steps_per_epoch=2500", "--set", "checkpoint_every=100")
	if code != 0 {
		t.Fatalf("submit: %d %s", code, errOut)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("submit printed %q", out)
	}
	return id
}

func waitCheckpoint(t *testing.T, db *store.DB, taskID int64, step int, cmd *exec.Cmd, errBuf *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, ok, err := db.LatestCheckpoint(context.Background(), taskID)
		if err != nil {
			t.Fatal(err)
		}
		if ok && c.Step >= step {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoint at step %d in time; worker said:\n%s", step, errBuf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var resumeRE = regexp.MustCompile(`resuming from checkpoint at step (\d+)`)

// finishWithNewWorker runs a second worker and returns the step it resumed from.
func finishWithNewWorker(t *testing.T, dir string, job int64) int {
	t.Helper()
	_, errOut, code := dl(t, dir, "worker", "--drain", "--lease", "2s")
	if code != 0 {
		t.Fatalf("second worker exit %d:\n%s", code, errOut)
	}
	m := resumeRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("second worker did not resume:\n%s", errOut)
	}
	step, _ := strconv.Atoi(m[1])
	return step
}

func TestCrashResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	job := longJob(t, dir)
	db := openStore(t, dir)
	cmd := command(dir, "worker", "--drain", "--lease", "2s")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	train := task(t, db, job, "train")
	waitCheckpoint(t, db, train.ID, 300, cmd, &errBuf)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	gen := task(t, db, job, "generate")
	if gen.State != store.Succeeded {
		t.Fatalf("generate %s", gen.State)
	}
	if s := task(t, db, job, "train").State; s != store.Running {
		t.Fatalf("train after SIGKILL: %s (the dead worker still holds its lease)", s)
	}

	step := finishWithNewWorker(t, dir, job)
	if step < 300 {
		t.Fatalf("resumed from step %d, want >= 300", step)
	}
	j, _ := db.Job(context.Background(), job)
	if j.State != store.Succeeded {
		t.Fatalf("job %s", j.State)
	}
	train = task(t, db, job, "train")
	if train.Attempt != 2 {
		t.Fatalf("train attempt %d, want 2", train.Attempt)
	}
	if g := task(t, db, job, "generate"); g.Attempt != 1 || g.FinishedAt != gen.FinishedAt {
		t.Fatalf("generate was re-run: %+v", g)
	}
	cks, _ := db.Checkpoints(context.Background(), train.ID)
	seen := map[int]bool{}
	for _, c := range cks {
		if seen[c.Step] {
			t.Fatalf("checkpoint step %d saved twice: training restarted instead of resuming", c.Step)
		}
		seen[c.Step] = true
	}
	if !seen[10000] {
		t.Fatalf("no final checkpoint at step 10000: %v", cks)
	}
}

func TestSignalsStopAtCheckpointAndResume(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			job := longJob(t, dir)
			db := openStore(t, dir)
			cmd := command(dir, "worker", "--drain")
			var errBuf bytes.Buffer
			cmd.Stderr = &errBuf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			train := task(t, db, job, "train")
			waitCheckpoint(t, db, train.ID, 200, cmd, &errBuf)
			cmd.Process.Signal(c.sig)
			err := cmd.Wait()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != c.code {
				t.Fatalf("worker exit %v, want %d\n%s", err, c.code, errBuf.String())
			}
			if strings.Contains(errBuf.String(), "goroutine") {
				t.Fatalf("panic trace:\n%s", errBuf.String())
			}
			tr := task(t, db, job, "train")
			if tr.State != store.Queued || tr.Attempt != 0 {
				t.Fatalf("train after %s: %s attempt %d", c.sig, tr.State, tr.Attempt)
			}
			last, _, _ := db.LatestCheckpoint(context.Background(), tr.ID)
			if last.Step%100 == 0 {
				t.Logf("interrupted exactly at a periodic checkpoint (step %d)", last.Step)
			}
			step := finishWithNewWorker(t, dir, job)
			if step != last.Step {
				t.Fatalf("resumed from %d, want the interruption checkpoint %d", step, last.Step)
			}
			if tr := task(t, db, job, "train"); tr.State != store.Succeeded || tr.Attempt != 1 {
				t.Fatalf("train: %s attempt %d", tr.State, tr.Attempt)
			}
		})
	}
}

// The generators and single-purpose commands each make real files, and
// refuse bad arguments with exit 2.
func TestGeneratorsAndTools(t *testing.T) {
	dir := t.TempDir()
	count := func(pattern string) int {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		return len(m)
	}
	ok := []struct {
		args  []string
		check func() bool
	}{
		{[]string{"gen", "captcha", "--out", "cap", "-n", "6", "--mode", "arith", "--seed", "3"},
			func() bool {
				return count("cap/*.png") == 6 && countLines(t, filepath.Join(dir, "cap", "labels.txt")) == 6
			}},
		{[]string{"gen", "formula", "--out", "form", "-n", "2"},
			func() bool {
				return count("form/*.png") == 2 && countLines(t, filepath.Join(dir, "form", "boxes.csv")) >= 5
			}},
		{[]string{"formula", "extract", "--out", "strips", "form"},
			func() bool {
				return count("strips/*.png") == 2 && countLines(t, filepath.Join(dir, "strips", "boxes.csv")) >= 5
			}},
		{[]string{"gen", "cats-dogs", "--out", "cd", "-n", "3", "--test", "2"},
			func() bool { return count("cd/train/*.*") == 6 && count("cd/test/*.*") == 2 }},
		{[]string{"gen", "slide", "s.tif", "--width", "1024", "--height", "1024"},
			func() bool { return count("s.tif") == 1 && count("s_mask.tif") == 1 }},
		{[]string{"segment", "tile", "s.tif", "--out", "tiles", "--tile-size", "256", "--format", "png", "--mask", "s_mask.tif"},
			func() bool {
				return count("tiles/*.png") > 0 && countLines(t, filepath.Join(dir, "tiles", "manifest.csv")) == count("tiles/*.png")+1
			}},
	}
	for _, c := range ok {
		if _, errOut, code := dl(t, dir, c.args...); code != 0 || !c.check() {
			t.Fatalf("%v: exit %d, files wrong\n%s", c.args, code, errOut)
		}
	}
	for _, args := range [][]string{
		{"gen", "captcha", "--out", "x", "-n", "0"},
		{"gen", "captcha", "-n", "3"},
		{"gen", "slide"},
		{"segment", "tile", "missing.tif", "--out", "t2"},
		{"formula", "extract", "--out", "s2", "nothing-here"},
		{"bench", "resnet"},
	} {
		if _, errOut, code := dl(t, dir, args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, errOut)
		}
	}
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%v", err)
		return -1
	}
	return strings.Count(string(b), "\n")
}

// backend-check against the committed Go-backend reference passes here (the
// reference is current), and a reference that disagrees fails with exit 1
// naming the net; bad references are usage errors.
func TestBackendCheck(t *testing.T) {
	dir := t.TempDir()
	ref, err := filepath.Abs("../../testdata/gpu/check-go.json")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := dl(t, dir, "backend-check", "--backend", "go", "--ref", ref, "--out", "now.json", "crnn", "transfer")
	if code != 0 || strings.Count(out, " ok") != 2 {
		t.Fatalf("against the committed reference: exit %d\n%s%s", code, out, errOut)
	}
	var res []map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "now.json"))
	if err := json.Unmarshal(b, &res); err != nil || len(res) != 2 {
		t.Fatalf("now.json: %v, %d results", err, len(res))
	}
	res[0]["loss"] = res[0]["loss"].(float64) * 1.01
	b, _ = json.Marshal(res)
	os.WriteFile(filepath.Join(dir, "off.json"), b, 0o644)
	out, errOut, code = dl(t, dir, "backend-check", "--backend", "go", "--ref", "off.json", "crnn", "transfer")
	if code != 1 || !strings.Contains(out, "crnn") || !strings.Contains(out, "DIFFERS") || !strings.Contains(errOut, "on crnn") {
		t.Fatalf("against a wrong reference: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"backend-check", "--ref", "missing.json", "crnn"},
		{"backend-check", "--ref", "off.json", "fcn"},
		{"backend-check", "resnet"},
	} {
		if _, errOut, code := dl(t, dir, args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, errOut)
		}
	}
}

// TestTransferFeaturesAndBenchONNX: features of a folder to CSV, a rerun
// served by the cache, ONNX benchmarks as JSON, and the bad input of both
// (one line, exit 2).
func TestTransferFeaturesAndBenchONNX(t *testing.T) {
	dir := t.TempDir()
	fixtures, err := filepath.Abs("../../testdata/transfer/backbones")
	if err != nil {
		t.Fatal(err)
	}
	resnet := filepath.Join(fixtures, "resnet-mini.onnx")
	if _, errOut, code := dl(t, dir, "-q", "gen", "cats-dogs", "--out", "cd", "-n", "3", "--test", "2"); code != 0 {
		t.Fatal(errOut)
	}
	readCSV := func(name string) [][]string {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			rows = append(rows, strings.Split(l, ","))
		}
		return rows
	}
	out, errOut, code := dl(t, dir, "transfer", "features", "--backbone", resnet, "--out", "f.csv", "cd")
	if code != 0 || !strings.Contains(out, "8 computed") {
		t.Fatalf("features: exit %d\n%s%s", code, out, errOut)
	}
	rows := readCSV("f.csv")
	if len(rows) != 9 || len(rows[0]) != 65 || rows[0][0] != "filename" || rows[0][64] != "f63" {
		t.Fatalf("f.csv: %d rows, header %v", len(rows), rows[0])
	}
	for i := 2; i < len(rows); i++ {
		if rows[i][0] <= rows[i-1][0] || len(rows[i]) != 65 {
			t.Errorf("row %d: %v after %v: want sorted, complete rows", i, rows[i][0], rows[i-1][0])
		}
	}
	// The same images again, named differently: all from the cache, same values.
	out, errOut, code = dl(t, dir, "transfer", "features", "--backbone", resnet, "--out", "g.csv", "cd/test")
	if code != 0 || !strings.Contains(out, "0 computed") {
		t.Fatalf("cached features: exit %d\n%s%s", code, out, errOut)
	}
	if g := readCSV("g.csv"); strings.Join(g[1], ",") != strings.Join(append([]string{"1.png"}, rows[1][1:]...), ",") {
		t.Errorf("cached row %v, want the values of %v", g[1][:3], rows[1][:3])
	}
	out, errOut, code = dl(t, dir, "bench", "onnx", "--batch", "2", "--steps", "1", "--json", resnet)
	var res struct {
		ImagesPerS    float64 `json:"images_per_s"`
		MedianBatchNS int64   `json:"median_batch_ns"`
		FirstBatchNS  int64   `json:"first_batch_ns"`
		PeakRSSBytes  int64   `json:"peak_rss_bytes"`
		Size          int     `json:"size"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.ImagesPerS <= 0 ||
		res.MedianBatchNS <= 0 || res.FirstBatchNS <= 0 || res.PeakRSSBytes <= 0 || res.Size != 224 {
		t.Fatalf("bench onnx: exit %d, %+v %v\n%s", code, res, err, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "cd", "test", "9.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corrupt.onnx"), []byte("\x08\x07garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"transfer", "features", "--backbone", resnet, "--out", "h.csv", "cd"}, "test/9.png: not an image"},
		{[]string{"transfer", "features", "--backbone", "corrupt.onnx", "--out", "h.csv", "cd/train"}, "corrupt.onnx"},
		{[]string{"transfer", "features", "--backbone", filepath.Join(fixtures, "inceptionv3-mini.onnx"), "--out", "h.csv", "cd/train"},
			"wants 299x299"},
		{[]string{"transfer", "features", "--backbone", resnet, "--out", "h.csv", "missing-dir"}, "missing-dir"},
		{[]string{"bench", "onnx", "--size", "32", filepath.Join(fixtures, "unsupported-op.onnx")}, `node "weird_det" (Det): op is not supported`},
		{[]string{"bench", "onnx", "corrupt.onnx"}, "corrupt.onnx"},
		{[]string{"bench", "onnx", "--batch", "0", resnet}, "--batch"},
		{[]string{"run", "transfer", "--set", "backbone=corrupt.onnx"}, "parameter backbone: corrupt.onnx"},
		{[]string{"run", "transfer", "--set", "backbone=" + filepath.Join(fixtures, "inceptionv3-mini.onnx")}, "wants 299x299"},
	} {
		_, errOut, code := dl(t, dir, append([]string{"-q"}, c.args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %q", c.args, code, errOut, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "h.csv")); err == nil {
		t.Errorf("a failed extraction left h.csv")
	}
}

// TestServe starts the real binary's web UI on a free port, reads the
// jobs API, and stops it with SIGINT (exit 0). The token never appears in
// its output.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	if _, _, code := dl(t, dir, "submit", "selftest", "--name", "queued-one"); code != 0 {
		t.Fatal("submit")
	}
	const token = "tok-that-must-not-be-logged"
	cmd := command(dir, "serve", "--addr", "127.0.0.1:0", "--token", token)
	var errBuf syncBuffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var url string
	for i := 0; i < 100 && url == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		if m := regexp.MustCompile(`http://[0-9.:]+/`).FindString(errBuf.String()); m != "" {
			url = m
		}
	}
	if url == "" {
		t.Fatalf("no address printed: %s", errBuf.String())
	}
	req, _ := http.NewRequest(http.MethodGet, url+"api/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Jobs []struct {
			Name, State string
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].Name != "queued-one" || list.Jobs[0].State != "queued" {
		t.Fatalf("api/jobs: %+v %v", list, err)
	}
	if resp, err := http.Get(url + "api/jobs"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: %v %v", resp, err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGINT: %v\n%s", err, errBuf.String())
	}
	if strings.Contains(errBuf.String(), token) {
		t.Fatalf("token in the output:\n%s", errBuf.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
