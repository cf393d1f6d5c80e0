package ocr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/ml/layers/norm"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
)

// recoverError turns a panic from graph building into the task's error.
func recoverError(err *error) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("internal error: %w", e)
		} else {
			*err = fmt.Errorf("internal error: %v", r)
		}
	}
}

// evalMetrics scores readings against samples' labels with prefix (val_,
// test_): loss, acc (per character), seq_acc, cer and, for expressions,
// value and text+value accuracy.
func evalMetrics(p *Params, prefix string, samples []Sample, rd []reader.Reading) (map[string]float64, *reader.TextMetrics, *reader.ValueMetrics, error) {
	var truth, values, pred []string
	loss := 0.0
	for i, s := range samples {
		if s.Path == "" || s.Text == "" {
			continue
		}
		truth = append(truth, s.Text)
		values = append(values, s.Value)
		pred = append(pred, rd[i].Text)
		loss += rd[i].Loss
	}
	if len(truth) == 0 {
		return nil, nil, nil, errors.New("no labeled samples to evaluate")
	}
	tm, err := reader.ScoreText(truth, pred)
	if err != nil {
		return nil, nil, nil, err
	}
	m := map[string]float64{
		prefix + "loss": loss / float64(len(truth)), prefix + "acc": tm.CharAccuracy,
		prefix + "seq_acc": tm.SeqAccuracy, prefix + "cer": tm.CER,
	}
	if p.kind != KindArithCTC {
		return m, &tm, nil, nil
	}
	am, err := reader.ScoreValues(expr.Prelim, truth, values, pred)
	if err != nil {
		return nil, nil, nil, err
	}
	m[prefix+"value_acc"] = am.ValueAccuracy
	m[prefix+"both_acc"] = am.BothAccuracy
	m[prefix+"not_computable"] = am.NotComputableRate
	return m, &tm, &am, nil
}

func newTrainStore(p *Params) (*model.Store, error) {
	return nn.NewSeededStore(p.Seed)
}

func trainTask(ctx context.Context, env tasks.Env, raw json.RawMessage) (err error) {
	defer recoverError(&err)
	p, err := decodeTask(raw)
	if err != nil {
		return err
	}
	sets, err := readSets(env)
	if err != nil {
		return err
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	net := p.Net()
	st, err := newTrainStore(p)
	if err != nil {
		return err
	}
	ck, err := tasks.OpenCheckpoints(env, st, ckDir(env), 3)
	if err != nil {
		return err
	}
	trainer := train.NewTrainer(backend, st, net.Logits, reader.Loss(net),
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	src := &imageSource{samples: sets.Train, w: p.Width, h: p.Height}
	if sets.Train == nil {
		if src.gen, err = NewGenerator(p.GenConfig(p.trainSeed())); err != nil {
			return err
		}
	}
	feed := trainFeed(p, src)
	val := &imageSource{samples: sets.Val, w: p.Width, h: p.Height}
	pred, err := reader.NewPredictor(backend, st, net, reader.NewCharset(p.Charset), p.BatchSize)
	if err != nil {
		return err
	}
	rates := []float64{p.LearningRate}
	if p.FineLearningRate > 0 {
		rates = append(rates, p.FineLearningRate)
	}
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: p.Epochs, StepsPerEpoch: p.StepsPerEpoch, CheckpointEvery: p.CheckpointEvery,
		Batch: feed,
		Validate: func(ctx context.Context) (map[string]float64, error) {
			if err := recomputeBNAverages(ctx, trainer, net, feed, p.BatchSize); err != nil {
				return nil, err
			}
			rd, err := pred.Read(ctx, len(sets.Val), val.images, nil)
			if err != nil {
				return nil, err
			}
			m, _, _, err := evalMetrics(p, "val_", sets.Val, rd)
			return m, err
		},
		Monitor:       "val_loss",
		LearningRates: rates,
		Patience:      p.Patience,
	}
	res, err := loop.Run(ctx)
	if err != nil {
		return err
	}
	env.Logf("trained %d steps; best val_loss %.4g at epoch %d (early stop: %v)", res.Steps, res.Best, res.BestEpoch, res.Stopped)
	return nil
}

// bnImages is how many training images the batch-norm averages are
// recomputed over before each validation.
const bnImages = 256

// bnBatches is a fixed set of training batches (those of the first steps,
// so a resumed run computes the same averages) for norm.UpdateBatchNormAverages.
type bnBatches struct {
	ctx  context.Context
	feed func(ctx context.Context, step int) (train.Batch, error)
	n    int
}

func (b *bnBatches) Name() string { return "batch-norm averages" }

func (b *bnBatches) Iter() iter.Seq2[train.Batch, error] {
	return func(yield func(train.Batch, error) bool) {
		for i := range b.n {
			batch, err := b.feed(b.ctx, i)
			if err == nil {
				err = b.ctx.Err()
			}
			if !yield(batch, err) || err != nil {
				return
			}
		}
	}
}

// recomputeBNAverages sets the CRNN's batch-norm moving averages to the
// exact statistics of the current weights over bnImages training images.
// The moving averages lag the weights by ~1/(1-momentum) steps; early in
// training, at learning rate 1e-3, inference with them gave a validation
// loss several times the training loss and chance-level readings.
func recomputeBNAverages(ctx context.Context, trainer *train.Trainer, net reader.Net,
	feed func(ctx context.Context, step int) (train.Batch, error), batch int) error {
	if _, ok := net.(reader.CRNN); !ok {
		return nil
	}
	if _, err := norm.UpdateBatchNormAverages(trainer, &bnBatches{ctx: ctx, feed: feed, n: max(1, bnImages/batch)}); err != nil {
		return fmt.Errorf("batch-norm averages: %w", err)
	}
	return nil
}

// loadTrained returns a store with the best weights of the train task (the
// newest checkpoint when no best epoch was recorded).
func loadTrained(env tasks.Env, p *Params) (*model.Store, int, error) {
	st, err := newTrainStore(p)
	if err != nil {
		return nil, 0, err
	}
	if _, err := os.Stat(bestDir(env)); err == nil {
		if _, err := checkpoint.Build(st).Dir(bestDir(env)).Immediate().Done(); err != nil {
			return nil, 0, fmt.Errorf("load best weights: %w", err)
		}
	} else if _, err := tasks.OpenCheckpoints(nil, st, ckDir(env), 3); err != nil {
		return nil, 0, err
	}
	step := int(optimizer.GetGlobalStep(st))
	if step == 0 {
		return nil, 0, fmt.Errorf("no trained weights in %s", ckDir(env))
	}
	return st, step, nil
}

// predictions.json, written by predict and read by evaluate.
type predFile struct {
	Step    int              `json:"step"`
	Labeled bool             `json:"labeled"`
	Samples []Sample         `json:"samples"`
	Reads   []reader.Reading `json:"readings"`
	Files   [2]string        `json:"files"` // result.txt, predictions.csv
}

// trainedReader builds a predictor on the train task's newest weights; it
// also returns their step.
func trainedReader(env tasks.Env, p *Params) (*reader.Predictor, int, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, 0, err
	}
	st, step, err := loadTrained(env, p)
	if err != nil {
		return nil, 0, err
	}
	pred, err := reader.NewPredictor(backend, st, p.Net(), reader.NewCharset(p.Charset), p.BatchSize)
	return pred, step, err
}

func predictTask(ctx context.Context, env tasks.Env, raw json.RawMessage) (err error) {
	defer recoverError(&err)
	p, err := decodeTask(raw)
	if err != nil {
		return err
	}
	sets, err := readSets(env)
	if err != nil {
		return err
	}
	pred, step, err := trainedReader(env, p)
	if err != nil {
		return err
	}
	src := &imageSource{samples: sets.Test, w: p.Width, h: p.Height}
	env.Progress("predict", 0, len(sets.Test))
	rd, err := pred.Read(ctx, len(sets.Test), src.images, func(done, total int) { env.Progress("predict", done, total) })
	if err != nil {
		return err
	}
	preds := make([]Prediction, len(rd))
	for i, s := range sets.Test {
		if s.Path == "" {
			rd[i] = reader.Reading{} // a skipped bad image: not read
		}
		preds[i] = Prediction{File: s.Name, Text: rd[i].Text, Confidence: rd[i].Confidence}
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	result, csvPath := filepath.Join(out, ResultFile), filepath.Join(out, PredictionsFile)
	if err := WriteResultTxt(result, preds); err != nil {
		return err
	}
	if err := WritePredictionsCSV(csvPath, preds); err != nil {
		return err
	}
	pf := predFile{Step: step, Labeled: sets.TestLabeled, Samples: sets.Test, Reads: rd, Files: [2]string{result, csvPath}}
	if err := tasks.WriteJSONFile(predsPath(env), &pf); err != nil {
		return err
	}
	if err := env.Artifact("predictions", csvPath); err != nil {
		return err
	}
	return env.Artifact("submission", result)
}

func evaluateTask(ctx context.Context, env tasks.Env, raw json.RawMessage) (err error) {
	defer recoverError(&err)
	p, err := decodeTask(raw)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(predsPath(env))
	if err != nil {
		return fmt.Errorf("predictions (run predict first): %w", err)
	}
	var pf predFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return fmt.Errorf("%s: %w", predsPath(env), err)
	}
	samples, rd, set := pf.Samples, pf.Reads, "test"
	if !pf.Labeled {
		// An unlabeled test_dir: score the held-out validation set instead.
		sets, err := readSets(env)
		if err != nil {
			return err
		}
		pred, _, err := trainedReader(env, p)
		if err != nil {
			return err
		}
		samples, set = sets.Val, "val"
		src := &imageSource{samples: samples, w: p.Width, h: p.Height}
		if rd, err = pred.Read(ctx, len(samples), src.images, nil); err != nil {
			return err
		}
		env.Logf("test_dir has no labels: evaluating on the %d validation samples", len(samples))
	}
	m, tm, am, err := evalMetrics(p, "test_", samples, rd)
	if err != nil {
		return err
	}
	m["test_n"] = float64(tm.N)
	if err := env.Metrics(pf.Step, 0, m); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s evaluation on %d %s images (step %d)\n", p.kind, tm.N, set, pf.Step)
	fmt.Fprintf(&b, "sequence accuracy   %.4f (%d/%d)\n", tm.SeqAccuracy, tm.SeqCorrect, tm.N)
	fmt.Fprintf(&b, "character accuracy  %.4f (%d/%d)\n", tm.CharAccuracy, tm.CharCorrect, tm.Chars)
	fmt.Fprintf(&b, "character error rate %.4f (%d substitutions, %d insertions, %d deletions)\n", tm.CER, tm.Substitutions, tm.Insertions, tm.Deletions)
	if am != nil {
		fmt.Fprintf(&b, "text correct        %.4f\nvalue correct       %.4f\ntext and value      %.4f\nnot computable      %.4f\n",
			am.TextAccuracy, am.ValueAccuracy, am.BothAccuracy, am.NotComputableRate)
	}
	b.WriteString("top confusions (truth→read: count):\n")
	for _, c := range tm.TopConfusions(20) {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	env.Logf("%s", strings.TrimSpace(strings.SplitN(b.String(), "top confusions", 2)[0]))
	report := filepath.Join(env.JobDir(), "evaluate", "confusions.txt")
	if err := tasks.WriteFileAtomic(report, func(w io.Writer) error {
		_, err := io.WriteString(w, b.String())
		return err
	}); err != nil {
		return err
	}
	return env.Artifact("report", report)
}
