package goconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

func goBackend(tb testing.TB) compute.Backend {
	tb.Helper()
	b, err := compute.NewWithConfig("go:ops_sequential")
	if err != nil {
		tb.Fatalf("go backend: %v", err)
	}
	return b
}

// convCase is one ConvGeneral configuration: shapes are given in the
// layout that axes describes.
type convCase struct {
	name          string
	x, k          []int
	axes          ConvolveAxesConfig
	strides       []int
	pads          [][2]int
	inDil, kDil   []int
	groups        int
	skipGradients bool
}

var (
	nchw = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3}}
	nhwc = ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	// NCHW in, HWIO kernel, NHWC out: any axes config must work.
	mixed = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	// nn's channels-major layout [c, batch, h, w], HWIO kernels.
	cbhw = ConvolveAxesConfig{InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3}}
	ncw = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2}}
)

var convCases = []convCase{
	{name: "nchw 3x3 same", x: []int{2, 3, 7, 6}, k: []int{4, 3, 3, 3}, axes: nchw, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "nchw 3x3 valid", x: []int{2, 3, 7, 6}, k: []int{4, 3, 3, 3}, axes: nchw},
	{name: "nhwc 3x3 same", x: []int{2, 7, 6, 3}, k: []int{3, 3, 3, 5}, axes: nhwc, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "nhwc 5x3 valid", x: []int{2, 9, 8, 3}, k: []int{5, 3, 3, 4}, axes: nhwc},
	{name: "mixed layouts stride 2", x: []int{2, 3, 9, 8}, k: []int{3, 3, 3, 5}, axes: mixed, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}},
		skipGradients: true}, // GoMLX's VJP wants the input and output layouts alike
	{name: "1x1", x: []int{3, 8, 5, 5}, k: []int{6, 8, 1, 1}, axes: nchw},
	{name: "1x1 stride 2", x: []int{2, 4, 7, 8}, k: []int{6, 4, 1, 1}, axes: nchw, strides: []int{2, 2}},
	{name: "stride 2 same", x: []int{2, 3, 9, 8}, k: []int{4, 3, 3, 3}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "stride 3", x: []int{1, 2, 11, 10}, k: []int{3, 2, 3, 3}, axes: nchw, strides: []int{3, 3}},
	{name: "7x7 stride 2 pad 3", x: []int{2, 3, 16, 15}, k: []int{4, 3, 7, 7}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{3, 3}, {3, 3}}},
	{name: "stride 2x1", x: []int{2, 3, 9, 8}, k: []int{4, 3, 3, 2}, axes: nchw, strides: []int{2, 1}},
	{name: "dilation 2", x: []int{2, 3, 9, 9}, k: []int{4, 3, 3, 3}, axes: nchw, kDil: []int{2, 2}, pads: [][2]int{{2, 2}, {2, 2}}},
	{name: "dilation 3x1 even kernel", x: []int{2, 3, 11, 10}, k: []int{4, 3, 2, 3}, axes: nchw, kDil: []int{3, 1}},
	{name: "asymmetric padding", x: []int{2, 3, 7, 6}, k: []int{4, 3, 3, 3}, axes: nchw, pads: [][2]int{{0, 2}, {1, 0}}},
	{name: "even kernel", x: []int{2, 3, 8, 8}, k: []int{4, 3, 2, 4}, axes: nchw, pads: [][2]int{{0, 1}, {1, 2}}},
	{name: "groups 2", x: []int{2, 4, 6, 6}, k: []int{6, 2, 3, 3}, axes: nchw, groups: 2, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "depthwise", x: []int{2, 5, 7, 7}, k: []int{5, 1, 3, 3}, axes: nchw, groups: 5, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "depthwise stride 2 nhwc", x: []int{2, 8, 8, 4}, k: []int{3, 3, 1, 8}, axes: nhwc, groups: 4, strides: []int{2, 2}, pads: [][2]int{{0, 1}, {0, 1}}},
	{name: "kernel larger than input", x: []int{1, 2, 3, 3}, k: []int{3, 2, 7, 7}, axes: nchw, pads: [][2]int{{3, 3}, {3, 3}}},
	{name: "channel-major (small image, big kernel)", x: []int{3, 8, 4, 3}, k: []int{16, 8, 3, 3}, axes: nchw, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "channel-major stride 2", x: []int{2, 8, 5, 5}, k: []int{16, 8, 3, 3}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "cbhw channel-major", x: []int{8, 3, 4, 5}, k: []int{3, 3, 8, 16}, axes: cbhw, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "cbhw batch-major", x: []int{3, 2, 9, 9}, k: []int{3, 3, 3, 4}, axes: cbhw, pads: [][2]int{{1, 1}, {1, 1}}},
	{name: "batch 1", x: []int{1, 3, 6, 6}, k: []int{2, 3, 3, 3}, axes: nchw},
	{name: "input dilation", x: []int{2, 3, 5, 4}, k: []int{4, 3, 3, 3}, axes: nchw, inDil: []int{2, 2}, pads: [][2]int{{2, 2}, {1, 2}},
		skipGradients: true}, // GoMLX defines none: only a gradient has input dilation
	{name: "negative padding", x: []int{2, 3, 8, 8}, k: []int{4, 3, 3, 3}, axes: nchw, pads: [][2]int{{-1, 0}, {0, -2}}},
	{name: "1-D", x: []int{2, 3, 12}, k: []int{4, 3, 3}, axes: ncw, strides: []int{2}, pads: [][2]int{{1, 1}}},
}

// results runs op on backend: its output and, with grads, the gradients
// of a random projection of it with respect to every input.
func results(t *testing.T, backend compute.Backend, grads bool, op func(in []*Node) *Node, inputs ...*tensors.Tensor) []*tensors.Tensor {
	t.Helper()
	exec, err := NewExec(backend, func(in []*Node) []*Node {
		y := op(in)
		if !grads {
			return []*Node{y}
		}
		proj := Const(y.Graph(), randomTensor(y.Shape().Dimensions, 3))
		return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, proj)), in...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// convResults runs c on backend: the output and the gradients of a random
// projection of it with respect to x and the kernel.
func convResults(t *testing.T, backend compute.Backend, c convCase, x, k *tensors.Tensor) []*tensors.Tensor {
	t.Helper()
	return results(t, backend, !c.skipGradients, func(in []*Node) *Node {
		return ConvGeneral(in[0], in[1], c.axes, c.strides, c.pads, c.inDil, c.kDil, max(c.groups, 1), 1)
	}, x, k)
}

func randomTensor(dims []int, seed uint64) *tensors.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// TestConvGeneralMatchesNative compares the lowered convolution with the
// backend's own direct loop, outputs and gradients, over the configurations
// that real backbones and their gradients use.
func TestConvGeneralMatchesNative(t *testing.T) {
	native := goBackend(t)
	inner := &spyBackend{Backend: goBackend(t)}
	fast := Wrap(inner)
	for _, c := range convCases {
		t.Run(c.name, func(t *testing.T) {
			inner.native = 0
			// Tensors are bound to the backend that first uses them.
			want := convResults(t, native, c, randomTensor(c.x, 1), randomTensor(c.k, 2))
			got := convResults(t, fast, c, randomTensor(c.x, 1), randomTensor(c.k, 2))
			for i, name := range []string{"y", "dx", "dkernel"}[:len(want)] {
				if err := close32(got[i], want[i], 1e-5); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if inner.native > 0 {
				t.Errorf("%d ConvGeneral ops reached the inner backend", inner.native)
			}
		})
	}
}

// close32 compares two float32 tensors to a tolerance relative to the
// largest magnitude in want.
func close32(got, want *tensors.Tensor, tol float64) error {
	if !got.Shape().Equal(want.Shape()) {
		return fmt.Errorf("shape %s, want %s", got.Shape(), want.Shape())
	}
	g, w := tensors.MustCopyFlatData[float32](got), tensors.MustCopyFlatData[float32](want)
	scale := 1e-6
	for _, v := range w {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range w {
		if d := math.Abs(float64(g[i]-w[i])) / scale; d > tol || math.IsNaN(d) {
			return fmt.Errorf("element %d: %g, want %g (relative error %.2g)", i, g[i], w[i], d)
		}
	}
	return nil
}

// TestWrapOnlyGo: XLA and already wrapped backends pass through.
func TestWrapOnlyGo(t *testing.T) {
	b := goBackend(t)
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
	backend := Wrap(goBackend(t))
	store := model.NewStore()
	modelFn := func(scope *model.Scope, x *Node) *Node {
		k := scope.VariableWithValue("kernel", randomTensor([]int{3, 3, 2, 4}, 5))
		y := Convolve(x, k.NodeValue(x.Graph())).PadSame().Done()
		return ReduceSum(y, 1, 2)
	}
	lossFn := func(labels, out []*Node) *Node { return ReduceAllMean(Square(Sub(out[0], labels[0]))) }
	trainer := train.NewTrainer(backend, store, modelFn, lossFn, optimizer.Adam().LearningRate(0.01).Done(), nil, nil)
	var first, last float32
	for i := range 5 {
		m, err := trainer.TrainStep(train.Batch{
			Inputs: []*tensors.Tensor{randomTensor([]int{2, 6, 6, 2}, 6)},
			Labels: []*tensors.Tensor{randomTensor([]int{2, 4}, 7)}})
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
