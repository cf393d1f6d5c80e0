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
	return labelsTensor(h, labelsOf(items, idx))
}

// labelsTensor is [n, 1] labels: float 0/1 for the sigmoid, class indices
// for the softmax.
func labelsTensor(h Head, labels []int) *tensors.Tensor {
	if h.Units() == 1 {
		l := make([][]float32, len(labels))
		for i, y := range labels {
			l[i] = []float32{float32(y)}
		}
		return tensors.FromValue(l)
	}
	l := make([][]int32, len(labels))
	for i, y := range labels {
		l[i] = []int32{int32(y)}
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

// bestDir holds the head the train task chose (the best trained head, or
// the linear probe): what fine-tuning starts from and, without it, what
// predicts. The training loop keeps its own best grid weights under
// ckDir/best, so that a resumed task can choose again.
func bestDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "train", "head") }

func labelsOf(items []Item, idx []int) []int {
	l := make([]int, len(idx))
	for i, j := range idx {
		l[i] = items[j].Label
	}
	return l
}

// maxEvals is about how many times the head is validated (and its metrics
// recorded) over a run, whatever its length.
const maxEvals = 50

// headSchedule returns the head's optimizer steps, the rows in each step
// and the steps between validations, for n training rows. Up to head_batch
// rows every step sees them all (full batch); beyond, a step takes
// head_batch of them. epochs can lengthen the run, head_steps is its
// floor.
func (p *Params) headSchedule(n int) (steps, batch, every int) {
	batch = min(n, p.HeadBatch)
	steps = max(p.HeadSteps, p.Epochs*((n+batch-1)/batch))
	every = max(1, steps/maxEvals)
	return (steps + every - 1) / every * every, batch, every
}

// batchRows returns the training rows of a step: all n (full batch), or
// the step's share of its epoch's seeded shuffle, so that a resumed run
// sees the batches an uninterrupted one would.
func batchRows(n, batch, step int, seed int64) []int {
	rows := make([]int, batch)
	if batch == n {
		for i := range rows {
			rows[i] = i
		}
		return rows
	}
	perEpoch := (n + batch - 1) / batch
	epoch, i := step/perEpoch, step%perEpoch
	perm := rand.New(rand.NewPCG(uint64(seed), uint64(epoch))).Perm(n)
	for k := range rows {
		rows[k] = perm[(i*batch+k)%n]
	}
	return rows
}

// trainTask trains the head on the cached features in large batches (full
// batch up to head_batch training images): one head per weight decay
// (headGrid), validated every few steps; the best head on the validation
// split, at its best step, is kept. It then fits the linear probe on the
// same standardized features, and if the probe's validation log loss is
// lower, the probe's weights become the head.
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
	mean, inv := normOf(fs.Feats, trnIdx)
	trn := standardize(fs.Feats, fs.Items, trnIdx, mean, inv)
	val := standardize(fs.Feats, fs.Items, valIdx, mean, inv)
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	trained, res, err := trainGrid(ctx, env, p, h, trn, val)
	if err != nil {
		return err
	}
	m := map[string]float64{"best_weight_decay": trained.decay}
	final := trained.model
	if val.n > 0 {
		m["trained_head_val_loss"] = trained.val.LogLoss
		pr, err := fitProbe(ctx, trn, val, h.Classes, p.WeightDecay, p.Clip)
		if err != nil {
			return err
		}
		env.Logf("linear probe (L2 %g): validation log loss %.4f, accuracy %.4f", pr.lambda, pr.val.LogLoss, pr.val.Acc)
		m["linear_probe_val_loss"], m["linear_probe_val_acc"], m["linear_probe_l2"] = pr.val.LogLoss, pr.val.Acc, pr.lambda
		m["head_is_probe"] = 0
		if pr.val.LogLoss < trained.val.LogLoss {
			env.Logf("the linear probe's validation log loss %.4f is below the trained head's %.4f: the probe becomes the head",
				pr.val.LogLoss, trained.val.LogLoss)
			final, m["head_is_probe"] = pr.model, 1
		}
	}
	st, err := headStore(h, final, mean, inv)
	if err != nil {
		return err
	}
	if err := tasks.SaveWeights(st, bestDir(env)); err != nil {
		return fmt.Errorf("save the head: %w", err)
	}
	_, _, every := p.headSchedule(trn.n)
	evals := res.Steps / every
	if val.n == 0 {
		return env.Metrics(res.Steps, evals, m)
	}
	// Score the saved head through the graph that predicts the test set,
	// so the recorded numbers are those of what was written.
	pred, err := NewPredictor(backend, st, h)
	if err != nil {
		return err
	}
	pv, err := pred.Probs(fs.Feats, valIdx)
	if err != nil {
		return err
	}
	s := Score(pv, val.y, p.Clip)
	env.Logf("head: validation log loss %.4f (clipped to [%g,%g]: %.4f), accuracy %.4f on %d images",
		s.LogLoss, p.Clip, 1-p.Clip, s.LogLossClipped, s.Acc, val.n)
	m["best_val_loss"], m["best_val_loss_clipped"], m["best_val_acc"] = s.LogLoss, s.LogLossClipped, s.Acc
	return env.Metrics(res.Steps, evals, m)
}

// gridChoice is the trained head the validation split chose.
type gridChoice struct {
	model linear
	decay float64
	val   Scores
}

// trainGrid runs the head grid's training loop (resumable, best
// validation weights kept) and returns the best head of the best step.
// Without a validation split there is one weight decay, and the loop keeps
// the step with the lowest training objective.
func trainGrid(ctx context.Context, env tasks.Env, p *Params, h Head, trn, val stdMatrix) (gridChoice, tasks.LoopResult, error) {
	var none tasks.LoopResult
	steps, batch, every := p.headSchedule(trn.n)
	grid := headGrid{Head: h, decays: p.WeightDecay, steps: steps, lr: p.LearningRate}
	backend, err := env.Backend()
	if err != nil {
		return gridChoice{}, none, err
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		return gridChoice{}, none, err
	}
	grid.vars(st.RootScope())
	ck, err := tasks.OpenCheckpoints(env, st, ckDir(env), 3)
	if err != nil {
		return gridChoice{}, none, err
	}
	trainer := train.NewTrainer(backend, st, grid.logits, grid.loss,
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	trnEval := trn.first(1000)
	choose := func() (gridChoice, Scores, error) {
		l, err := grid.linear(st)
		if err != nil {
			return gridChoice{}, Scores{}, err
		}
		// Without a validation split there is a single head.
		vs := scoreHeads(l, h.Units(), val, p.Clip)
		k := 0
		for j := range vs {
			if vs[j].LogLoss < vs[k].LogLoss {
				k = j
			}
		}
		c := gridChoice{model: grid.head(l, k), decay: grid.decays[k], val: vs[k]}
		return c, scoreHeads(c.model, h.Units(), trnEval, p.Clip)[0], nil
	}
	env.Logf("head: %d steps of %d of the %d training images, validated every %d; weight decays %v",
		steps, batch, trn.n, every, p.WeightDecay)
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: steps / every, StepsPerEpoch: every, Progress: "head evaluation", LearningRate: p.LearningRate,
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			rows := batchRows(trn.n, batch, step, p.Seed)
			x := tensors.FromShape(shapes.Make(tensorsDType, batch, trn.dim))
			y := make([]int, batch)
			tensors.MutableFlatData(x, func(flat []float32) {
				for k, r := range rows {
					copy(flat[k*trn.dim:], trn.row(r))
					y[k] = trn.y[r]
				}
			})
			return train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{labelsTensor(h, y)}}, nil
		},
		Validate: func(context.Context) (map[string]float64, error) {
			c, ts, err := choose()
			if err != nil {
				return nil, err
			}
			m := map[string]float64{"acc": ts.Acc, "train_eval_loss": ts.LogLoss, "weight_decay": c.decay}
			if val.n > 0 {
				m["val_loss"], m["val_loss_clipped"], m["val_acc"] = c.val.LogLoss, c.val.LogLossClipped, c.val.Acc
			}
			return m, nil
		},
	}
	res, err := loop.Run(ctx)
	if err != nil {
		return gridChoice{}, res, err
	}
	if err := tasks.LoadWeights(st, loop.BestDir()); err != nil {
		return gridChoice{}, res, err
	}
	c, _, err := choose()
	if err != nil {
		return gridChoice{}, res, err
	}
	if val.n == 0 {
		env.Logf("head: lowest training loss after step %d, weight decay %g", res.BestEpoch*every, c.decay)
		return c, res, nil
	}
	env.Logf("head: best after step %d, weight decay %g: validation log loss %.4f, accuracy %.4f",
		res.BestEpoch*every, c.decay, c.val.LogLoss, c.val.Acc)
	return c, res, nil
}

// headStore returns a store holding a linear classifier as the head's
// variables, with the standardization it was trained on.
func headStore(h Head, l linear, mean, inv []float32) (*model.Store, error) {
	st := model.NewStore()
	w, b := h.vars(st.RootScope())
	mv, iv := h.norm(st.RootScope())
	wt := tensors.FromShape(shapes.Make(tensorsDType, h.Dim, h.Units()))
	tensors.MutableFlatData(wt, func(flat []float32) { copy(flat, toFloat32(l.w)) })
	err := errors.Join(w.SetValue(wt), b.SetValue(tensors.FromValue(toFloat32(l.b))),
		mv.SetValue(tensors.FromValue(mean)), iv.SetValue(tensors.FromValue(inv)))
	if err != nil {
		return nil, fmt.Errorf("head variables: %w", err)
	}
	return st, nil
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
