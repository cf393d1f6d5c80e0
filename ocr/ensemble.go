package ocr

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/ocr/reader"
)

// readerEnsemble combines finished readers of one ocr kind: each image's
// text is the members' vote (ties to the higher summed confidence), read
// from the predictions.json their predict tasks wrote.
type readerEnsemble struct{ kind string }

func init() {
	for _, k := range []string{KindCaptchaCNN, KindCaptchaCTC, KindArithCTC} {
		ensemble.Register(k, readerEnsemble{k})
	}
}

func (readerEnsemble) ScoreTask() string { return "evaluate" }

func readPreds(m ensemble.Member) (*predFile, error) {
	path := predsFile(m.Dir)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("test predictions (its predict task's): %w", err)
	}
	var pf predFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(pf.Reads) != len(pf.Samples) {
		return nil, fmt.Errorf("%s: %d readings of %d images", path, len(pf.Reads), len(pf.Samples))
	}
	return &pf, nil
}

func (readerEnsemble) TestSet(m ensemble.Member) (ensemble.TestSet, error) {
	pf, err := readPreds(m)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	d := ensemble.NewDigest()
	where := predsFile(m.Dir)
	for _, s := range pf.Samples {
		if err := d.Add(s.Name, s.Text, s.Path); err != nil {
			return ensemble.TestSet{}, err
		}
		if s.Path != "" {
			where = filepath.Dir(s.Path)
		}
	}
	ts := d.TestSet(where)
	ts.Predictions = predsFile(m.Dir)
	return ts, nil
}

func (e readerEnsemble) Combine(ctx context.Context, ms []ensemble.Member, out string) (*ensemble.Result, error) {
	pfs := make([]*predFile, len(ms))
	per := make([][]ensemble.Reading, len(ms))
	for i, m := range ms {
		pf, err := readPreds(m)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", m.Job, err)
		}
		pfs[i] = pf
		for _, r := range pf.Reads {
			per[i] = append(per[i], ensemble.Reading{Text: r.Text, Conf: r.Confidence})
		}
	}
	voted := ensemble.Vote(per)
	test := pfs[0].Samples
	preds := make([]Prediction, len(test))
	reads := make([]reader.Reading, len(test))
	for i, s := range test {
		preds[i] = Prediction{File: s.Name, Text: voted[i].Text, Confidence: voted[i].Conf}
		reads[i] = reader.Reading{Text: voted[i].Text, Confidence: voted[i].Conf}
	}
	result, csvPath := filepath.Join(out, ResultFile), filepath.Join(out, PredictionsFile)
	if err := WriteResultTxt(result, preds); err != nil {
		return nil, err
	}
	if err := WritePredictionsCSV(csvPath, preds); err != nil {
		return nil, err
	}
	res := &ensemble.Result{Files: []ensemble.File{{Role: "submission", Path: result}, {Role: "predictions", Path: csvPath}}}
	if !pfs[0].Labeled {
		return res, nil
	}
	// Scored as the members' evaluate tasks score: the same code, the
	// same labels. A vote has no loss.
	p := bookDefaults(e.kind)
	score := func(rd []reader.Reading) (map[string]float64, error) {
		m, tm, _, err := evalMetrics(p, "test_", test, rd)
		if err != nil {
			return nil, err
		}
		m["test_n"] = float64(tm.N)
		return m, nil
	}
	var err error
	if res.Scores, err = score(reads); err != nil {
		return nil, err
	}
	delete(res.Scores, "test_loss")
	for _, pf := range pfs {
		m, err := score(pf.Reads)
		if err != nil {
			return nil, err
		}
		res.Members = append(res.Members, m)
	}
	return res, nil
}
