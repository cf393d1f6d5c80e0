package tasks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// newLoop builds a one-weight regression and a Loop whose validation
// metric follows script (one value per epoch).
func newLoop(t *testing.T, env *taskstest.Env, script []float64) (*tasks.Loop, *model.Store) {
	t.Helper()
	backend, err := env.Backend()
	if err != nil {
		t.Fatal(err)
	}
	st := model.NewStore()
	st.SetRNGStateFromSeed(1)
	ck, err := tasks.OpenCheckpoints(env, st, filepath.Join(env.Dir(), "ck"), 3)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(scope *model.Scope, x *Node) *Node { return layers.DenseWithBias(scope.In("lin"), x, 1) }
	trainer := train.NewTrainer(backend, st, fn, loss.MeanSquaredError, optimizer.Adam().LearningRate(0.1).Done(), nil, nil)
	return &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: 10, StepsPerEpoch: 5, LearningRates: []float64{0.1, 0.01}, Patience: 2,
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			x := tensors.FromValue([][]float32{{1}, {2}, {float32(step % 3)}})
			y := tensors.FromValue([][]float32{{3}, {5}, {float32(2*(step%3) + 1)}})
			return train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}}, nil
		},
		Validate: func(context.Context) (map[string]float64, error) {
			e := int(optimizer.GetGlobalStep(st))/5 - 1
			return map[string]float64{"val_loss": script[e]}, nil
		},
	}, st
}

func weight(t *testing.T, st *model.Store) float32 {
	v := st.GetVariable("/lin/dense/weights")
	if v == nil {
		for x := range st.IterVariables() {
			t.Logf("variable %s %s", x.Scope(), x.Name())
		}
		t.Fatal("no /lin/dense/weights variable")
	}
	return tensors.MustCopyFlatData[float32](v.MustValue())[0]
}

func TestLoopScheduleReloadsBestAndStopsEarly(t *testing.T) {
	env := taskstest.New(t, "train")
	// Best at epoch 2; no improvement in 3,4 → phase 2 with the best
	// weights; no improvement in 5,6 → stop.
	script := []float64{1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.1, 0.1, 0.1, 0.1}
	loop, st := newLoop(t, env, script)
	var bestW float32
	loop.Validate = wrapValidate(loop.Validate, func(epoch int) {
		if epoch == 2 {
			bestW = weight(t, st)
		}
	}, st)
	res, err := loop.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Steps != 30 || res.BestEpoch != 2 || res.Best != 0.5 {
		t.Fatalf("result %+v, want stopped after epoch 6 with best 0.5 at epoch 2", res)
	}
	lrs := env.Values("lr")
	want := []float64{0.1, 0.1, 0.1, 0.1, 0.01, 0.01}
	if len(lrs) != len(want) {
		t.Fatalf("lr per epoch %v, want %v", lrs, want)
	}
	for i := range want {
		if lrs[i] != want[i] {
			t.Fatalf("lr per epoch %v, want %v", lrs, want)
		}
	}
	// The best weights were saved and load back exactly.
	st2 := model.NewStore()
	st2.Scope("/lin/dense").VariableWithValue("weights", [][]float32{{-7}})
	if err := tasks.LoadWeights(st2, loop.BestDir()); err != nil {
		t.Fatal(err)
	}
	if w := weight(t, st2); w != bestW {
		t.Fatalf("best weights %v, want the epoch-2 weights %v", w, bestW)
	}
}

func wrapValidate(v func(context.Context) (map[string]float64, error), after func(epoch int), st *model.Store) func(context.Context) (map[string]float64, error) {
	return func(ctx context.Context) (map[string]float64, error) {
		m, err := v(ctx)
		after(int(optimizer.GetGlobalStep(st)) / 5)
		return m, err
	}
}

func TestLoopResumesWithScheduleState(t *testing.T) {
	env := taskstest.New(t, "train")
	script := []float64{1.0, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3, 0.2, 0.1, 0.05}
	loop, st := newLoop(t, env, script)
	ctx, cancel := context.WithCancel(context.Background())
	inner := loop.Batch
	loop.Batch = func(c context.Context, step int) (train.Batch, error) {
		if step == 27 { // in epoch 6, after the phase change at epoch 4
			cancel()
		}
		return inner(c, step)
	}
	if _, err := loop.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if s := int(optimizer.GetGlobalStep(st)); s != 28 {
		t.Fatalf("stopped at step %d", s)
	}
	steps := env.CheckpointSteps()
	if steps[len(steps)-1] != 28 {
		t.Fatalf("no checkpoint at the interruption: %v", steps)
	}
	// A new process: everything rebuilt from the checkpoint directory.
	loop2, st2 := newLoop(t, env, script)
	if s := int(optimizer.GetGlobalStep(st2)); s != 28 {
		t.Fatalf("resumed at step %d, want 28", s)
	}
	res, err := loop2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 50 || res.Stopped || res.Best != 0.05 || res.BestEpoch != 10 {
		t.Fatalf("result %+v", res)
	}
	lrs := env.Values("lr")
	// Epochs 1-4 at 0.1, then 0.01 for 5-10 (6 was split by the restart).
	if len(lrs) != 10 || lrs[3] != 0.1 || lrs[4] != 0.01 || lrs[9] != 0.01 {
		t.Fatalf("lr per epoch %v", lrs)
	}
}

// pruningEnv is a task Env that a sweep prunes after epoch at.
type pruningEnv struct {
	*taskstest.Env
	at    int
	asked []int
}

func (e *pruningEnv) Prune(epoch int, m map[string]float64) (bool, string, error) {
	e.asked = append(e.asked, epoch)
	if _, ok := m["val_loss"]; !ok {
		return false, "", errors.New("no val_loss in the epoch's metrics")
	}
	return epoch == e.at, "weak", nil
}

func TestLoopPrunedStopsKeepsBestAndStaysPruned(t *testing.T) {
	script := []float64{1.0, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3, 0.2, 0.1, 0.05}
	env := &pruningEnv{Env: taskstest.New(t, "train"), at: 3}
	loop, _ := newLoop(t, env.Env, script)
	loop.Env = env
	res, err := loop.Run(context.Background())
	if !errors.Is(err, tasks.ErrPruned) || err.Error() != "pruned after epoch 3: weak" {
		t.Fatalf("run: %v", err)
	}
	if res.Steps != 15 || res.BestEpoch != 2 || len(env.Values("val_loss")) != 3 {
		t.Fatalf("result %+v, %d epochs recorded", res, len(env.Values("val_loss")))
	}
	if steps := env.CheckpointSteps(); steps[len(steps)-1] != 15 {
		t.Fatalf("checkpoints %v: none at the pruned epoch", steps)
	}
	if _, err := os.Stat(loop.BestDir()); err != nil {
		t.Fatalf("best weights: %v", err)
	}
	// Resumed (a crash before the worker recorded the outcome): pruned
	// again at once, without training or asking.
	loop2, st2 := newLoop(t, env.Env, script)
	loop2.Env = env
	if _, err := loop2.Run(context.Background()); !errors.Is(err, tasks.ErrPruned) {
		t.Fatalf("resumed run: %v", err)
	}
	if s := int(optimizer.GetGlobalStep(st2)); s != 15 || len(env.asked) != 3 {
		t.Fatalf("resumed run trained to step %d, asked %v", s, env.asked)
	}
	// Never asked at the last epoch: the run is complete then.
	env3 := &pruningEnv{Env: taskstest.New(t, "train"), at: 99}
	loop3, _ := newLoop(t, env3.Env, script)
	loop3.Env = env3
	if _, err := loop3.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(env3.asked) != 9 || env3.asked[8] != 9 {
		t.Fatalf("asked after epochs %v, want 1..9", env3.asked)
	}
}
