package tasks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// Loop is the training loop every model kind shares: steps with
// deterministic batches, periodic checkpoints, per-epoch metrics, a
// learning-rate schedule that reloads the best weights between phases (as
// the book does: Adam 1e-3 until validation stops improving, then 1e-4),
// early stopping, and resume after a crash or an interruption.
//
// Its state (phase, best value, patience counter) is kept in the model
// store's parameters, so it is saved and restored with each checkpoint.
//
// A training or validation loss that becomes NaN or infinite, or a
// training loss that explodes, ends the run at once with a DivergedError,
// after setting aside the checkpoints that hold the bad weights.
type Loop struct {
	Env         Env
	Store       *model.Store
	Trainer     *train.Trainer
	Checkpoints *Checkpoints
	// Epochs and StepsPerEpoch bound the run.
	Epochs, StepsPerEpoch int
	// CheckpointEvery is in steps (default: once per epoch).
	CheckpointEvery int
	// Batch returns the batch of a global step. It must depend only on the
	// step (and the seed), so a resumed run sees the data an uninterrupted
	// one would have seen.
	Batch func(ctx context.Context, step int) (train.Batch, error)
	// Validate returns epoch-end metrics with the current weights, e.g.
	// val_loss, val_acc, val_seq_acc. Optional.
	Validate func(ctx context.Context) (map[string]float64, error)
	// Monitor names the metric that decides the best epoch (default
	// val_loss if Validate reports it, else loss). Names containing
	// "loss" or "err" are better when lower.
	Monitor string
	// LearningRates are the schedule's phases. With Patience > 0, when
	// Monitor has not improved for Patience epochs the loop reloads the
	// best weights and moves to the next rate; after the last, it stops.
	LearningRates []float64
	Patience      int
	// Progress labels the progress bar (default "epoch").
	Progress string

	epochMetrics map[string]float64 // the last epoch's, for the Pruner
	// LearningRate is the learning_rate parameter, which a divergence
	// message names (default LearningRates[0], else the optimizer's
	// current rate).
	LearningRate float64
}

// Store parameter keys for the loop's own state.
const (
	paramPhase = "/dl4img/phase"
	paramBest  = "/dl4img/best"
	paramBad   = "/dl4img/bad_epochs"
	paramStop  = "/dl4img/stopped"
	// paramPruned holds why a sweep pruned the run, so that a resumed
	// run ends the same way instead of training on.
	paramPruned = "/dl4img/pruned"
	paramFirst  = "/dl4img/first_loss"
	// paramEpoch holds the last epoch's metrics ("STEP EPOCH name=value
	// …"): they are saved with the epoch's checkpoint and recorded after
	// it, and again when a run resumes from it (the store skips a value it
	// already has), so a kill between the two neither loses nor repeats them.
	paramEpoch = "/dl4img/epoch_metrics"
)

// explosion is how many times its first value (and at least how large) a
// finite training loss must be to count as diverged: by then the weights
// are finite but useless, and a retry that resumed from a checkpoint
// saved after it would diverge again whatever its learning rate.
const explosion = 1e6

// LoopResult summarizes a finished run.
type LoopResult struct {
	Steps     int
	BestEpoch int
	Best      float64
	Stopped   bool // early stopping ended the run
}

func paramOr[T any](st *model.Store, key string, def T) T {
	v, ok := st.GetParam(key)
	if !ok {
		return def
	}
	if t, ok := v.(T); ok {
		return t
	}
	return def
}

// BestDir is where the loop keeps the weights of the best epoch.
func (l *Loop) BestDir() string { return filepath.Join(l.Checkpoints.Dir(), "best") }

// Run trains until the end of the last epoch, early stopping, or ctx is
// done (then it saves a checkpoint and returns ctx's error).
func (l *Loop) Run(ctx context.Context) (LoopResult, error) {
	if l.Epochs < 1 || l.StepsPerEpoch < 1 {
		return LoopResult{}, errors.New("epochs and steps_per_epoch must be >= 1")
	}
	every := l.CheckpointEvery
	if every <= 0 {
		every = l.StepsPerEpoch
	}
	label := l.Progress
	if label == "" {
		label = "epoch"
	}
	st := l.Store
	total := l.Epochs * l.StepsPerEpoch
	step := int(optimizer.GetGlobalStep(st))
	if step > 0 {
		l.Env.Logf("resuming from checkpoint at step %d of %d", step, total)
	}
	if err := l.recordEpoch(); err != nil {
		return l.result(step), err
	}
	if paramOr(st, paramStop, false) {
		return l.result(step), l.prunedError()
	}
	lrSet := math.NaN()
	saved := step
	var lossSum float64
	var lossN int
	epochStart := time.Now()
	for step < total {
		if err := ctx.Err(); err != nil {
			if step > saved {
				if serr := l.Checkpoints.Save(step); serr != nil {
					return l.result(step), errors.Join(err, serr)
				}
			}
			return l.result(step), err
		}
		if lr := l.rate(); lr > 0 && lr != lrSet {
			if err := setLearningRate(st, lr); err != nil {
				return l.result(step), err
			}
			lrSet = lr
		}
		epoch, i := step/l.StepsPerEpoch, step%l.StepsPerEpoch
		batch, err := l.Batch(ctx, step)
		if err != nil {
			if ctx.Err() != nil {
				continue // checkpoint and return at the top
			}
			return l.result(step), fmt.Errorf("batch of step %d: %w", step, err)
		}
		ms, err := l.Trainer.TrainStep(batch)
		if err != nil {
			return l.result(step), fmt.Errorf("train step %d: %w", step, err)
		}
		if len(ms) > 0 {
			if v, ok := scalar(ms[0]); ok {
				first := paramOr(st, paramFirst, math.NaN())
				if !finite(v) || v > explosion*math.Max(first, 1) {
					// The weights after `step` updates gave this loss: the
					// checkpoint of that step is no use either.
					return l.result(step), l.diverged(step+1, epoch+1, "loss", v, step, map[string]float64{"loss": v})
				}
				if math.IsNaN(first) {
					st.SetParam(paramFirst, v)
				}
				lossSum += v
				lossN++
			}
		}
		step++
		l.Env.Progress(fmt.Sprintf("%s %d/%d", label, epoch+1, l.Epochs), i+1, l.StepsPerEpoch)
		endOfEpoch := step%l.StepsPerEpoch == 0
		if endOfEpoch {
			stop, err := l.endEpoch(ctx, step, epoch+1, lossSum, lossN, time.Since(epochStart))
			if err != nil {
				return l.result(step), err
			}
			if !stop && step < total {
				if stop, err = l.prune(epoch + 1); err != nil {
					return l.result(step), err
				}
			}
			lossSum, lossN, epochStart = 0, 0, time.Now()
			lrSet = math.NaN() // a phase change may have reloaded weights
			if stop {
				st.SetParam(paramStop, true)
				if err := l.Checkpoints.Save(step); err != nil {
					return l.result(step), err
				}
				if err := l.recordEpoch(); err != nil {
					return l.result(step), err
				}
				if err := l.prunedError(); err != nil {
					return l.result(step), err
				}
				l.Env.Logf("early stopping after epoch %d", epoch+1)
				return l.result(step), nil
			}
		}
		if step%every == 0 || step == total || endOfEpoch {
			if err := l.Checkpoints.Save(step); err != nil {
				return l.result(step), err
			}
			saved = step
			if endOfEpoch {
				if err := l.recordEpoch(); err != nil {
					return l.result(step), err
				}
			}
		}
	}
	return l.result(step), nil
}

// prune asks the Env, when it is a Pruner, whether to stop after epoch;
// a yes is kept in the store's parameters (saved with the checkpoint).
func (l *Loop) prune(epoch int) (bool, error) {
	p, ok := l.Env.(Pruner)
	if !ok {
		return false, nil
	}
	stop, reason, err := p.Prune(epoch, l.epochMetrics)
	if err != nil || !stop {
		return false, err
	}
	l.Store.SetParam(paramPruned, fmt.Sprintf("epoch %d: %s", epoch, reason))
	return true, nil
}

// prunedError is the error of a run a sweep pruned, nil for any other.
func (l *Loop) prunedError() error {
	if why := paramOr(l.Store, paramPruned, ""); why != "" {
		return fmt.Errorf("%w after %s", ErrPruned, why)
	}
	return nil
}

func (l *Loop) result(step int) LoopResult {
	return LoopResult{Steps: step, Best: paramOr(l.Store, paramBest, math.NaN()),
		BestEpoch: paramOr(l.Store, paramBest+"_epoch", 0), Stopped: paramOr(l.Store, paramStop, false)}
}

// rate is the current phase's learning rate (0: leave the optimizer's).
func (l *Loop) rate() float64 {
	if len(l.LearningRates) == 0 {
		return 0
	}
	p := paramOr(l.Store, paramPhase, 0)
	return l.LearningRates[min(p, len(l.LearningRates)-1)]
}

// endEpoch computes the epoch's metrics (kept in paramEpoch, recorded once
// its checkpoint is saved), tracks the best weights and moves the schedule.
// It reports whether training should stop.
func (l *Loop) endEpoch(ctx context.Context, step, epoch int, lossSum float64, lossN int, took time.Duration) (bool, error) {
	m := map[string]float64{"epoch_seconds": took.Seconds()}
	if lossN > 0 {
		m["loss"] = lossSum / float64(lossN)
	}
	if lr := l.rate(); lr > 0 {
		m["lr"] = lr
	}
	if l.Validate != nil {
		vm, err := l.Validate(ctx)
		if err != nil {
			return false, fmt.Errorf("validate after epoch %d: %w", epoch, err)
		}
		for k, v := range vm {
			m[k] = v
		}
	}
	l.epochMetrics = m
	l.logEpoch(epoch, m)
	for _, k := range sortedKeys(m) {
		if v := m[k]; strings.Contains(k, "loss") && !finite(v) {
			return false, l.diverged(step, epoch, k, v, step, m)
		}
	}
	l.Store.SetParam(paramEpoch, encodeEpoch(step, epoch, m))
	monitor := l.Monitor
	if monitor == "" {
		monitor = "loss"
		if _, ok := m["val_loss"]; ok {
			monitor = "val_loss"
		}
	}
	v, ok := m[monitor]
	if !ok {
		return false, fmt.Errorf("monitored metric %q was not computed", monitor)
	}
	st := l.Store
	best := paramOr(st, paramBest, math.NaN())
	lower := strings.Contains(monitor, "loss") || strings.Contains(monitor, "err")
	if math.IsNaN(best) || (lower && v < best) || (!lower && v > best) {
		st.SetParam(paramBest, v)
		st.SetParam(paramBest+"_epoch", epoch)
		st.SetParam(paramBad, 0)
		return false, SaveWeights(st, l.BestDir())
	}
	bad := paramOr(st, paramBad, 0) + 1
	st.SetParam(paramBad, bad)
	if l.Patience <= 0 || bad < l.Patience {
		return false, nil
	}
	phase := paramOr(st, paramPhase, 0) + 1
	if phase >= len(l.LearningRates) {
		return true, nil
	}
	l.Env.Logf("%s has not improved for %d epochs: reloading the best weights (epoch %d), learning rate %g",
		monitor, bad, paramOr(st, paramBest+"_epoch", 0), l.LearningRates[phase])
	if err := LoadWeights(st, l.BestDir()); err != nil {
		return false, err
	}
	st.SetParam(paramPhase, phase)
	st.SetParam(paramBad, 0)
	return false, nil
}

// encodeEpoch writes an epoch's metrics as "STEP EPOCH name=value …"
// (strconv's 'g' round-trips every float64, NaN and ±Inf included).
func encodeEpoch(step, epoch int, m map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d", step, epoch)
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, " %s=%s", k, strconv.FormatFloat(m[k], 'g', -1, 64))
	}
	return b.String()
}

// recordEpoch records the metrics kept in paramEpoch, if any.
func (l *Loop) recordEpoch() error {
	s := paramOr(l.Store, paramEpoch, "")
	f := strings.Fields(s)
	if len(f) < 2 {
		return nil
	}
	step, err1 := strconv.Atoi(f[0])
	epoch, err2 := strconv.Atoi(f[1])
	m := map[string]float64{}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("epoch metrics %q in the checkpoint: %w", s, err)
		}
		m[k] = x
	}
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("epoch metrics %q in the checkpoint: %w", s, err)
	}
	return l.Env.Metrics(step, epoch, m)
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (l *Loop) logEpoch(epoch int, m map[string]float64) {
	l.Env.Logf("epoch %d:%s", epoch, FormatMetrics(m))
}

// FormatMetrics writes metrics for a log line: " name=value" each, sorted.
func FormatMetrics(m map[string]float64) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, " %s=%.4g", k, m[k])
	}
	return b.String()
}

// scalar reads a loss; ok is false for a dtype it does not know.
func scalar(t *tensors.Tensor) (v float64, ok bool) {
	switch x := t.Value().(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// DivergedError is how a training loop whose loss became NaN or infinite
// ends (Keras' TerminateOnNaN, with what a user needs to go on), or whose
// training loss exploded (over a million times its first value). Its
// message is one line:
//
//	diverged at step N (epoch E): loss is NaN; last finite checkpoint at step M; try a lower learning_rate (now X)
//
// ("loss is Inf", "val_loss is NaN", "loss is 3.2e+20, over a million
// times its first value (1.1)").
type DivergedError struct {
	Step, Epoch  int
	Metric       string  // "loss", or the validation loss that went first
	Value        float64 // NaN, ±Inf, or the exploded training loss
	LastFinite   int     // step of the checkpoint a retry resumes from (0: the start)
	LearningRate float64
	First        float64 // the first training loss, for an explosion
}

func (e *DivergedError) Error() string {
	var v string
	switch {
	case math.IsNaN(e.Value):
		v = "NaN"
	case math.IsInf(e.Value, 1):
		v = "Inf"
	case math.IsInf(e.Value, -1):
		v = "-Inf"
	default:
		v = fmt.Sprintf("%.3g, over a million times its first value (%.3g)", e.Value, e.First)
	}
	return fmt.Sprintf("diverged at step %d (epoch %d): %s is %s; last finite checkpoint at step %d; try a lower learning_rate (now %g)",
		e.Step, e.Epoch, e.Metric, v, e.LastFinite, e.LearningRate)
}

// diverged ends a run whose metric became non-finite at step (in epoch):
// it records rec (the step's loss, or the whole epoch's metrics), sets
// aside the checkpoints from badFrom on (their weights gave the non-finite
// value, so a retry must not resume from them) and returns the
// DivergedError. Every checkpoint and metric before is kept.
func (l *Loop) diverged(step, epoch int, metric string, v float64, badFrom int, rec map[string]float64) error {
	e := &DivergedError{Step: step, Epoch: epoch, Metric: metric, Value: v, LearningRate: l.learningRate(),
		First: paramOr(l.Store, paramFirst, math.NaN())}
	errs := []error{l.Env.Metrics(step, epoch, rec)}
	last, err := l.Checkpoints.SetAsideFrom(badFrom)
	e.LastFinite = last
	if err := errors.Join(append(errs, err)...); err != nil {
		return fmt.Errorf("%w (and: %s)", e, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return e
}

// learningRate is the rate a divergence message names.
func (l *Loop) learningRate() float64 {
	switch {
	case l.LearningRate > 0:
		return l.LearningRate
	case len(l.LearningRates) > 0:
		return l.LearningRates[0]
	}
	if v := l.Store.GetVariable(model.JoinPath("/"+optimizer.Scope, optimizer.ParamLearningRate)); v != nil {
		if t, err := v.Value(); err == nil {
			if x, ok := scalar(t); ok {
				return x
			}
		}
	}
	return math.NaN()
}

func setLearningRate(st *model.Store, lr float64) error {
	v := optimizer.LearningRateVarWithValue(st.RootScope(), dtypes.Float32, lr)
	if err := v.SetValue(tensors.FromValue(float32(lr))); err != nil {
		return fmt.Errorf("set learning rate: %w", err)
	}
	return nil
}

// SaveWeights replaces the weights in dir by the store's current ones,
// through a temporary directory renamed into place.
func SaveWeights(st *model.Store, dir string) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("save weights: %w", err)
	}
	// A detached copy of the variables, so the live store's checkpoint
	// handler is not disturbed.
	cp := model.NewStore()
	for v := range st.IterVariables() {
		val, err := v.Value()
		if err != nil {
			return err
		}
		c, err := val.LocalClone()
		if err != nil {
			return err
		}
		cp.Scope(v.Scope()).VariableWithValue(v.Name(), c)
	}
	h, err := checkpoint.Build(cp).Dir(tmp).Keep(1).Done()
	if err != nil {
		return fmt.Errorf("save weights: %w", err)
	}
	if err := h.Save(); err != nil {
		return fmt.Errorf("save weights: %w", err)
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("save weights: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("save weights: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

// isWeight tells model variables (weights, batch-norm statistics) from the
// training state: global step and RNG (root scope), optimizer moments,
// metric accumulators.
func isWeight(scope string) bool {
	if scope == "/" {
		return false
	}
	for _, p := range []string{optimizer.Scope, optimizer.AdamDefaultScope, "metrics"} {
		if scope == "/"+p || strings.HasPrefix(scope, "/"+p+"/") {
			return false
		}
	}
	return true
}

// LoadWeights sets the model weights of st (not the optimizer's state or the
// global step) to those saved in dir.
func LoadWeights(st *model.Store, dir string) error {
	src := model.NewStore()
	if _, err := checkpoint.Build(src).Dir(dir).Immediate().Done(); err != nil {
		return fmt.Errorf("load weights from %s: %w", dir, err)
	}
	n := 0
	for v := range src.IterVariables() {
		if !isWeight(v.Scope()) {
			continue
		}
		dst := st.GetVariable(model.JoinPath(v.Scope(), v.Name()))
		if dst == nil {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return err
		}
		c, err := val.LocalClone()
		if err != nil {
			return err
		}
		if err := dst.SetValue(c); err != nil {
			return fmt.Errorf("load weights %s: %w", v.Name(), err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("load weights from %s: no matching variables", dir)
	}
	return nil
}
