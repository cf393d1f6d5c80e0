package transfer

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dl4img/dl4img/tasks"
)

// positiveClass is the class whose probability a two-class submission
// holds: "dog" when there is one (Kaggle's label = P(dog)), else class 1.
func positiveClass(classes []string) int {
	for i, c := range classes {
		if c == "dog" {
			return i
		}
	}
	return 1
}

// WriteSubmission writes id,label rows: for two classes label is the
// positive class's probability clipped to [clip, 1-clip] (a missing
// prediction, nil, is written as 0.5); for more, the predicted class name.
func WriteSubmission(path string, classes []string, items []Item, probs [][]float64, clip float64) error {
	pos := positiveClass(classes)
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "label"})
		for i, it := range items {
			label := "0.5"
			pr := probs[i]
			switch {
			case len(classes) == 2 && pr != nil:
				label = strconv.FormatFloat(math.Min(1-clip, math.Max(clip, pr[pos])), 'f', 6, 64)
			case len(classes) == 2:
			case pr != nil:
				best := 0
				for k := range pr {
					if pr[k] > pr[best] {
						best = k
					}
				}
				label = classes[best]
			default:
				label = classes[0]
			}
			cw.Write([]string{it.ID, label})
		}
		cw.Flush()
		return cw.Error()
	})
}

// ProbabilitiesFile holds every class's probability per test image.
const ProbabilitiesFile = "probabilities.csv"

// WriteProbabilities writes id,CLASS1,CLASS2,... rows with the unclipped
// probabilities (empty cells for an image without a prediction).
func WriteProbabilities(path string, classes []string, items []Item, probs [][]float64) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(append([]string{"id"}, classes...))
		for i, it := range items {
			row := make([]string, 1+len(classes))
			row[0] = it.ID
			for k, v := range probs[i] {
				row[1+k] = strconv.FormatFloat(v, 'g', -1, 64)
			}
			cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	})
}

// predictAll returns probabilities for every item (nil where an image had
// no features).
func predictAll(pred *Predictor, feats [][]float32) ([][]float64, error) {
	var idx []int
	for i, f := range feats {
		if len(f) > 0 {
			idx = append(idx, i)
		}
	}
	out := make([][]float64, len(feats))
	if len(idx) == 0 {
		return out, nil
	}
	pr, err := pred.Probs(feats, idx)
	if err != nil {
		return nil, err
	}
	for k, i := range idx {
		out[i] = pr[k]
	}
	return out, nil
}

func submitTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	name := "test"
	if p.imagesTrained() {
		name = "test_finetuned"
	}
	fs, err := readFeatureSet(featurePath(env, name))
	if err != nil {
		return fmt.Errorf("features of the test set: %w", err)
	}
	dim := 0
	for _, f := range fs.Feats {
		dim = max(dim, len(f))
	}
	if dim == 0 {
		return fmt.Errorf("test set: no usable image")
	}
	h := Head{Dim: dim, Classes: len(fs.Classes), Dropout: p.Dropout}
	pred, _, err := loadHead(env, p, h)
	if err != nil {
		return err
	}
	probs, err := predictAll(pred, fs.Feats)
	if err != nil {
		return err
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	path := filepath.Join(out, "submission.csv")
	if err := WriteSubmission(path, fs.Classes, fs.Items, probs, p.Clip); err != nil {
		return err
	}
	if err := env.Artifact("submission", path); err != nil {
		return err
	}
	// The unclipped probabilities, which an ensemble averages.
	probPath := filepath.Join(out, ProbabilitiesFile)
	if err := WriteProbabilities(probPath, fs.Classes, fs.Items, probs); err != nil {
		return err
	}
	if err := env.Artifact("probabilities", probPath); err != nil {
		return err
	}
	// Generated data comes with its answers: score the submission.
	if p.TrainDir == "" && len(fs.Classes) == 2 {
		truth, err := readLabels(filepath.Join(env.JobDir(), "data", "test_labels.csv"))
		if err == nil {
			var pr [][]float64
			var ls []int
			for i, it := range fs.Items {
				if l, ok := truth[it.ID]; ok && probs[i] != nil {
					pr = append(pr, probs[i])
					ls = append(ls, l)
				}
			}
			s := Score(pr, ls, p.Clip)
			env.Logf("test (generated labels): log loss %.4f, clipped %.4f, accuracy %.4f on %d images",
				s.LogLoss, s.LogLossClipped, s.Acc, len(pr))
			return env.Metrics(0, 0, map[string]float64{"test_loss": s.LogLoss, "test_loss_clipped": s.LogLossClipped, "test_acc": s.Acc})
		}
	}
	return nil
}

func readLabels(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(bufio.NewReader(f)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := map[string]int{}
	for _, r := range recs[1:] {
		l, err := strconv.Atoi(r[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m[r[0]] = l
	}
	return m, nil
}
