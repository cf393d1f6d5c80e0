package segment

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

func predictDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "predict") }

func resultPath(env tasks.Env, name string) string {
	return filepath.Join(predictDir(env), strings.TrimSuffix(name, filepath.Ext(name))+".json")
}

// predictTask predicts every test slide with the best weights; a slide is
// done when its result JSON exists, and within a slide a killed run resumes
// at the next window through the window cache.
func predictTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	idx, err := readIndex(env)
	if err != nil {
		return err
	}
	var test []slideEntry
	for _, e := range idx {
		if e.Test {
			test = append(test, e)
		}
	}
	if len(test) == 0 {
		env.Logf("no test slides (test_slides 0 and no test_dir): nothing to predict")
		return nil
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	m, err := LoadModel(backend, trainDir(env.JobDir()))
	if err != nil {
		return err
	}
	done, err := env.DoneItems()
	if err != nil {
		return err
	}
	opts := m.PredictOptions()
	opts.Blend, _ = slide.ParseBlend(p.Blend)
	opts.Overlap, opts.Batch, opts.Threshold, opts.MinTissue = p.PredOverlap, p.PredBatch, p.Threshold, p.MinTissue
	var sumDice, sumIoU, sumAcc float64
	nTruth := 0
	for i, e := range test {
		key := "predict:" + e.Name
		var res SlideResult
		if b, err := os.ReadFile(resultPath(env, e.Name)); done[key] && err == nil && json.Unmarshal(b, &res) == nil {
			env.Logf("%s: already predicted", e.Name)
		} else {
			o := opts
			o.Cache = filepath.Join(predictDir(env), "."+e.Name+".windows")
			o.Progress = func(d, t int) { env.Progress(fmt.Sprintf("predict %s (%d/%d)", e.Name, i+1, len(test)), d, t) }
			if res, err = PredictFile(ctx, m, e.Path, e.Mask, predictDir(env), o); err != nil {
				return err
			}
			env.Logf("%s: %d windows predicted, %d resumed, %d without tissue; tumour %.4f dice %.4f iou %.4f acc %.4f",
				e.Name, res.Stats.Predicted, res.Stats.Resumed, res.Stats.Skipped, res.TumourFraction, res.Dice, res.IoU, res.Accuracy)
			if err := tasks.WriteFileAtomic(resultPath(env, e.Name), func(w io.Writer) error {
				return json.NewEncoder(w).Encode(res)
			}); err != nil {
				return err
			}
			if err := env.MarkDone(key); err != nil {
				return err
			}
		}
		if err := env.Artifact("mask", res.MaskPath); err != nil {
			return err
		}
		if err := env.Artifact("overlay", res.OverlayPath); err != nil {
			return err
		}
		if res.HasTruth {
			sumDice += res.Dice
			sumIoU += res.IoU
			sumAcc += res.Accuracy
			nTruth++
		}
	}
	if nTruth > 0 {
		k := float64(nTruth)
		return env.Metrics(p.Epochs*p.StepsPerEpoch, p.Epochs, map[string]float64{
			"test_dice": sumDice / k, "test_iou": sumIoU / k, "test_acc": sumAcc / k})
	}
	return nil
}

// submitTask writes submission.csv (and metrics.csv) from the results.
func submitTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	idx, err := readIndex(env)
	if err != nil {
		return err
	}
	var results []SlideResult
	for _, e := range idx {
		if !e.Test {
			continue
		}
		b, err := os.ReadFile(resultPath(env, e.Name))
		if err != nil {
			return fmt.Errorf("result of %s (predict task): %w", e.Name, err)
		}
		var r SlideResult
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("result %s: %w", resultPath(env, e.Name), err)
		}
		results = append(results, r)
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	path := filepath.Join(out, "submission.csv")
	if err := WriteSubmission(path, results); err != nil {
		return err
	}
	if err := writeMetricsCSV(filepath.Join(out, "metrics.csv"), results); err != nil {
		return err
	}
	return env.Artifact("submission", path)
}

// WriteSubmission writes slide,tumour_fraction,dice,mask_path (dice empty
// without ground truth).
func WriteSubmission(path string, results []SlideResult) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"slide", "tumour_fraction", "dice", "mask_path"})
		for _, r := range results {
			dice := ""
			if r.HasTruth {
				dice = strconv.FormatFloat(r.Dice, 'f', 6, 64)
			}
			cw.Write([]string{r.Slide, strconv.FormatFloat(r.TumourFraction, 'f', 6, 64), dice, r.MaskPath})
		}
		cw.Flush()
		return cw.Error()
	})
}

func writeMetricsCSV(path string, results []SlideResult) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"slide", "dice", "iou", "pixel_accuracy", "tumour_fraction", "truth_fraction", "tumour_area_px", "overlay_path"})
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
		for _, r := range results {
			if !r.HasTruth {
				cw.Write([]string{r.Slide, "", "", "", f(r.TumourFraction), "", f(r.TumourArea), r.OverlayPath})
				continue
			}
			cw.Write([]string{r.Slide, f(r.Dice), f(r.IoU), f(r.Accuracy), f(r.TumourFraction), f(r.TruthFraction),
				f(r.TumourArea), r.OverlayPath})
		}
		cw.Flush()
		return cw.Error()
	})
}
