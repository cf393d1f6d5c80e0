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

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/norm"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
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

// Reader runs a trained network over images and decodes the readings.
type Reader struct {
	Net      NetConfig
	Batch    int
	exec     *model.Exec
	alphabet []rune
	classOf  map[rune]int32
}

// NewReader compiles the inference graph over st's weights: per-position
// probabilities and the per-example loss.
func NewReader(backend compute.Backend, st *model.Store, net NetConfig, charset string, batch int) (*Reader, error) {
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x, labels, lens *Node) (*Node, *Node) {
		logits := net.Logits(scope, x)
		return net.Probs(logits), net.ExampleLoss(logits, labels, lens)
	})
	if err != nil {
		return nil, err
	}
	return &Reader{Net: net, Batch: batch, exec: exec, alphabet: []rune(charset), classOf: classMap(charset)}, nil
}

// Reading is one decoded image.
type Reading struct {
	Text       string
	Confidence float64
	Loss       float64 // only meaningful for labeled images
}

// Read reads images 0..n-1 of src in batches (the last one padded, so the
// graph compiles once).
func (r *Reader) Read(ctx context.Context, src *imageSource, n int) ([]Reading, error) {
	out := make([]Reading, 0, n)
	hw3 := r.Net.Width * r.Net.Height * 3
	b := r.Batch
	x := make([]float32, b*hw3)
	texts := make([]string, b)
	for start := 0; start < n; start += b {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(b, n-start)
		idx := make([]int64, m)
		for i := range idx {
			idx[i] = int64(start + i)
		}
		clear(x)
		clear(texts)
		if err := src.load(ctx, idx, x[:m*hw3], texts[:m]); err != nil {
			return nil, err
		}
		labels, lens, err := encodeLabels(texts, r.Net.Length, r.classOf)
		if err != nil {
			return nil, err
		}
		probsT, lossT, err := r.exec.Call2(tensors.FromFlatDataAndDimensions(x, b, r.Net.Height, r.Net.Width, 3), labels, lens)
		if err != nil {
			return nil, err
		}
		probs := tensors.MustCopyFlatData[float32](probsT)
		losses := tensors.MustCopyFlatData[float32](lossT)
		per := len(probs) / b
		for i := range m {
			text, conf, err := r.Net.Decode(probs[i*per:(i+1)*per], r.alphabet)
			if err != nil {
				return nil, err
			}
			out = append(out, Reading{Text: text, Confidence: conf, Loss: float64(losses[i])})
		}
	}
	return out, nil
}

// evalMetrics scores readings against samples' labels with prefix (val_,
// test_): loss, acc (per character), seq_acc, cer and, for expressions,
// value and text+value accuracy.
func evalMetrics(p *Params, prefix string, samples []Sample, rd []Reading) (map[string]float64, *TextMetrics, *ArithMetrics, error) {
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
	tm, err := EvaluateText(truth, pred)
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
	am, err := EvaluateArith(truth, values, pred)
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
	trainer := train.NewTrainer(backend, st, net.Logits, net.Loss,
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	src := &imageSource{samples: sets.Train, w: p.Width, h: p.Height}
	if sets.Train == nil {
		if src.gen, err = NewGenerator(p.GenConfig(p.trainSeed())); err != nil {
			return err
		}
	}
	feed := trainFeed(p, src)
	val := &imageSource{samples: sets.Val, w: p.Width, h: p.Height}
	reader, err := NewReader(backend, st, net, p.Charset, p.BatchSize)
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
			rd, err := reader.Read(ctx, val, len(sets.Val))
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
func recomputeBNAverages(ctx context.Context, trainer *train.Trainer, net NetConfig,
	feed func(ctx context.Context, step int) (train.Batch, error), batch int) error {
	if net.Arch != ArchCRNN {
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
	Step    int       `json:"step"`
	Labeled bool      `json:"labeled"`
	Samples []Sample  `json:"samples"`
	Reads   []Reading `json:"readings"`
	Files   [2]string `json:"files"` // result.txt, predictions.csv
}

// trainedReader builds a reader on the train task's newest weights; it also
// returns their step.
func trainedReader(env tasks.Env, p *Params) (*Reader, int, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, 0, err
	}
	st, step, err := loadTrained(env, p)
	if err != nil {
		return nil, 0, err
	}
	reader, err := NewReader(backend, st, p.Net(), p.Charset, p.BatchSize)
	return reader, step, err
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
	reader, step, err := trainedReader(env, p)
	if err != nil {
		return err
	}
	src := &imageSource{samples: sets.Test, w: p.Width, h: p.Height}
	env.Progress("predict", 0, len(sets.Test))
	rd, err := reader.Read(ctx, src, len(sets.Test))
	if err != nil {
		return err
	}
	env.Progress("predict", len(sets.Test), len(sets.Test))
	preds := make([]Prediction, len(rd))
	for i, s := range sets.Test {
		if s.Path == "" {
			rd[i] = Reading{} // a skipped bad image: not read
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
	if err := writeJSON(predsPath(env), &pf); err != nil {
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
		reader, _, err := trainedReader(env, p)
		if err != nil {
			return err
		}
		samples, set = sets.Val, "val"
		if rd, err = reader.Read(ctx, &imageSource{samples: samples, w: p.Width, h: p.Height}, len(samples)); err != nil {
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
