package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/segment/slide"
)

// mapEnsemble averages finished segment jobs' probability maps of each test
// slide (their predict tasks' STEM_pred.tif) into one, then scores, draws
// and submits it as a single model's prediction.
type mapEnsemble struct{}

func init() { ensemble.Register("segment", mapEnsemble{}) }

func (mapEnsemble) ScoreTask() string { return "predict" }

// testSlides lists a member's test slides in its index order.
func testSlides(m ensemble.Member) ([]slideEntry, error) {
	idx, err := readIndexFile(indexFile(m.Dir))
	if err != nil {
		return nil, err
	}
	var out []slideEntry
	for _, e := range idx {
		if e.Test {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no test slides in %s", indexFile(m.Dir))
	}
	return out, nil
}

func (mapEnsemble) TestSet(m ensemble.Member) (ensemble.TestSet, error) {
	test, err := testSlides(m)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	d := ensemble.NewDigest()
	for _, e := range test {
		if err := d.Add(e.Name, "", e.Path); err != nil {
			return ensemble.TestSet{}, err
		}
	}
	ts := d.TestSet(filepath.Dir(test[0].Path))
	ts.Predictions = filepath.Join(m.Dir, "predict")
	return ts, nil
}

func stem(name string) string { return strings.TrimSuffix(name, filepath.Ext(name)) }

func (mapEnsemble) Combine(ctx context.Context, ms []ensemble.Member, out string) (*ensemble.Result, error) {
	params := make([]*Params, len(ms))
	for i, m := range ms {
		p := defaults().(*Params)
		if err := json.Unmarshal(m.Params, p); err != nil {
			return nil, fmt.Errorf("job %d parameters: %w", m.Job, err)
		}
		params[i] = p
	}
	test, err := testSlides(ms[0])
	if err != nil {
		return nil, err
	}
	p := params[0]
	o := PredictOptions{Level: p.Level, Threshold: p.Threshold}
	var results []SlideResult
	res := &ensemble.Result{Members: make([]map[string]float64, len(ms))}
	var sum [3]float64
	n := 0
	memberSums := make([][3]float64, len(ms))
	for _, e := range test {
		var maps []string
		for i, m := range ms {
			if params[i].Level != p.Level {
				return nil, fmt.Errorf("jobs %d and %d predicted level %d and %d of the slides", ms[0].Job, m.Job, p.Level, params[i].Level)
			}
			dir := filepath.Join(m.Dir, "predict")
			maps = append(maps, filepath.Join(dir, stem(e.Name)+"_pred.tif"))
			// The member's own scores of this slide, from its predict task.
			b, err := os.ReadFile(filepath.Join(dir, stem(e.Name)+".json"))
			if err != nil {
				return nil, fmt.Errorf("job %d: result of %s (its predict task's): %w", m.Job, e.Name, err)
			}
			var r SlideResult
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("job %d: result of %s: %w", m.Job, e.Name, err)
			}
			if r.HasTruth {
				memberSums[i][0] += r.Dice
				memberSums[i][1] += r.IoU
				memberSums[i][2] += r.Accuracy
			}
		}
		r := SlideResult{Slide: e.Name, MaskPath: filepath.Join(out, stem(e.Name)+"_pred.tif"),
			OverlayPath: filepath.Join(out, stem(e.Name)+"_overlay.png")}
		if err := slide.AverageRasters(ctx, maps, r.MaskPath); err != nil {
			return nil, err
		}
		s, err := slide.Open(e.Path)
		if err != nil {
			return nil, err
		}
		err = scoreSlide(ctx, s, &r, e.Mask, o)
		s.Close()
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, ensemble.File{Role: "mask", Path: r.MaskPath}, ensemble.File{Role: "overlay", Path: r.OverlayPath})
		if r.HasTruth {
			sum[0] += r.Dice
			sum[1] += r.IoU
			sum[2] += r.Accuracy
			n++
		}
		results = append(results, r)
	}
	sub := filepath.Join(out, "submission.csv")
	if err := WriteSubmission(sub, results); err != nil {
		return nil, err
	}
	if err := writeMetricsCSV(filepath.Join(out, "metrics.csv"), results); err != nil {
		return nil, err
	}
	res.Files = append([]ensemble.File{{Role: "submission", Path: sub}}, res.Files...)
	if n == 0 {
		res.Members = nil
		return res, nil
	}
	// Averaged over the slides with ground truth, as predict does.
	scores := func(s [3]float64) map[string]float64 {
		k := float64(n)
		return map[string]float64{"test_dice": s[0] / k, "test_iou": s[1] / k, "test_acc": s[2] / k}
	}
	res.Scores = scores(sum)
	for i := range ms {
		res.Members[i] = scores(memberSums[i])
	}
	return res, nil
}
