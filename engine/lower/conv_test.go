package lower

import (
	"testing"

	et "github.com/dl4img/dl4img/engine/internal/enginetest"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// TestConvGeneralMatchesNative compares the lowered convolution with the
// backend's own direct loop, outputs and gradients, over the configurations
// that real backbones and their gradients use.
func TestConvGeneralMatchesNative(t *testing.T) {
	native := et.GoBackend(t)
	inner := &spyBackend{Backend: et.GoBackend(t)}
	fast := Wrap(inner)
	for _, c := range et.ConvCases {
		t.Run(c.Name, func(t *testing.T) {
			inner.native = 0
			// Tensors are bound to the backend that first uses them.
			want := et.ConvResults(t, native, c)
			got := et.ConvResults(t, fast, c)
			for i, name := range []string{"y", "dx", "dkernel"}[:len(want)] {
				if err := et.Close32(got[i], want[i], 1e-5); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if inner.native > 0 {
				t.Errorf("%d ConvGeneral ops reached the inner backend", inner.native)
			}
		})
	}
}

// TestWrapOnlyGo: XLA and already wrapped backends pass through.
func TestWrapOnlyGo(t *testing.T) {
	b := et.GoBackend(t)
	w := Wrap(b)
	if w == b || Wrap(w) != w {
		t.Errorf("Wrap(go) should wrap once")
	}
	if !IsGo(w) || w.Name() != b.Name() {
		t.Errorf("wrapped backend name %q, want %q", w.Name(), b.Name())
	}
}

// spyBackend counts the ConvGeneral and ReduceWindow ops that reach it, so
// the tests know the lowering ran rather than a fallback.
type spyBackend struct {
	compute.Backend
	native int
}

func (b *spyBackend) Builder(name string) compute.Builder {
	return &spyBuilder{Builder: b.Backend.Builder(name), spy: b}
}

type spyBuilder struct {
	compute.Builder
	spy *spyBackend
}

func (b *spyBuilder) Main() compute.Function {
	return &spyFunction{Function: b.Builder.Main(), spy: b.spy}
}

type spyFunction struct {
	compute.Function
	spy *spyBackend
}

func (f *spyFunction) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int, groups, batchGroups int) (compute.Value, error) {
	f.spy.native++
	return f.Function.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations, groups, batchGroups)
}

func (f *spyFunction) ReduceWindow(x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	f.spy.native++
	return f.Function.ReduceWindow(x, op, window, strides, inputDilations, windowDilations, paddings)
}

// TestTrainingRoundTrip runs training steps on the wrapped backend: the
// updated variables are outputs of one execution fed to the next, which
// GoMLX only allows for buffers of the same backend.
func TestTrainingRoundTrip(t *testing.T) {
	backend := Wrap(et.GoBackend(t))
	store := model.NewStore()
	modelFn := func(scope *model.Scope, x *Node) *Node {
		k := scope.VariableWithValue("kernel", et.RandomTensor([]int{3, 3, 2, 4}, 5))
		y := Convolve(x, k.NodeValue(x.Graph())).PadSame().Done()
		return ReduceSum(y, 1, 2)
	}
	lossFn := func(labels, out []*Node) *Node { return ReduceAllMean(Square(Sub(out[0], labels[0]))) }
	trainer := train.NewTrainer(backend, store, modelFn, lossFn, optimizer.Adam().LearningRate(0.01).Done(), nil, nil)
	var first, last float32
	for i := range 5 {
		m, err := trainer.TrainStep(train.Batch{
			Inputs: []*tensors.Tensor{et.RandomTensor([]int{2, 6, 6, 2}, 6)},
			Labels: []*tensors.Tensor{et.RandomTensor([]int{2, 4}, 7)}})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		last = m[0].Value().(float32)
		if i == 0 {
			first = last
		}
	}
	if !(last < first) {
		t.Errorf("loss %g -> %g: training on the wrapped backend does not learn", first, last)
	}
}
