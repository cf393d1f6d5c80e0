package formula

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/ocr/expr"
)

// formulaMember writes what a finished formula job leaves for an
// ensemble: the test images, the test manifest and predictions.csv of
// its readers (texts[r][i]: reader r's reading of image i).
func formulaMember(t *testing.T, job int64, labels []string, texts [][]string) ensemble.Member {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("job-%d", job))
	var manifest, preds strings.Builder
	preds.WriteString("filename,text,value,lines")
	for r := range texts {
		fmt.Fprintf(&preds, ",reader%d,conf%d", r+1, r+1)
	}
	preds.WriteString("\n")
	os.MkdirAll(filepath.Join(dir, "images", "test"), 0o755)
	os.MkdirAll(filepath.Join(dir, "lines"), 0o755)
	for i, l := range labels {
		os.WriteFile(filepath.Join(dir, "images", "test", fmt.Sprintf("%d.png", i)), []byte("png of "+l), 0o644)
		fmt.Fprintf(&manifest, "%d\t2\t%s\t%s\n", i, l, value(l))
		votes := make([][]ensemble.Reading, len(texts))
		for r := range texts {
			votes[r] = []ensemble.Reading{{Text: texts[r][i], Conf: 0.5}}
		}
		text := ensemble.Vote(votes)[0].Text
		fmt.Fprintf(&preds, "%d,%s,%s,2", i, text, value(text))
		for r := range texts {
			fmt.Fprintf(&preds, ",%s,0.5000", texts[r][i])
		}
		preds.WriteString("\n")
	}
	os.WriteFile(filepath.Join(dir, "lines", "test.tsv"), []byte(manifest.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "predictions.csv"), []byte(preds.String()), 0o644)
	params, _ := json.Marshal(map[string]int{"ensemble": len(texts)})
	return ensemble.Member{Job: job, Dir: dir, Params: params}
}

func TestFormulaJobsVote(t *testing.T) {
	labels := []string{"不=5;不*2", "海=3;海+1", "河=1;2/河"}
	ms := []ensemble.Member{
		formulaMember(t, 2, labels, [][]string{{"不=5;不*2", "海=3;海+7", "河=1;2/河"}}),
		formulaMember(t, 4, labels, [][]string{{"不=5;不*3", "海=3;海+1", "河=1;2/河"}}),
		// A job that voted 3 readers itself: 2 of them agree.
		formulaMember(t, 6, labels, [][]string{{"不=5;不*2", "海=3;海+1", "河=1;2/"}, {"不=5;不*2", "海=3;海+2", "河=1;2/"},
			{"不=5;不*9", "海=3;海+1", "河=1;3/河"}}),
	}
	k, err := ensemble.Lookup(KindFormula)
	if err != nil {
		t.Fatal(err)
	}
	if err := ensemble.CheckTestSets(k, ms); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := k.Combine(context.Background(), ms, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scores["test_seq_acc"] != 1 || res.Scores["test_value_acc"] != 1 {
		t.Fatalf("ensemble scores %v", res.Scores)
	}
	for i, want := range []float64{2.0 / 3, 2.0 / 3, 2.0 / 3} {
		if res.Members[i]["test_seq_acc"] != want {
			t.Errorf("member %d: %v", i, res.Members[i])
		}
	}
	txt, _ := os.ReadFile(filepath.Join(out, "result.txt"))
	if string(txt) != "不=5;不*2 10.00\n海=3;海+1 4.00\n河=1;2/河 2.00\n" {
		t.Errorf("result.txt:\n%s", txt)
	}
	// The 3-reader job's text for image 2 is "河=1;2/" (2 of 3): its
	// confidence is their summed confidence over 3; it is reader 3.
	csv, _ := os.ReadFile(filepath.Join(out, "predictions.csv"))
	if !strings.HasPrefix(string(csv), "filename,text,value,lines,reader1,conf1,reader2,conf2,reader3,conf3\n") ||
		!strings.Contains(string(csv), "河=1;2/,0.3333\n") {
		t.Errorf("predictions.csv:\n%s", csv)
	}
	other := formulaMember(t, 8, []string{"不=5;不*2", "海=3;海+1", "河=1;2/海"}, [][]string{labels})
	if err := ensemble.CheckTestSets(k, append(ms, other)); err == nil || !strings.Contains(err.Error(), "different test sets") {
		t.Fatalf("other labels: %v", err)
	}
}

func value(text string) string {
	v, _ := expr.Final.Value(text)
	return v
}
