// Package selftest is the built-in `selftest` job kind: a tiny GoMLX
// classifier on generated 2-D points, planned as generate → train →
// evaluate → submit, so the whole runner (DAG, checkpoints, resume, metrics,
// artifacts, submission) is exercised without any model package.
package selftest

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/tasks"
)

// Params of the selftest kind.
type Params struct {
	tasks.Common
	Samples         int `json:"samples" doc:"generated points (train+validation); the test set is a quarter of it"`
	Classes         int `json:"classes" doc:"number of point clusters to tell apart"`
	Hidden          int `json:"hidden" doc:"hidden units of each of the two dense layers"`
	CheckpointEvery int `json:"checkpoint_every" doc:"save a checkpoint every N training steps"`
}

// Validate checks the parameters.
func (p *Params) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	switch {
	case p.Samples < 10:
		return errors.New("parameter samples: must be >= 10")
	case p.Classes < 2:
		return errors.New("parameter classes: must be >= 2")
	case p.Hidden < 1:
		return errors.New("parameter hidden: must be >= 1")
	case p.CheckpointEvery < 1:
		return errors.New("parameter checkpoint_every: must be >= 1")
	case p.BatchSize < 1:
		return errors.New("parameter batch_size: must be >= 1")
	case p.Epochs < 1 || p.StepsPerEpoch < 1:
		return errors.New("parameters epochs and steps_per_epoch: must be >= 1")
	}
	return nil
}

func defaults() any {
	return &Params{
		Common: tasks.Common{Epochs: 5, StepsPerEpoch: 100, BatchSize: 64, LearningRate: 0.01,
			ValFraction: 0.2, Seed: 1},
		Samples: 3000, Classes: 3, Hidden: 32, CheckpointEvery: 50,
	}
}

// Register adds the selftest kinds to r.
func Register(r *tasks.Registry) {
	r.RegisterJob(tasks.JobKind{
		Name:      "selftest",
		Doc:       "tiny GoMLX classifier on generated 2-D points (generate → train → evaluate → submit); checks the runner end to end",
		NewParams: defaults,
		Headline:  "val_acc",
		Presets: map[string]map[string]any{
			"demo":  {"epochs": 5, "steps_per_epoch": 100},
			"quick": {"epochs": 2, "steps_per_epoch": 50, "samples": 1000},
		},
		Plan: func(any) ([]tasks.TaskSpec, error) {
			return []tasks.TaskSpec{
				{Name: "generate", Kind: "selftest.generate"},
				{Name: "train", Kind: "selftest.train", Deps: []string{"generate"}},
				{Name: "evaluate", Kind: "selftest.evaluate", Deps: []string{"train"}},
				{Name: "submit", Kind: "selftest.submit", Deps: []string{"train"}},
			}, nil
		},
	})
	r.RegisterTask("selftest.generate", generate)
	r.RegisterTask("selftest.train", trainTask)
	r.RegisterTask("selftest.evaluate", evaluate)
	r.RegisterTask("selftest.submit", submit)
}

func init() { Register(tasks.Default) }

func decode(raw json.RawMessage) (*Params, error) {
	p := defaults().(*Params)
	if err := tasks.Decode(raw, p); err != nil {
		return nil, err
	}
	return p, nil
}

// point is one example: features and its cluster.
type point struct {
	x, y  float32
	label int32
}

func dataPath(env tasks.Env, name string) string { return filepath.Join(env.JobDir(), "data", name) }

// generate writes train.csv and test.csv: Gaussian clusters on a circle,
// close enough to overlap a little so accuracy is high but not trivial.
func generate(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x5e1f7e57))
	sample := func(n int) []point {
		pts := make([]point, n)
		for i := range pts {
			c := rng.IntN(p.Classes)
			a := 2 * math.Pi * float64(c) / float64(p.Classes)
			pts[i] = point{float32(2*math.Cos(a) + rng.NormFloat64()), float32(2*math.Sin(a) + rng.NormFloat64()), int32(c)}
		}
		return pts
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"train.csv", p.Samples}, {"test.csv", p.Samples / 4}} {
		if err := ctx.Err(); err != nil {
			return err
		}
		pts := sample(f.n)
		if err := writePoints(dataPath(env, f.name), pts); err != nil {
			return err
		}
		env.Progress("generate", f.n, f.n)
	}
	return nil
}

func writePoints(path string, pts []point) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"x", "y", "label"})
		for _, p := range pts {
			cw.Write([]string{strconv.FormatFloat(float64(p.x), 'g', -1, 32), strconv.FormatFloat(float64(p.y), 'g', -1, 32),
				strconv.Itoa(int(p.label))})
		}
		cw.Flush()
		return cw.Error()
	})
}

func readPoints(path string) ([]point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var pts []point
	for i, r := range recs[1:] {
		if len(r) != 3 {
			return nil, fmt.Errorf("%s:%d: want 3 columns", path, i+2)
		}
		x, e1 := strconv.ParseFloat(r[0], 32)
		y, e2 := strconv.ParseFloat(r[1], 32)
		l, e3 := strconv.Atoi(r[2])
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+2, err)
		}
		pts = append(pts, point{float32(x), float32(y), int32(l)})
	}
	return pts, nil
}

// logits is the model: two dense ReLU layers and a linear output.
func logits(p *Params) func(scope *model.Scope, x *Node) *Node {
	return func(scope *model.Scope, x *Node) *Node {
		h := activation.Relu(layers.DenseWithBias(scope.In("dense0"), x, p.Hidden))
		h = activation.Relu(layers.DenseWithBias(scope.In("dense1"), h, p.Hidden))
		return layers.DenseWithBias(scope.In("out"), h, p.Classes)
	}
}

func batchTensors(pts []point, idx []int) (*tensors.Tensor, *tensors.Tensor) {
	xs := make([][]float32, len(idx))
	ys := make([][]int32, len(idx))
	for i, j := range idx {
		xs[i] = []float32{pts[j].x, pts[j].y}
		ys[i] = []int32{pts[j].label}
	}
	return tensors.FromValue(xs), tensors.FromValue(ys)
}

// newModel builds the store, loads the newest checkpoint in ckDir.
func newModel(env tasks.Env, p *Params, ckDir string) (*model.Store, *tasks.Checkpoints, error) {
	st := model.NewStore()
	if err := st.SetRNGStateFromSeed(p.Seed); err != nil {
		return nil, nil, err
	}
	ck, err := tasks.OpenCheckpoints(env, st, ckDir, 3)
	if err != nil {
		return nil, nil, err
	}
	return st, ck, nil
}

func ckDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "train", "checkpoints") }

func trainTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	all, err := readPoints(dataPath(env, "train.csv"))
	if err != nil {
		return err
	}
	nVal := int(float64(len(all)) * p.ValFraction)
	val, trn := all[:nVal], all[nVal:]
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	st, ck, err := newModel(env, p, ckDir(env))
	if err != nil {
		return err
	}
	trainer := train.NewTrainer(backend, st, logits(p), loss.SparseCategoricalCrossEntropyLogits,
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	eval, err := newEval(backend, st, p)
	if err != nil {
		return err
	}
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: p.Epochs, StepsPerEpoch: p.StepsPerEpoch, CheckpointEvery: p.CheckpointEvery,
		// The loop sets the rate, so a run resumed after `jobs retry --set
		// learning_rate=…` trains at the new one, not the checkpoint's.
		LearningRates: []float64{p.LearningRate},
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			epoch, i := step/p.StepsPerEpoch, step%p.StepsPerEpoch
			perm := rand.New(rand.NewPCG(uint64(p.Seed), uint64(epoch))).Perm(len(trn))
			idx := make([]int, p.BatchSize)
			for k := range idx {
				idx[k] = perm[(i*p.BatchSize+k)%len(perm)]
			}
			x, y := batchTensors(trn, idx)
			return train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}}, nil
		},
		Validate: func(context.Context) (map[string]float64, error) {
			// Fixed sets, so the curves do not depend on where a run was
			// interrupted.
			trLoss, trAcc, err := eval.run(trn[:min(len(trn), 1000)])
			if err != nil {
				return nil, err
			}
			m := map[string]float64{"train_eval_loss": trLoss, "acc": trAcc}
			if len(val) > 0 {
				if m["val_loss"], m["val_acc"], err = eval.run(val); err != nil {
					return nil, err
				}
			}
			return m, nil
		},
	}
	_, err = loop.Run(ctx)
	return err
}

// evaluator computes mean loss and accuracy with the current weights.
type evaluator struct{ exec *model.Exec }

func newEval(backend compute.Backend, st *model.Store, p *Params) (*evaluator, error) {
	fn := logits(p)
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x, y *Node) (*Node, *Node) {
		lg := fn(scope, x)
		l := ReduceAllMean(loss.SparseCategoricalCrossEntropyLogits([]*Node{y}, []*Node{lg}))
		pred := ConvertDType(ArgMax(lg, -1), dtypes.Int32)
		acc := ReduceAllMean(ConvertDType(Equal(pred, Reshape(y, -1)), dtypes.Float32))
		return l, acc
	})
	if err != nil {
		return nil, err
	}
	return &evaluator{exec}, nil
}

func (e *evaluator) run(pts []point) (lossV, acc float64, err error) {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	x, y := batchTensors(pts, idx)
	l, a, err := e.exec.Call2(x, y)
	if err != nil {
		return 0, 0, err
	}
	return float64(tensors.ToScalar[float32](l)), float64(tensors.ToScalar[float32](a)), nil
}

// predict returns the predicted class of each point with the newest weights.
func predict(env tasks.Env, p *Params, pts []point) ([]int32, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, err
	}
	st, _, err := newModel(env, p, ckDir(env))
	if err != nil {
		return nil, err
	}
	if optimizer.GetGlobalStep(st) == 0 {
		return nil, fmt.Errorf("no trained checkpoint in %s", ckDir(env))
	}
	fn := logits(p)
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x *Node) *Node {
		return ConvertDType(ArgMax(fn(scope, x), -1), dtypes.Int32)
	})
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	x, _ := batchTensors(pts, idx)
	out, err := exec.Call1(x)
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[int32](out), nil
}

// predictTest predicts the generated test set with the trained weights.
func predictTest(env tasks.Env, raw json.RawMessage) (*Params, []point, []int32, error) {
	p, err := decode(raw)
	if err != nil {
		return nil, nil, nil, err
	}
	test, err := readPoints(dataPath(env, "test.csv"))
	if err != nil {
		return nil, nil, nil, err
	}
	pred, err := predict(env, p, test)
	return p, test, pred, err
}

func evaluate(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, test, pred, err := predictTest(env, raw)
	if err != nil {
		return err
	}
	right := 0
	for i, l := range pred {
		if l == test[i].label {
			right++
		}
	}
	acc := float64(right) / float64(len(test))
	env.Logf("test accuracy %.4f on %d points", acc, len(test))
	return env.Metrics(p.Epochs*p.StepsPerEpoch, p.Epochs, map[string]float64{"test_acc": acc})
}

// submit writes submission.csv (id,label) in the competition style.
func submit(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, _, pred, err := predictTest(env, raw)
	if err != nil {
		return err
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	path := filepath.Join(out, "submission.csv")
	err = tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "label"})
		for i, l := range pred {
			cw.Write([]string{strconv.Itoa(i), strconv.Itoa(int(l))})
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return err
	}
	return env.Artifact("submission", path)
}
