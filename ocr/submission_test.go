package ocr

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSubmission(t *testing.T) {
	dir := t.TempDir()
	preds := []Prediction{
		{File: "0.png", Text: "(3-7)+5", Confidence: 0.99},
		{File: "1.png", Text: "3-9*7", Confidence: 0.5},
		{File: "2.png", Text: "7/2", Confidence: 0.25},
		{File: "3.png", Text: "3+", Confidence: 0.125},
		{File: "4.png", Text: "", Confidence: 0},
	}
	res := filepath.Join(dir, ResultFile)
	if err := WriteResultTxt(res, preds); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res)
	want := "(3-7)+5 1\n3-9*7 -60\n7/2 3.50\n3+ NaN\nNaN NaN\n"
	if string(got) != want {
		t.Errorf("result.txt:\n%s\nwant:\n%s", got, want)
	}

	pc := filepath.Join(dir, PredictionsFile)
	if err := WritePredictionsCSV(pc, preds); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(pc)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantRecs := [][]string{
		{"filename", "text", "value", "confidence"},
		{"0.png", "(3-7)+5", "1", "0.990000"},
		{"1.png", "3-9*7", "-60", "0.500000"},
		{"2.png", "7/2", "3.50", "0.250000"},
		{"3.png", "3+", "", "0.125000"},
		{"4.png", "", "", "0.000000"},
	}
	if len(recs) != len(wantRecs) {
		t.Fatalf("%d records", len(recs))
	}
	for i := range recs {
		if strings.Join(recs[i], "|") != strings.Join(wantRecs[i], "|") {
			t.Errorf("row %d = %q, want %q", i, recs[i], wantRecs[i])
		}
	}

	// No temporary files are left behind, and a failed write keeps the old file.
	if err := WriteResultTxt(res, []Prediction{{File: "x", Text: "a b"}}); err == nil {
		t.Error("text with a space accepted")
	}
	if again, _ := os.ReadFile(res); string(again) != want {
		t.Error("failed write replaced result.txt")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v", names)
	}
}
