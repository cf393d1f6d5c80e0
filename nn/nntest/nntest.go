// Package nntest holds test helpers for the packages that build models from
// nn: running a model function once and collecting its outputs and the
// gradients of every trainable variable, so that the same model on two
// backends (the engine, and the Go backend without it) can be compared, and
// timing training steps in benchmarks.
package nntest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/engine/lower"
	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/netbench"
)

// WeightedSum is sum(y * r) for a fixed pseudo-random r in [-1, 1) of y's
// shape (seeded by salt): a scalar whose gradient reaches every output.
func WeightedSum(y *Node, salt uint64) *Node {
	rng := rand.New(rand.NewPCG(salt, 8))
	r := make([]float32, y.Shape().Size())
	for i := range r {
		r[i] = rng.Float32()*2 - 1
	}
	return ReduceAllSum(Mul(y, Const(y.Graph(), tensors.FromFlatDataAndDimensions(r, y.Shape().Dimensions...))))
}

// OutputsAndGrads runs fn on x once, on a store seeded with seed (so two
// calls start from the same weights and draw the same dropout masks), in
// training mode or not. It returns fn's outputs under names and the
// gradients of the sum of their WeightedSums with respect to every
// trainable variable, under the variables' paths.
func OutputsAndGrads(tb testing.TB, backend compute.Backend, seed int64, training bool, names []string,
	fn func(scope *model.Scope, x *Node) []*Node, x *tensors.Tensor) map[string][]float32 {
	tb.Helper()
	st, err := nn.NewSeededStore(seed)
	if err != nil {
		tb.Fatal(err)
	}
	keys := append([]string(nil), names...)
	outs, err := model.CallOnceN(backend, st, func(scope *model.Scope, x *Node) []*Node {
		g := x.Graph()
		st.SetTraining(g, training)
		ys := fn(scope, x)
		if len(ys) != len(names) {
			tb.Fatalf("fn returned %d outputs for %d names", len(ys), len(names))
		}
		loss := ScalarZero(g, ys[0].DType())
		for i, y := range ys {
			loss = Add(loss, WeightedSum(y, uint64(i+7)))
		}
		var vars []*Node
		for v := range st.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				keys = append(keys, v.Path())
				vars = append(vars, v.NodeValue(g))
			}
		}
		return append(ys, Gradient(loss, vars...)...)
	}, x)
	if err != nil {
		tb.Fatal(err)
	}
	res := make(map[string][]float32, len(outs))
	for i, o := range outs {
		res[keys[i]] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

// MaxRelDiff is max|got-want| / max(1, max|want|); NaN if any difference is.
func MaxRelDiff(got, want []float32) float64 {
	scale, diff := 1.0, 0.0
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.NaN()
		}
		diff = max(diff, d)
	}
	return diff / scale
}

// AssertAgree reports every entry of want that got lacks, has another size
// or differs in by more than tol (MaxRelDiff). minEntries guards against
// comparing nothing.
func AssertAgree(tb testing.TB, got, want map[string][]float32, tol float64, minEntries int) {
	tb.Helper()
	if len(got) != len(want) || len(want) < minEntries {
		tb.Fatalf("got %d outputs and gradients, want %d (>= %d)", len(got), len(want), minEntries)
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			tb.Errorf("%s: missing", name)
		case len(g) != len(w):
			tb.Errorf("%s: %d values, want %d", name, len(g), len(w))
		case !(MaxRelDiff(g, w) <= tol):
			tb.Errorf("%s: relative difference %.3g > %g", name, MaxRelDiff(g, w), tol)
		}
	}
}

// BenchTrainSteps times tr's training steps on batch for b: one untimed
// step (graph compilation), then b.N steps, reporting CPU seconds per step
// (wall time on a shared machine is noisy).
func BenchTrainSteps(b *testing.B, tr *train.Trainer, batch train.Batch) {
	b.Helper()
	if _, err := tr.TrainStep(batch); err != nil {
		b.Fatal(err)
	}
	cpu := netbench.ProcessCPU()
	for b.Loop() {
		if _, err := tr.TrainStep(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((netbench.ProcessCPU()-cpu).Seconds()/float64(b.N), "cpu-s/step")
}

// EngineAgrees runs fn (as OutputsAndGrads does) with the engine and on the
// Go backend with the lowering alone, and fails unless the outputs and
// gradients agree within tol and the engine ran every convolution and pool
// on oneDNN.
func EngineAgrees(tb testing.TB, seed int64, training bool, names []string,
	fn func(scope *model.Scope, x *Node) []*Node, x *tensors.Tensor, tol float64) {
	tb.Helper()
	plain, err := compute.NewWithConfig("go:ops_sequential")
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.Wrap(plain)
	if err != nil {
		tb.Fatal(err)
	}
	other, err := compute.NewWithConfig("go:ops_sequential")
	if err != nil {
		tb.Fatal(err)
	}
	// A tensor binds to the first backend that uses it: each run gets a copy.
	clone := func() *tensors.Tensor {
		c, err := x.LocalClone()
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	got := OutputsAndGrads(tb, eng, seed, training, names, fn, clone())
	want := OutputsAndGrads(tb, lower.Wrap(other), seed, training, names, fn, clone())
	AssertAgree(tb, got, want, tol, len(names)+1)
	if s, ok := engine.StatsOf(eng); ok && (len(s.Kept) > 0 || len(s.Fallbacks) > 0) {
		tb.Errorf("not everything ran on oneDNN: %s", s)
	}
}
