package transfer

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/dl4img/dl4img/ensemble"
)

// probEnsemble averages finished transfer jobs' class probabilities per
// test image (the probabilities.csv their submit tasks wrote) and writes
// the Kaggle submission from the average.
type probEnsemble struct{}

func init() { ensemble.Register("transfer", probEnsemble{}) }

func (probEnsemble) ScoreTask() string { return "submit" }

func memberParams(m ensemble.Member) (*Params, error) {
	p := defaults().(*Params)
	if err := json.Unmarshal(m.Params, p); err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	return p, nil
}

// memberTestDir is the folder a member predicted: its test_dir, or the
// generated one in its job directory.
func memberTestDir(p *Params, m ensemble.Member) string {
	if p.TrainDir == "" {
		return filepath.Join(m.Dir, "data", "test")
	}
	return p.TestDir
}

func (probEnsemble) TestSet(m ensemble.Member) (ensemble.TestSet, error) {
	p, err := memberParams(m)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	dir := memberTestDir(p, m)
	items, err := ListTest(dir)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	d := ensemble.NewDigest()
	for _, it := range items {
		if err := d.Add(it.ID, "", it.Path); err != nil {
			return ensemble.TestSet{}, err
		}
	}
	ts := d.TestSet(dir)
	ts.Predictions = probsFile(p, m)
	return ts, nil
}

// probsFile is where a member's submit task wrote its probabilities.
func probsFile(p *Params, m ensemble.Member) string {
	return filepath.Join(m.OutDir(p.Out), ProbabilitiesFile)
}

// memberProbs is a member's probabilities.csv.
type memberProbs struct {
	classes []string
	ids     []string
	probs   [][]float64 // nil rows: no prediction
}

func readProbs(p *Params, m ensemble.Member) (*memberProbs, error) {
	path := probsFile(p, m)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("class probabilities (its submit task's; jobs from before ensembles have none): %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 || len(rows[0]) < 3 {
		return nil, fmt.Errorf("%s: want a header id,CLASS,... and a row per test image", path)
	}
	mp := &memberProbs{classes: rows[0][1:]}
	for i, row := range rows[1:] {
		mp.ids = append(mp.ids, row[0])
		if row[1] == "" {
			mp.probs = append(mp.probs, nil)
			continue
		}
		pr := make([]float64, len(mp.classes))
		for k := range pr {
			if pr[k], err = strconv.ParseFloat(row[1+k], 64); err != nil {
				return nil, fmt.Errorf("%s:%d: %q is not a probability", path, i+2, row[1+k])
			}
		}
		mp.probs = append(mp.probs, pr)
	}
	return mp, nil
}

func (probEnsemble) Combine(ctx context.Context, ms []ensemble.Member, out string) (*ensemble.Result, error) {
	var params []*Params
	var all []*memberProbs
	for _, m := range ms {
		p, err := memberParams(m)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", m.Job, err)
		}
		mp, err := readProbs(p, m)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", m.Job, err)
		}
		if len(all) > 0 && (!slices.Equal(mp.classes, all[0].classes) || !slices.Equal(mp.ids, all[0].ids)) {
			return nil, fmt.Errorf("jobs %d and %d predicted different classes or images (%v, %v)", ms[0].Job, m.Job,
				all[0].classes, mp.classes)
		}
		params, all = append(params, p), append(all, mp)
	}
	first := all[0]
	items := make([]Item, len(first.ids))
	avg := make([][]float64, len(first.ids))
	for i, id := range first.ids {
		items[i].ID = id
		rows := make([][]float64, len(all))
		for k, mp := range all {
			rows[k] = mp.probs[i]
		}
		avg[i] = ensemble.Mean(rows)
	}
	clip := params[0].Clip
	sub, probPath := filepath.Join(out, "submission.csv"), filepath.Join(out, ProbabilitiesFile)
	if err := WriteSubmission(sub, first.classes, items, avg, clip); err != nil {
		return nil, err
	}
	if err := WriteProbabilities(probPath, first.classes, items, avg); err != nil {
		return nil, err
	}
	res := &ensemble.Result{Files: []ensemble.File{{Role: "submission", Path: sub}, {Role: "probabilities", Path: probPath}}}
	// Generated data has its answers: scored as the members' submit tasks
	// score themselves.
	if params[0].TrainDir != "" || len(first.classes) != 2 {
		return res, nil
	}
	truth, err := readLabels(filepath.Join(ms[0].Dir, "data", "test_labels.csv"))
	if err != nil {
		return res, nil
	}
	score := func(probs [][]float64) map[string]float64 {
		var pr [][]float64
		var ls []int
		for i, id := range first.ids {
			if l, ok := truth[id]; ok && probs[i] != nil {
				pr, ls = append(pr, probs[i]), append(ls, l)
			}
		}
		s := Score(pr, ls, clip)
		return map[string]float64{"test_loss": s.LogLoss, "test_loss_clipped": s.LogLossClipped, "test_acc": s.Acc}
	}
	res.Scores = score(avg)
	for _, mp := range all {
		res.Members = append(res.Members, score(mp.probs))
	}
	return res, nil
}
