package ocr

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// smallSets are the parameters of a tiny 2-digit captcha job.
var smallSets = []string{"width=64", "height=32", "charset=0123456789", "length=2", "filters=4", "dense=8", "rnn_hidden=8",
	"train_size=16", "val_size=8", "test_size=8", "batch_size=8", "epochs=1", "steps_per_epoch=1"}

// makeDir generates n 64×32 2-digit captchas in competition layout.
func makeDir(t *testing.T, n int) string {
	t.Helper()
	cfg := BookConfig()
	cfg.Width, cfg.Height, cfg.Charset, cfg.MinLen, cfg.MaxLen = 64, 32, Digits, 2, 2
	cfg.FontSizes = []int{20}
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := GenerateDataset(context.Background(), g, dir, n, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// corrupt rewrites line (1-based) of dir/labels.txt.
func corrupt(t *testing.T, dir string, line int, text string) {
	t.Helper()
	path := filepath.Join(dir, LabelsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	lines[line-1] = text
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadLabelsFailOrSkip: bad labels.txt lines fail the data task with
// "labels.txt:LINE: ..." naming the first, or with skip_bad are dropped and
// counted in skipped_bad.
func TestBadLabelsFailOrSkip(t *testing.T) {
	train := makeDir(t, 12)
	corrupt(t, train, 3, "7X")                         // unknown character
	os.Remove(filepath.Join(train, "5.png"))           // line 6: missing image
	writePNG(t, filepath.Join(train, "8.png"), 50, 20) // line 9: wrong size
	test := makeDir(t, 6)
	writePNG(t, filepath.Join(test, "2.png"), 10, 10) // line 3 of the test set

	for _, kind := range []string{KindCaptchaCTC, KindCaptchaCNN} {
		t.Run(kind, func(t *testing.T) {
			sets := append(append([]string{}, smallSets...), "train_dir="+train, "test_dir="+test)
			p := resolve(t, kind, sets...)
			env := taskstest.New(t, "data")
			err := dataTask(context.Background(), env, taskRaw(t, kind, p))
			if err == nil {
				t.Fatal("bad lines: want an error")
			}
			if !strings.HasPrefix(err.Error(), "train_dir: labels.txt:3: ") || !strings.Contains(err.Error(), "labels.txt:6") ||
				!strings.Contains(err.Error(), "skip_bad=true") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming labels.txt:3 first, then labels.txt:6", err)
			}

			p = resolve(t, kind, append(sets, "skip_bad=true")...)
			env = taskstest.New(t, "data")
			if err := dataTask(context.Background(), env, taskRaw(t, kind, p)); err != nil {
				t.Fatal(err)
			}
			if got := last(t, env, "skipped_bad"); got != 4 {
				t.Errorf("skipped_bad = %g, want 4 (3 train lines + 1 test image)", got)
			}
			s, err := readSets(env)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(s.Train) + len(s.Val); n != 9 {
				t.Errorf("%d usable training samples, want 9", n)
			}
			// The bad test image keeps its place, as an empty sample.
			if len(s.Test) != 6 || s.Test[2].Path != "" || s.Test[2].Name != "2.png" || s.Test[3].Name != "3.png" {
				t.Errorf("test set %+v: want 6 samples with 2.png as a placeholder", s.Test)
			}
		})
	}
}

// TestCNNRejectsShortLabels: captcha-cnn has exactly length heads.
func TestCNNRejectsShortLabels(t *testing.T) {
	train := makeDir(t, 6)
	corrupt(t, train, 2, "7")
	p := resolve(t, KindCaptchaCNN, append(append([]string{}, smallSets...), "train_dir="+train)...)
	err := dataTask(context.Background(), taskstest.New(t, "data"), taskRaw(t, KindCaptchaCNN, p))
	if err == nil || !strings.Contains(err.Error(), "labels.txt:2: ") {
		t.Fatalf("error %v: want labels.txt:2", err)
	}
}

// TestValidateAtSubmit: parameters the model cannot use are rejected when
// the job is resolved, naming the parameter.
func TestValidateAtSubmit(t *testing.T) {
	dir := makeDir(t, 2)
	cases := []struct {
		kind string
		sets []string
		want string
	}{
		{KindCaptchaCTC, []string{"width=40", "length=4"}, "width 40 gives 3 time steps"},
		{KindCaptchaCNN, []string{"width=12"}, "too small"},
		{KindCaptchaCTC, []string{"charset=AAB"}, "appears twice"},
		{KindCaptchaCTC, []string{"charset=A B"}, "white space"},
		{KindArithCTC, []string{"charset=0123"}, "arith-ctc reads"},
		{KindArithCTC, []string{"length=5"}, "at most 7"},
		{KindCaptchaCTC, []string{"data=disk"}, "parameter data"},
		{KindCaptchaCTC, []string{"train_dir=" + dir}, "is 64x32 but the model reads 170x80"},
		{KindCaptchaCTC, []string{"test_dir=/nonexistent/dir"}, "parameter test_dir"},
		{KindCaptchaCNN, []string{"min_length=2"}, "only captcha-ctc"},
		{KindCaptchaCTC, []string{"train_size=10"}, "train_size"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.sets, ","), func(t *testing.T) {
			k, _ := tasks.Default.Job(c.kind)
			_, err := k.Resolve(nil, c.sets)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	// The defaults and the demo presets are valid.
	for _, kind := range []string{KindCaptchaCNN, KindCaptchaCTC, KindArithCTC} {
		k, _ := tasks.Default.Job(kind)
		for _, sets := range [][]string{nil, {"preset=demo"}} {
			if _, err := k.Resolve(nil, sets); err != nil {
				t.Errorf("%s %v: %v", kind, sets, err)
			}
		}
	}
}

// TestTaskParamsRoundTrip: tasks get the job's params and kind back.
func TestTaskParamsRoundTrip(t *testing.T) {
	p := resolve(t, KindArithCTC, "preset=demo", "skip_bad=true")
	got, err := decodeTask(taskRaw(t, KindArithCTC, p))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(got)
	if _, crnn := got.Net().(reader.CRNN); string(a) != string(b) || got.kind != KindArithCTC || !crnn {
		t.Errorf("round trip:\n%s\n%s", a, b)
	}
	if _, err := decodeTask([]byte(`{"kind":"nope"}`)); err == nil {
		t.Error("unknown kind: want an error")
	}
}

// TestUnlabeledTestDirWithBadImage: an unlabeled test_dir is predicted in
// numeric order with a skipped bad image kept as a "not read" line, and the
// evaluation falls back to the validation set.
func TestUnlabeledTestDirWithBadImage(t *testing.T) {
	test := makeDir(t, 5)
	os.Remove(filepath.Join(test, LabelsFile))
	writePNG(t, filepath.Join(test, "1.png"), 10, 10)
	p := resolve(t, KindCaptchaCTC, append(append([]string{}, smallSets...), "test_dir="+test, "skip_bad=true")...)
	envs := runTasks(t, KindCaptchaCTC, p)
	data, err := os.ReadFile(envs["predict"].ArtifactPath("submission"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 || lines[1] != NotComputableValue+" "+NotComputableValue {
		t.Errorf("result.txt %q: want 5 lines, the second not read", lines)
	}
	csv, err := os.ReadFile(envs["predict"].ArtifactPath("predictions"))
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Split(string(csv), "\n"); len(rows) < 3 || !strings.HasPrefix(rows[1], "0.png,") || !strings.HasPrefix(rows[2], "1.png,,") {
		t.Errorf("predictions.csv rows %q", rows)
	}
	if n := last(t, envs["evaluate"], "test_n"); n != float64(p.ValSize) {
		t.Errorf("evaluated %g samples, want the %d validation samples", n, p.ValSize)
	}
	if got := last(t, envs["data"], "skipped_bad"); got != 1 {
		t.Errorf("skipped_bad = %g, want 1", got)
	}
}
