package formula

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/formula/lines"
	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
)

func checkpointDir(env tasks.Env, p *JobParams, member int) string {
	return filepath.Join(env.JobDir(), trainTaskName(p, member), "checkpoints")
}

// strip joins an example's crops into the reader's input.
func (p *JobParams) strip(e *lines.Extractor, crops []*image.Gray) *image.Gray {
	return lines.JoinStrip(crops, e.Params)
}

// trainBatch draws batch `step` deterministically from the seed and step:
// examples with replacement, and for a Recombine share of the aligned ones
// the assignment lines of another aligned example.
func trainBatch(p *JobParams, e *lines.Extractor, trn, alignedSet []*example, step int) (train.Batch, error) {
	rng := rand.New(rand.NewPCG(uint64(p.Seed)+uint64(p.Member)*1_000_003, uint64(step)))
	strips := make([]*image.Gray, p.BatchSize)
	texts := make([]string, p.BatchSize)
	for i := range strips {
		x := trn[rng.IntN(len(trn))]
		crops, text := x.Crops, x.Text
		if len(alignedSet) > 1 && x.aligned() && rng.Float64() < p.Recombine {
			// The expression stays; the assignments come from another
			// image, so the reader cannot learn which variables an
			// expression "should" use.
			o := alignedSet[rng.IntN(len(alignedSet))]
			parts := strings.Split(text, ";")
			oParts := strings.Split(o.Text, ";")
			crops = append(append([]*image.Gray{}, o.Crops[:len(o.Crops)-1]...), x.Crops[len(x.Crops)-1])
			text = strings.Join(append(oParts[:len(oParts)-1:len(oParts)-1], parts[len(parts)-1]), ";")
		}
		strips[i], texts[i] = p.strip(e, crops), text
	}
	l, ll, err := charset.Labels(texts, MaxLabelLen)
	if err != nil {
		return train.Batch{}, err
	}
	return train.Batch{Inputs: []*tensors.Tensor{stripTensor(strips, p.StripHeight, p.StripWidth)},
		Labels: []*tensors.Tensor{l, ll}}, nil
}

// textScores compares readings with labels: sequence accuracy and
// character accuracy (1 - edit distance / label length).
func textScores(xs []*example, rs []reader.Reading) (seqAcc, charAcc float64, err error) {
	truth, texts := make([]string, len(xs)), make([]string, len(xs))
	for i, x := range xs {
		truth[i], texts[i] = x.Text, rs[i].Text
	}
	m, err := reader.ScoreText(truth, texts)
	return m.SeqAccuracy, m.EditAccuracy, err
}

func trainTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decodeParams(raw)
	if err != nil {
		return err
	}
	all, err := loadSplit(ctx, env, splitTrain)
	if err != nil {
		return err
	}
	trn, val := splitVal(all, p.ValFraction)
	if len(trn) == 0 {
		return fmt.Errorf("no labeled training images with lines in %s", manifestPath(env, splitTrain))
	}
	if len(val) > p.ValMax {
		val = val[:p.ValMax]
	}
	var alignedSet []*example
	for _, x := range trn {
		if x.aligned() {
			alignedSet = append(alignedSet, x)
		}
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	st, err := nn.NewSeededStore(p.Seed + int64(p.Member)*1_000_003)
	if err != nil {
		return err
	}
	ck, err := tasks.OpenCheckpoints(env, st, checkpointDir(env, p, p.Member), 2)
	if err != nil {
		return err
	}
	net := p.net()
	trainer := train.NewTrainer(backend, st, net.Logits, reader.Loss(net),
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	pred, err := newPredictor(backend, st, p)
	if err != nil {
		return err
	}
	e := p.extractor()
	env.Logf("member %d: %d training strips (%d aligned for recombination), %d validation; strips %dx%d, %d time steps",
		p.Member, len(trn), len(alignedSet), len(val), p.StripWidth, p.StripHeight, net.Steps())
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: p.Epochs, StepsPerEpoch: p.StepsPerEpoch, CheckpointEvery: p.CheckpointEvery,
		LearningRates: []float64{p.LearningRate, p.LearningRate / 10, p.LearningRate / 100},
		Patience:      p.Patience,
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			return trainBatch(p, e, trn, alignedSet, step)
		},
		Validate: func(ctx context.Context) (map[string]float64, error) {
			if len(val) == 0 {
				return map[string]float64{}, nil
			}
			rs, err := pred.read(ctx, val, nil)
			if err != nil {
				return nil, err
			}
			m := map[string]float64{}
			if m["val_seq_acc"], m["val_char_acc"], err = textScores(val, rs); err != nil {
				return nil, err
			}
			// The same on a fixed slice of the training strips, so a gap
			// (overfitting) shows.
			sub := trn[:min(len(trn), len(val))]
			rt, err := pred.read(ctx, sub, nil)
			if err != nil {
				return nil, err
			}
			if m["seq_acc"], m["char_acc"], err = textScores(sub, rt); err != nil {
				return nil, err
			}
			var loss float64
			for _, r := range rs {
				loss += r.Loss
			}
			m["val_loss"] = loss / float64(len(rs))
			return m, nil
		},
	}
	res, err := loop.Run(ctx)
	if err != nil {
		return err
	}
	env.Logf("member %d: %d steps, best %g at epoch %d", p.Member, res.Steps, res.Best, res.BestEpoch)
	return nil
}

// loadMember opens member m's best weights (the last checkpoint when no
// epoch was scored).
func loadMember(env tasks.Env, p *JobParams, m int) (*predictor, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, err
	}
	ckDir := checkpointDir(env, p, m)
	dir := filepath.Join(ckDir, "best")
	if _, err := os.Stat(dir); err != nil {
		dir = ckDir
	}
	st := model.NewStore()
	if _, err := checkpoint.Build(st).Dir(dir).Immediate().Done(); err != nil {
		return nil, fmt.Errorf("reader %d: load %s: %w", m, dir, err)
	}
	mp := *p
	mp.Member = m
	return newPredictor(backend, st, &mp)
}

// readEnsemble reads xs with every member and votes per image with
// ensemble.Vote, the rule `dl4img ensemble` applies across jobs: the most
// frequent text wins, ties go to the higher summed confidence.
//
// ensemble=N stays inside one job rather than becoming N jobs and an
// ensemble job: the readers share one data task (generating and
// extracting thousands of formula images, the costliest stage on a CPU),
// which N separate jobs would each repeat. Readers trained as separate
// formula jobs are voted by `dl4img ensemble` with this same rule.
func readEnsemble(ctx context.Context, env tasks.Env, p *JobParams, xs []*example, label string) ([]string, [][]ensemble.Reading, error) {
	per := make([][]ensemble.Reading, p.Ensemble)
	for m := range p.Ensemble {
		pr, err := loadMember(env, p, m)
		if err != nil {
			return nil, nil, err
		}
		rs, err := pr.read(ctx, xs, func(d, t int) { env.Progress(fmt.Sprintf("%s reader %d", label, m+1), d, t) })
		if err != nil {
			return nil, nil, err
		}
		per[m] = make([]ensemble.Reading, len(rs))
		for i, r := range rs {
			per[m][i] = ensemble.Reading{Text: r.Text, Conf: r.Confidence}
		}
	}
	voted := ensemble.Vote(per)
	texts := make([]string, len(voted))
	for i, r := range voted {
		texts[i] = r.Text
	}
	return texts, per, nil
}

// Scores of readings against labeled examples.
type Scores struct {
	Images     int     `json:"images"`
	SeqAcc     float64 `json:"seq_acc"`    // joined text exactly right
	CharAcc    float64 `json:"char_acc"`   // 1 - edit distance / label length
	ValueAcc   float64 `json:"value_acc"`  // value (variables substituted, exact) right
	Computable float64 `json:"computable"` // share of readings that evaluate
}

// scoreTexts compares read texts with the examples' labels.
func scoreTexts(xs []*example, texts []string) (Scores, error) {
	truth, values := make([]string, len(xs)), make([]string, len(xs))
	for i, x := range xs {
		truth[i], values[i] = x.Text, x.Value
	}
	m, err := reader.ScoreValues(expr.Final, truth, values, texts)
	if err != nil {
		return Scores{}, err
	}
	s := Scores{Images: len(xs), SeqAcc: m.SeqAccuracy, CharAcc: m.EditAccuracy, ValueAcc: m.ValueAccuracy}
	if m.N > 0 {
		s.Computable = float64(m.N-m.NotComputable) / float64(m.N)
	}
	return s, nil
}
func evaluateTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decodeParams(raw)
	if err != nil {
		return err
	}
	all, err := loadSplit(ctx, env, splitTrain)
	if err != nil {
		return err
	}
	_, val := splitVal(all, p.ValFraction)
	test, err := loadSplit(ctx, env, splitTest)
	if err != nil {
		return err
	}
	var labeledTest []*example
	for _, x := range test {
		if x.Text != "" {
			labeledTest = append(labeledTest, x)
		}
	}
	report := map[string]any{}
	metrics := map[string]float64{}
	for _, set := range []struct {
		name string
		xs   []*example
	}{{"val", val}, {"test", labeledTest}} {
		if len(set.xs) == 0 {
			continue
		}
		texts, per, err := readEnsemble(ctx, env, p, set.xs, "evaluate "+set.name)
		if err != nil {
			return err
		}
		s, err := scoreTexts(set.xs, texts)
		if err != nil {
			return err
		}
		report[set.name] = s
		metrics[set.name+"_seq_acc"] = s.SeqAcc
		metrics[set.name+"_char_acc"] = s.CharAcc
		metrics[set.name+"_value_acc"] = s.ValueAcc
		metrics[set.name+"_computable"] = s.Computable
		if p.Ensemble > 1 {
			members := make([]Scores, len(per))
			for m, rs := range per {
				ts := make([]string, len(rs))
				for i, r := range rs {
					ts[i] = r.Text
				}
				if members[m], err = scoreTexts(set.xs, ts); err != nil {
					return err
				}
				metrics[fmt.Sprintf("%s_seq_acc_reader%d", set.name, m+1)] = members[m].SeqAcc
			}
			report[set.name+"_readers"] = members
		}
		env.Logf("%s (%d images, %d readers): seq_acc %.4f char_acc %.4f value_acc %.4f computable %.4f",
			set.name, s.Images, p.Ensemble, s.SeqAcc, s.CharAcc, s.ValueAcc, s.Computable)
	}
	if len(metrics) == 0 {
		return errors.New("evaluate: no labeled validation or test images")
	}
	if err := env.Metrics(0, 0, metrics); err != nil {
		return err
	}
	path := filepath.Join(env.Dir(), "evaluation.json")
	if err := tasks.WriteJSONFile(path, report); err != nil {
		return err
	}
	return env.Artifact("evaluation", path)
}

func predictTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decodeParams(raw)
	if err != nil {
		return err
	}
	test, err := loadSplit(ctx, env, splitTest)
	if err != nil {
		return err
	}
	texts, per, err := readEnsemble(ctx, env, p, test, "predict")
	if err != nil {
		return err
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("parameter out: %w", err)
	}
	names := make([]string, len(test))
	lineCounts := make([]int, len(test))
	for i, x := range test {
		names[i], lineCounts[i] = x.Name, len(x.Crops)
	}
	result, predPath, err := writeSubmission(out, names, lineCounts, texts, per)
	if err != nil {
		return err
	}
	if err := env.Artifact("predictions", predPath); err != nil {
		return err
	}
	return env.Artifact("submission", result)
}

// writeSubmission writes result.txt (the texts) and predictions.csv
// (filename,text,value,lines, then reader k's text and confidence: the
// job's own readers, or an ensemble's member jobs) into out.
func writeSubmission(out string, names []string, lineCounts []int, texts []string, per [][]ensemble.Reading) (result, predPath string, err error) {
	result = filepath.Join(out, "result.txt")
	if err := tasks.WriteFileAtomic(result, func(w io.Writer) error { return WriteResult(w, texts) }); err != nil {
		return "", "", err
	}
	predPath = filepath.Join(out, "predictions.csv")
	err = tasks.WriteFileAtomic(predPath, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		head := []string{"filename", "text", "value", "lines"}
		for m := range per {
			head = append(head, fmt.Sprintf("reader%d", m+1), fmt.Sprintf("conf%d", m+1))
		}
		cw.Write(head)
		for i, name := range names {
			v, _ := expr.Final.Value(texts[i])
			row := []string{name, texts[i], v, fmt.Sprint(lineCounts[i])}
			for _, rs := range per {
				row = append(row, rs[i].Text, fmt.Sprintf("%.4f", rs[i].Conf))
			}
			cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	})
	return result, predPath, err
}

// WriteResult writes the competition's result.txt: per image, in order,
// "formula value" with the value blank when the formula is not computable.
func WriteResult(w io.Writer, texts []string) error {
	for _, t := range texts {
		v, _ := expr.Final.Value(t)
		if _, err := fmt.Fprintf(w, "%s %s\n", t, v); err != nil {
			return err
		}
	}
	return nil
}
