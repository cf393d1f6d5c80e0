package tasks_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// A loss that becomes NaN stops the run at once with the one-line message;
// the NaN is recorded, the checkpoint whose weights produced it is set
// aside, and a new loop (a retry) resumes from the one before.
func TestLoopStopsOnDivergence(t *testing.T) {
	for _, c := range []struct {
		name      string
		poison    int // the 0-based step whose batch holds a NaN
		valNaN    int // the epoch whose val_loss is NaN (0: none)
		want      string
		resumeAt  int
		nanMetric string
	}{
		// The NaN input gives a NaN loss at step 8: the loop cannot tell
		// it from weights gone bad, so the step-7 checkpoint, whose
		// weights gave that loss, is set aside too.
		{name: "train loss", poison: 7, want: "diverged at step 8 (epoch 2): loss is NaN; last finite checkpoint at step 6; try a lower learning_rate (now 0.1)",
			resumeAt: 6, nanMetric: "loss"},
		{name: "val loss", poison: -1, valNaN: 2, want: "diverged at step 10 (epoch 2): val_loss is NaN; last finite checkpoint at step 9; try a lower learning_rate (now 0.1)",
			resumeAt: 9, nanMetric: "val_loss"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := taskstest.New(t, "train")
			script := []float64{1.0, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3, 0.2, 0.1, 0.05}
			if c.valNaN > 0 {
				script[c.valNaN-1] = math.NaN()
			}
			loop, _ := newLoop(t, env, script)
			loop.CheckpointEvery = 1
			inner := loop.Batch
			loop.Batch = func(ctx context.Context, step int) (train.Batch, error) {
				b, err := inner(ctx, step)
				if step == c.poison {
					b.Inputs[0] = tensors.FromValue([][]float32{{float32(math.NaN())}, {2}, {1}})
				}
				return b, err
			}
			_, err := loop.Run(context.Background())
			var d *tasks.DivergedError
			if !errors.As(err, &d) || err.Error() != c.want {
				t.Fatalf("error %v\nwant %s", err, c.want)
			}
			vals := env.Values(c.nanMetric)
			if len(vals) == 0 || !math.IsNaN(vals[len(vals)-1]) {
				t.Fatalf("%s values %v: the NaN is not recorded", c.nanMetric, vals)
			}
			// The retry: a new loop over the same directory, at a lower rate.
			loop2, st2 := newLoop(t, env, []float64{1.0, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3, 0.2, 0.1, 0.05})
			if s := int(optimizer.GetGlobalStep(st2)); s != c.resumeAt {
				t.Fatalf("retry resumed at step %d, want %d", s, c.resumeAt)
			}
			loop2.LearningRates = []float64{0.01}
			if _, err := loop2.Run(context.Background()); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if w := weight(t, st2); math.IsNaN(float64(w)) {
				t.Fatal("retry trained NaN weights")
			}
			kept, _ := filepath.Glob(filepath.Join(env.Dir(), "ck", "*.diverged"))
			if c.valNaN == 0 && len(kept) != 2 {
				t.Fatalf("set-aside checkpoint files %v, want the step-7 checkpoint's two", kept)
			}
		})
	}
}

// An absurd learning rate: the loss overflows, or explodes to over a
// million times its first value, within a few steps; the message names the
// rate to lower.
func TestLoopDivergesWithHugeLearningRate(t *testing.T) {
	for _, c := range []struct {
		lr   float64
		want string
	}{
		{1e30, `^diverged at step [2-5] \(epoch 1\): loss is (NaN|Inf); last finite checkpoint at step 0; try a lower learning_rate \(now 1e\+30\)$`},
		{1e4, `^diverged at step [2-5] \(epoch 1\): loss is \S+, over a million times its first value \(\S+\); last finite checkpoint at step 0; try a lower learning_rate \(now 10000\)$`},
	} {
		env := taskstest.New(t, "train")
		loop, _ := newLoop(t, env, make([]float64, 10))
		loop.LearningRates = []float64{c.lr}
		_, err := loop.Run(context.Background())
		var d *tasks.DivergedError
		if !errors.As(err, &d) || !regexp.MustCompile(c.want).MatchString(err.Error()) {
			t.Fatalf("learning rate %g: %v", c.lr, err)
		}
	}
}

// flakyEnv fails recording the metrics of one epoch, once: the database
// went away after the epoch's checkpoint was saved.
type flakyEnv struct {
	*taskstest.Env
	epoch  int
	failed bool
}

func (f *flakyEnv) Metrics(step, epoch int, values map[string]float64) error {
	if epoch == f.epoch && !f.failed {
		f.failed = true
		return errors.New("database unreachable")
	}
	return f.Env.Metrics(step, epoch, values)
}

// An epoch's metrics are recorded exactly once whatever stops the run
// between its checkpoint and its record: the resumed run records them from
// the checkpoint, and the epoch timing is not measured twice.
func TestLoopRecordsEpochMetricsOnce(t *testing.T) {
	env := taskstest.New(t, "train")
	script := []float64{1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}
	loop, _ := newLoop(t, env, script)
	loop.Env = &flakyEnv{Env: env, epoch: 2}
	if _, err := loop.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Fatalf("first run: %v", err)
	}
	if n := len(env.Values("epoch_seconds")); n != 1 {
		t.Fatalf("%d epochs recorded before the failure, want 1", n)
	}
	loop2, st2 := newLoop(t, env, script)
	if s := optimizer.GetGlobalStep(st2); s != 10 {
		t.Fatalf("resumed at step %d, want 10 (epoch 2's checkpoint)", s)
	}
	res, err := loop2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(env.Values("epoch_seconds")); n != res.Steps/5 || n != 10 {
		t.Fatalf("%d epochs recorded for %d steps, want one each", n, res.Steps)
	}
	// A third start from the last checkpoint records nothing new.
	loop3, _ := newLoop(t, env, script)
	if _, err := loop3.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(env.Values("val_loss")); n != 10 {
		t.Fatalf("val_loss recorded %d times for 10 epochs", n)
	}
}
