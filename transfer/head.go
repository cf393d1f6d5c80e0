package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/tasks"
)

// Head is the classifier on top of the features: dropout, then one dense
// layer with one unit (sigmoid) for two classes or one per class (softmax),
// as the known Dogs vs. Cats solution does.
type Head struct {
	Dim, Classes int
	Dropout      float64
}

// Units is 1 for two classes (a sigmoid), else the class count.
func (h Head) Units() int {
	if h.Classes == 2 {
		return 1
	}
	return h.Classes
}

// vars creates (or returns) the head's variables, so weights can be loaded
// into a fresh store before any graph is built.
func (h Head) vars(scope *model.Scope) (w, b *model.Variable) {
	s := scope.At("head")
	w = s.VariableWithShape("weights", shapes.Make(tensorsDType, h.Dim, h.Units()))
	b = s.VariableWithShape("biases", shapes.Make(tensorsDType, h.Units()))
	return w, b
}

// norm holds the features' training-set mean and 1/std: standardized
// inputs let a linear head converge in a few epochs (raw ReLU features all
// share a positive offset). They are saved with the weights.
func (h Head) norm(scope *model.Scope) (mean, inv *model.Variable) {
	s := scope.At("head").At("norm")
	mean = s.VariableWithValue("mean", make([]float32, h.Dim)).SetTrainable(false)
	inv = s.VariableWithValue("inv_std", ones(h.Dim)).SetTrainable(false)
	return mean, inv
}

func ones(n int) []float32 {
	o := make([]float32, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

// setNorm computes the standardization from the training items.
func (h Head) setNorm(scope *model.Scope, feats [][]float32, idx []int) error {
	mean := make([]float64, h.Dim)
	sq := make([]float64, h.Dim)
	for _, i := range idx {
		for k, v := range feats[i] {
			mean[k] += float64(v)
			sq[k] += float64(v) * float64(v)
		}
	}
	m32, inv := make([]float32, h.Dim), make([]float32, h.Dim)
	n := float64(len(idx))
	for k := range mean {
		mu := mean[k] / n
		sd := math.Sqrt(max(0, sq[k]/n-mu*mu))
		m32[k], inv[k] = float32(mu), float32(1/max(sd, 1e-3))
	}
	mv, iv := h.norm(scope)
	return errors.Join(mv.SetValue(tensors.FromValue(m32)), iv.SetValue(tensors.FromValue(inv)))
}

// Logits is the model function: [batch, dim] features → [batch, units].
func (h Head) Logits(scope *model.Scope, x *Node) *Node {
	g := x.Graph()
	w, b := h.vars(scope)
	mean, inv := h.norm(scope)
	x = Mul(Sub(x, Reshape(mean.NodeValue(g), 1, h.Dim)), Reshape(inv.NodeValue(g), 1, h.Dim))
	x = layers.DropoutStatic(scope, x, h.Dropout)
	return Add(MatMul(x, w.NodeValue(g)), Reshape(b.NodeValue(g), 1, h.Units()))
}

func (h Head) loss(labels, logits []*Node) *Node {
	if h.Units() == 1 {
		return loss.BinaryCrossentropyLogits(labels, logits)
	}
	return loss.SparseCategoricalCrossEntropyLogits(labels, logits)
}

// probs returns per-class probabilities [batch, classes].
func (h Head) probs(scope *model.Scope, x *Node) *Node {
	lg := h.Logits(scope, x)
	if h.Units() == 1 {
		p := Sigmoid(lg)
		return Concatenate([]*Node{OneMinus(p), p}, -1)
	}
	return Softmax(lg, -1)
}

func featTensor(feats [][]float32, idx []int) *tensors.Tensor {
	d := len(feats[idx[0]])
	t := tensors.FromShape(shapes.Make(tensorsDType, len(idx), d))
	tensors.MutableFlatData(t, func(flat []float32) {
		for i, j := range idx {
			copy(flat[i*d:], feats[j])
		}
	})
	return t
}

func labelTensor(h Head, items []Item, idx []int) *tensors.Tensor {
	if h.Units() == 1 {
		l := make([][]float32, len(idx))
		for i, j := range idx {
			l[i] = []float32{float32(items[j].Label)}
		}
		return tensors.FromValue(l)
	}
	l := make([][]int32, len(idx))
	for i, j := range idx {
		l[i] = []int32{int32(items[j].Label)}
	}
	return tensors.FromValue(l)
}

// Predictor computes class probabilities with a head's weights.
type Predictor struct {
	Head  Head
	store *model.Store
	exec  *model.Exec
}

// NewPredictor builds a predictor on st (which holds the head's weights).
func NewPredictor(backend compute.Backend, st *model.Store, h Head) (*Predictor, error) {
	exec, err := model.NewExec(backend, st, h.probs)
	if err != nil {
		return nil, err
	}
	return &Predictor{Head: h, store: st, exec: exec}, nil
}

// Probs returns [len(idx)][classes] probabilities, in chunks.
func (p *Predictor) Probs(feats [][]float32, idx []int) ([][]float64, error) {
	const chunk = 512
	out := make([][]float64, 0, len(idx))
	for s := 0; s < len(idx); s += chunk {
		part := idx[s:min(s+chunk, len(idx))]
		t, err := p.exec.Call1(featTensor(feats, part))
		if err != nil {
			return nil, err
		}
		flat := tensors.MustCopyFlatData[float32](t)
		c := p.Head.Classes
		for i := range part {
			row := make([]float64, c)
			for k := range c {
				row[k] = float64(flat[i*c+k])
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// Scores are validation metrics of predicted probabilities.
type Scores struct {
	LogLoss, LogLossClipped, Acc float64
}

// Score computes log loss (unclipped and clipped to [clip, 1-clip], as
// Kaggle scores a clipped submission) and accuracy.
func Score(probs [][]float64, labels []int, clip float64) Scores {
	var s Scores
	if len(probs) == 0 {
		return s
	}
	for i, p := range probs {
		y := labels[i]
		pc := p[y]
		s.LogLoss -= math.Log(max(pc, 1e-15))
		if len(p) == 2 {
			// Two classes: the submission holds P(class 1) clipped.
			q := math.Min(1-clip, math.Max(clip, p[1]))
			if y == 0 {
				q = 1 - q
			}
			s.LogLossClipped -= math.Log(q)
		} else {
			s.LogLossClipped -= math.Log(math.Min(1-clip, math.Max(clip, pc)))
		}
		best := 0
		for k := range p {
			if p[k] > p[best] {
				best = k
			}
		}
		if best == y {
			s.Acc++
		}
	}
	n := float64(len(probs))
	s.LogLoss /= n
	s.LogLossClipped /= n
	s.Acc /= n
	return s
}

func ckDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "train", "checkpoints") }

func bestDir(env tasks.Env) string { return filepath.Join(ckDir(env), "best") }

func labelsOf(items []Item, idx []int) []int {
	l := make([]int, len(idx))
	for i, j := range idx {
		l[i] = items[j].Label
	}
	return l
}

func trainTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	fs, err := readFeatureSet(featurePath(env, "train"))
	if err != nil {
		return fmt.Errorf("features of the training set: %w", err)
	}
	if len(fs.Items) < 2 {
		return fmt.Errorf("training set: %d usable images", len(fs.Items))
	}
	valIdx, trnIdx := SplitVal(len(fs.Items), p.ValFraction, p.Seed)
	h := Head{Dim: len(fs.Feats[0]), Classes: len(fs.Classes), Dropout: p.Dropout}
	steps := p.StepsPerEpoch
	if steps == 0 {
		steps = (len(trnIdx) + p.BatchSize - 1) / p.BatchSize
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		return err
	}
	h.vars(st.RootScope())
	ck, err := tasks.OpenCheckpoints(env, st, ckDir(env), 3)
	if err != nil {
		return err
	}
	if err := h.setNorm(st.RootScope(), fs.Feats, trnIdx); err != nil {
		return err
	}
	trainer := train.NewTrainer(backend, st, h.Logits, h.loss,
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	pred, err := NewPredictor(backend, st, h)
	if err != nil {
		return err
	}
	trnEval := trnIdx[:min(len(trnIdx), 1000)]
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: p.Epochs, StepsPerEpoch: steps,
		LearningRates: []float64{p.LearningRate, p.LearningRate / 10}, Patience: p.Patience,
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			epoch, i := step/steps, step%steps
			perm := rand.New(rand.NewPCG(uint64(p.Seed), uint64(epoch))).Perm(len(trnIdx))
			idx := make([]int, min(p.BatchSize, len(trnIdx)))
			for k := range idx {
				idx[k] = trnIdx[perm[(i*p.BatchSize+k)%len(perm)]]
			}
			return train.Batch{Inputs: []*tensors.Tensor{featTensor(fs.Feats, idx)},
				Labels: []*tensors.Tensor{labelTensor(h, fs.Items, idx)}}, nil
		},
		Validate: func(context.Context) (map[string]float64, error) {
			pr, err := pred.Probs(fs.Feats, trnEval)
			if err != nil {
				return nil, err
			}
			s := Score(pr, labelsOf(fs.Items, trnEval), p.Clip)
			m := map[string]float64{"acc": s.Acc, "train_eval_loss": s.LogLoss}
			if len(valIdx) > 0 {
				pr, err := pred.Probs(fs.Feats, valIdx)
				if err != nil {
					return nil, err
				}
				s := Score(pr, labelsOf(fs.Items, valIdx), p.Clip)
				m["val_loss"], m["val_loss_clipped"], m["val_acc"] = s.LogLoss, s.LogLossClipped, s.Acc
			}
			return m, nil
		},
	}
	res, err := loop.Run(ctx)
	if err != nil {
		return err
	}
	if err := tasks.LoadWeights(st, loop.BestDir()); err != nil {
		return err
	}
	if len(valIdx) > 0 {
		pr, err := pred.Probs(fs.Feats, valIdx)
		if err != nil {
			return err
		}
		s := Score(pr, labelsOf(fs.Items, valIdx), p.Clip)
		env.Logf("best epoch %d: validation log loss %.4f (clipped to [%g,%g]: %.4f), accuracy %.4f on %d images",
			res.BestEpoch, s.LogLoss, p.Clip, 1-p.Clip, s.LogLossClipped, s.Acc, len(valIdx))
		return env.Metrics(res.Steps, p.Epochs, map[string]float64{"best_val_loss": s.LogLoss,
			"best_val_loss_clipped": s.LogLossClipped, "best_val_acc": s.Acc})
	}
	return nil
}

// loadHead returns a predictor with the final head weights (of the train
// task, or of the finetune task when there is one).
func loadHead(env tasks.Env, p *Params, h Head) (*Predictor, *model.Store, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, nil, err
	}
	st := model.NewStore()
	h.vars(st.RootScope())
	h.norm(st.RootScope())
	if err := tasks.LoadWeights(st, headDir(env, p)); err != nil {
		return nil, nil, fmt.Errorf("trained head: %w", err)
	}
	pred, err := NewPredictor(backend, st, h)
	return pred, st, err
}
