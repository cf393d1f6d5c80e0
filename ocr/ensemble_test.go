package ocr

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
)

// member writes a finished reader's predictions.json: its readings of a
// shared labeled test set, and returns it as an ensemble member.
func member(t *testing.T, job int64, test []Sample, texts []string, confs []float64) ensemble.Member {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("job-%d", job))
	pf := predFile{Step: 100, Labeled: true, Samples: test}
	for i, s := range texts {
		pf.Reads = append(pf.Reads, reader.Reading{Text: s, Confidence: confs[i], Loss: 1})
	}
	if err := tasks.WriteJSONFile(predsFile(dir), &pf); err != nil {
		t.Fatal(err)
	}
	return ensemble.Member{Job: job, Dir: dir, Params: json.RawMessage(`{}`)}
}

// Three readers that are each wrong somewhere, voted: right everywhere,
// and scored by the evaluate task's code.
func TestReaderEnsembleVotes(t *testing.T) {
	imgs := t.TempDir()
	var test []Sample
	for i, l := range []string{"12", "34", "56", "78"} {
		p := filepath.Join(imgs, fmt.Sprintf("%d.png", i))
		os.WriteFile(p, []byte("image "+l), 0o644)
		test = append(test, Sample{Line: i + 1, Name: filepath.Base(p), Path: p, Text: l})
	}
	ms := []ensemble.Member{
		member(t, 3, test, []string{"12", "34", "00", "78"}, []float64{0.9, 0.8, 0.2, 0.9}),
		member(t, 5, test, []string{"12", "99", "56", "11"}, []float64{0.7, 0.3, 0.6, 0.4}),
		member(t, 7, test, []string{"00", "34", "56", "22"}, []float64{0.2, 0.7, 0.8, 0.5}),
	}
	k, err := ensemble.Lookup(KindCaptchaCTC)
	if err != nil || k.ScoreTask() != "evaluate" {
		t.Fatalf("captcha-ctc ensemble: %v", err)
	}
	if err := ensemble.CheckTestSets(k, ms); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := k.Combine(context.Background(), ms, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scores["test_seq_acc"] != 1 || res.Scores["test_acc"] != 1 || res.Scores["test_n"] != 4 {
		t.Fatalf("ensemble scores %v", res.Scores)
	}
	if _, ok := res.Scores["test_loss"]; ok {
		t.Error("a vote has no loss to report")
	}
	for i, want := range []float64{0.75, 0.5, 0.5} {
		if res.Members[i]["test_seq_acc"] != want || res.Members[i]["test_loss"] != 1 {
			t.Errorf("member %d scores %v, want seq_acc %v", i, res.Members[i], want)
		}
	}
	txt, _ := os.ReadFile(filepath.Join(out, ResultFile))
	if string(txt) != "12 12\n34 34\n56 56\n78 78\n" {
		t.Errorf("result.txt:\n%s", txt)
	}
	csv, _ := os.ReadFile(filepath.Join(out, PredictionsFile))
	if !strings.Contains(string(csv), "3.png,78,78,0.300000") { // 0.9 of 3 readers
		t.Errorf("predictions.csv:\n%s", csv)
	}
	if res.Files[0].Role != "submission" || res.Files[0].Path != filepath.Join(out, ResultFile) {
		t.Errorf("files %v", res.Files)
	}

	// A reader of other images, or of other labels, is refused.
	other := append([]Sample(nil), test...)
	other[2].Text = "57"
	bad := member(t, 9, other, []string{"12", "34", "56", "78"}, []float64{1, 1, 1, 1})
	if err := ensemble.CheckTestSets(k, append(ms, bad)); err == nil || !strings.Contains(err.Error(), "jobs 3 and 9 predicted different test sets") {
		t.Fatalf("other labels: %v", err)
	}
	os.WriteFile(test[1].Path, []byte("another image"), 0o644)
	if err := ensemble.CheckTestSets(k, ms[:2]); err != nil {
		t.Fatalf("both read the changed file: %v", err)
	}
	if _, err := k.TestSet(ensemble.Member{Job: 4, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "predict task") {
		t.Fatalf("a job without predictions: %v", err)
	}
}
