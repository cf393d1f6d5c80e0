// Package enginetest holds what the engine's tests and its lowering's
// tests share: the convolution and pooling configurations that real
// backbones and their gradients use, and how to run and compare them.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers "go"
	. "github.com/gomlx/gomlx/core/graph"  //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

// GoBackend is the plain pure-Go backend, as dl4img configures it.
func GoBackend(tb testing.TB) compute.Backend {
	tb.Helper()
	b, err := compute.NewWithConfig("go:ops_sequential")
	if err != nil {
		tb.Fatalf("go backend: %v", err)
	}
	return b
}

// ConvCase is one ConvGeneral configuration: shapes are given in the
// layout that axes describes.
type ConvCase struct {
	Name          string
	X, K          []int
	Axes          ConvolveAxesConfig
	Strides       []int
	Pads          [][2]int
	InDil, KDil   []int
	Groups        int
	SkipGradients bool
}

var (
	NCHW = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3}}
	NHWC = ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	// NCHW in, HWIO kernel, NHWC out: any axes config must work.
	Mixed = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	// nn's channels-major layout [c, batch, h, w], HWIO kernels.
	CBHW = ConvolveAxesConfig{InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3}}
	NCW = ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2}}
)

var ConvCases = []ConvCase{
	{Name: "nchw 3x3 same", X: []int{2, 3, 7, 6}, K: []int{4, 3, 3, 3}, Axes: NCHW, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "nchw 3x3 valid", X: []int{2, 3, 7, 6}, K: []int{4, 3, 3, 3}, Axes: NCHW},
	{Name: "nhwc 3x3 same", X: []int{2, 7, 6, 3}, K: []int{3, 3, 3, 5}, Axes: NHWC, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "nhwc 5x3 valid", X: []int{2, 9, 8, 3}, K: []int{5, 3, 3, 4}, Axes: NHWC},
	{Name: "mixed layouts stride 2", X: []int{2, 3, 9, 8}, K: []int{3, 3, 3, 5}, Axes: Mixed, Strides: []int{2, 2}, Pads: [][2]int{{1, 1}, {1, 1}},
		SkipGradients: true}, // GoMLX's VJP wants the input and output layouts alike
	{Name: "1x1", X: []int{3, 8, 5, 5}, K: []int{6, 8, 1, 1}, Axes: NCHW},
	{Name: "1x1 stride 2", X: []int{2, 4, 7, 8}, K: []int{6, 4, 1, 1}, Axes: NCHW, Strides: []int{2, 2}},
	{Name: "stride 2 same", X: []int{2, 3, 9, 8}, K: []int{4, 3, 3, 3}, Axes: NCHW, Strides: []int{2, 2}, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "stride 3", X: []int{1, 2, 11, 10}, K: []int{3, 2, 3, 3}, Axes: NCHW, Strides: []int{3, 3}},
	{Name: "7x7 stride 2 pad 3", X: []int{2, 3, 16, 15}, K: []int{4, 3, 7, 7}, Axes: NCHW, Strides: []int{2, 2}, Pads: [][2]int{{3, 3}, {3, 3}}},
	{Name: "stride 2x1", X: []int{2, 3, 9, 8}, K: []int{4, 3, 3, 2}, Axes: NCHW, Strides: []int{2, 1}},
	{Name: "dilation 2", X: []int{2, 3, 9, 9}, K: []int{4, 3, 3, 3}, Axes: NCHW, KDil: []int{2, 2}, Pads: [][2]int{{2, 2}, {2, 2}}},
	{Name: "dilation 3x1 even kernel", X: []int{2, 3, 11, 10}, K: []int{4, 3, 2, 3}, Axes: NCHW, KDil: []int{3, 1}},
	{Name: "asymmetric padding", X: []int{2, 3, 7, 6}, K: []int{4, 3, 3, 3}, Axes: NCHW, Pads: [][2]int{{0, 2}, {1, 0}}},
	{Name: "even kernel", X: []int{2, 3, 8, 8}, K: []int{4, 3, 2, 4}, Axes: NCHW, Pads: [][2]int{{0, 1}, {1, 2}}},
	{Name: "groups 2", X: []int{2, 4, 6, 6}, K: []int{6, 2, 3, 3}, Axes: NCHW, Groups: 2, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "depthwise", X: []int{2, 5, 7, 7}, K: []int{5, 1, 3, 3}, Axes: NCHW, Groups: 5, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "depthwise stride 2 nhwc", X: []int{2, 8, 8, 4}, K: []int{3, 3, 1, 8}, Axes: NHWC, Groups: 4, Strides: []int{2, 2}, Pads: [][2]int{{0, 1}, {0, 1}}},
	{Name: "kernel larger than input", X: []int{1, 2, 3, 3}, K: []int{3, 2, 7, 7}, Axes: NCHW, Pads: [][2]int{{3, 3}, {3, 3}}},
	{Name: "channel-major (small image, big kernel)", X: []int{3, 8, 4, 3}, K: []int{16, 8, 3, 3}, Axes: NCHW, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "channel-major stride 2", X: []int{2, 8, 5, 5}, K: []int{16, 8, 3, 3}, Axes: NCHW, Strides: []int{2, 2}, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "cbhw channel-major", X: []int{8, 3, 4, 5}, K: []int{3, 3, 8, 16}, Axes: CBHW, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "cbhw batch-major", X: []int{3, 2, 9, 9}, K: []int{3, 3, 3, 4}, Axes: CBHW, Pads: [][2]int{{1, 1}, {1, 1}}},
	{Name: "batch 1", X: []int{1, 3, 6, 6}, K: []int{2, 3, 3, 3}, Axes: NCHW},
	{Name: "input dilation", X: []int{2, 3, 5, 4}, K: []int{4, 3, 3, 3}, Axes: NCHW, InDil: []int{2, 2}, Pads: [][2]int{{2, 2}, {1, 2}},
		SkipGradients: true}, // GoMLX defines none: only a gradient has input dilation
	{Name: "negative padding", X: []int{2, 3, 8, 8}, K: []int{4, 3, 3, 3}, Axes: NCHW, Pads: [][2]int{{-1, 0}, {0, -2}}},
	{Name: "1-D", X: []int{2, 3, 12}, K: []int{4, 3, 3}, Axes: NCW, Strides: []int{2}, Pads: [][2]int{{1, 1}}},
}

// Results runs op on backend: its output and, with grads, the gradients
// of a random projection of it with respect to every input. It runs the
// graph twice and returns the second run's values: an engine that reuses
// the first run's buffers (and poisons them, in its tests) must rewrite
// them whole.
func Results(t *testing.T, backend compute.Backend, grads bool, op func(in []*Node) *Node, inputs ...*tensors.Tensor) []*tensors.Tensor {
	t.Helper()
	exec, err := NewExec(backend, func(in []*Node) []*Node {
		y := op(in)
		if !grads {
			return []*Node{y}
		}
		proj := Const(y.Graph(), RandomTensor(y.Shape().Dimensions, 3))
		return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, proj)), in...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	var out []*tensors.Tensor
	for range 2 {
		if out, err = exec.Exec(args...); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// ConvResults runs c on backend: the output and the gradients of a random
// projection of it with respect to x and the kernel.
func ConvResults(t *testing.T, backend compute.Backend, c ConvCase) []*tensors.Tensor {
	t.Helper()
	return Results(t, backend, !c.SkipGradients, func(in []*Node) *Node {
		return ConvGeneral(in[0], in[1], c.Axes, c.Strides, c.Pads, c.InDil, c.KDil, max(c.Groups, 1), 1)
	}, RandomTensor(c.X, 1), RandomTensor(c.K, 2))
}

// RandomTensor is a seeded tensor of standard normal values.
func RandomTensor(dims []int, seed uint64) *tensors.Tensor {
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

// AllClose32 reports each of got that is not Close32 to its want.
func AllClose32(t *testing.T, got, want []*tensors.Tensor, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i := range want {
		if err := Close32(got[i], want[i], tol); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
	}
}

// Close32 compares two float32 tensors to a tolerance relative to the
// largest magnitude in want.
func Close32(got, want *tensors.Tensor, tol float64) error {
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

// PoolCase is one ReduceWindow configuration (per-axis slices, as the op
// takes them).
type PoolCase struct {
	Name                  string
	X                     []int
	Op                    compute.ReduceOpType
	Window, Strides, WDil []int
	Pads                  [][2]int
	Ties                  bool // small integers >= 0: windows with several maxima
}

var PoolCases = []PoolCase{
	{Name: "max 3x3 s2 pad 1 nchw (resnet stem)", X: []int{2, 3, 9, 10}, Op: compute.ReduceOpMax,
		Window: []int{1, 1, 3, 3}, Strides: []int{1, 1, 2, 2}, Pads: [][2]int{{0, 0}, {0, 0}, {1, 1}, {1, 1}}},
	{Name: "max 2x2 nhwc", X: []int{2, 8, 6, 3}, Op: compute.ReduceOpMax, Window: []int{1, 2, 2, 1}, Strides: []int{1, 2, 2, 1}},
	{Name: "sum 3x3 s1 same nhwc", X: []int{2, 7, 7, 4}, Op: compute.ReduceOpSum,
		Window: []int{1, 3, 3, 1}, Strides: []int{1, 1, 1, 1}, Pads: [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}}},
	{Name: "sum 2x2 s2 nchw", X: []int{2, 3, 8, 6}, Op: compute.ReduceOpSum, Window: []int{1, 1, 2, 2}, Strides: []int{1, 1, 2, 2}},
	{Name: "min 3x2 s(2,1) dilated", X: []int{1, 2, 11, 9}, Op: compute.ReduceOpMin,
		Window: []int{1, 1, 3, 2}, Strides: []int{1, 1, 2, 1}, WDil: []int{1, 1, 2, 2}},
	{Name: "max window on batch axis", X: []int{4, 3, 5}, Op: compute.ReduceOpMax, Window: []int{2, 1, 3}, Strides: []int{1, 1, 1}},
	{Name: "max 2x2 with ties", X: []int{2, 3, 6, 8}, Op: compute.ReduceOpMax, Window: []int{1, 1, 2, 2}, Strides: []int{1, 1, 2, 2},
		Ties: true},
	{Name: "max 3x3 s2 overlapping with ties nhwc", X: []int{2, 9, 9, 3}, Op: compute.ReduceOpMax, Window: []int{1, 3, 3, 1},
		Strides: []int{1, 2, 2, 1}, Pads: [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}}, Ties: true},
	{Name: "global sum", X: []int{2, 3, 7, 7}, Op: compute.ReduceOpSum, Window: []int{1, 1, 7, 7}, Strides: []int{1, 1, 1, 1}},
}

// PoolResults runs c on backend: the output and, where the plain Go
// backend has one, the gradient of a random projection of it.
func PoolResults(t *testing.T, backend compute.Backend, c PoolCase, grads bool) []*tensors.Tensor {
	t.Helper()
	return Results(t, backend, grads, func(in []*Node) *Node {
		return BackendReduceWindow(in[0], c.Op, c.Window, c.Strides, nil, c.WDil, c.Pads)
	}, c.Input())
}

// NativeGradients reports whether the plain Go backend can compute c's
// gradient: it has no SelectAndScatter (max and min pooling gradients),
// GoMLX has no gradient with dilations, and its gradient of padded sum
// pooling fails on the Go backend.
func (c PoolCase) NativeGradients() bool {
	return c.Op == compute.ReduceOpSum && c.WDil == nil && c.Pads == nil
}

// MaxPoolGradient is the reference gradient of a max pool (ReduceWindow
// max over x with window, strides and paddings, per axis): each output's
// gradient dy goes to the first maximum of its window in row-major order,
// as XLA's SelectAndScatter (and PyTorch's max pool) sends it.
func MaxPoolGradient(x, dy *tensors.Tensor, window, strides []int, paddings [][2]int) *tensors.Tensor {
	xs, ys := x.Shape().Dimensions, dy.Shape().Dimensions
	xv, dv := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](dy)
	rank := len(xs)
	stride := func(d []int) []int {
		s := make([]int, len(d))
		acc := 1
		for i := len(d) - 1; i >= 0; i-- {
			s[i] = acc
			acc *= d[i]
		}
		return s
	}
	xst, yst := stride(xs), stride(ys)
	wsize := 1
	for _, w := range window {
		wsize *= w
	}
	dx := make([]float32, len(xv))
	idx, tap, pos := make([]int, rank), make([]int, rank), make([]int, rank)
	for o := range dv {
		r := o
		for a := range rank {
			idx[a] = r / yst[a]
			r %= yst[a]
		}
		best, bestAt := float32(math.Inf(-1)), -1
		for t := range wsize {
			r := t
			inside := true
			off := 0
			for a := rank - 1; a >= 0; a-- {
				tap[a] = r % window[a]
				r /= window[a]
			}
			for a := range rank {
				p := 0
				if len(paddings) > a {
					p = paddings[a][0]
				}
				s := 1
				if len(strides) > a {
					s = strides[a]
				}
				pos[a] = idx[a]*s + tap[a] - p
				if pos[a] < 0 || pos[a] >= xs[a] {
					inside = false
					break
				}
				off += pos[a] * xst[a]
			}
			if inside && (bestAt < 0 || xv[off] > best) {
				best, bestAt = xv[off], off
			}
		}
		if bestAt >= 0 {
			dx[bestAt] += dv[o]
		}
	}
	return tensors.FromFlatDataAndDimensions(dx, xs...)
}

// Input is c's input: seeded normal values, or with Ties small integers
// (ReLU outputs and quantized images have windows of equal values).
func (c PoolCase) Input() *tensors.Tensor {
	x := RandomTensor(c.X, 1)
	if !c.Ties {
		return x
	}
	v := tensors.MustCopyFlatData[float32](x)
	for i := range v {
		v[i] = float32(math.Max(0, math.Round(float64(v[i]))))
	}
	return tensors.FromFlatDataAndDimensions(v, c.X...)
}

// BatchNormCase is a batch normalization of an input of dims over Axis.
type BatchNormCase struct {
	Name string
	X    []int
	Axis int
}

var BatchNormCases = []BatchNormCase{
	{"nhwc", []int{2, 5, 6, 4}, 3},
	{"nchw", []int{2, 4, 5, 6}, 1},
	{"sequence", []int{3, 7, 5}, 2},
	{"dense", []int{6, 5}, 1},
}

// BatchNormResults runs c in training mode on backend, with the
// backend's batch-normalization ops (fused) or written out in element-wise
// ops: the output, the batch mean and variance, and the gradients of a
// random projection of the output with respect to x, scale and offset.
func BatchNormResults(t *testing.T, backend compute.Backend, c BatchNormCase, fused bool) []*tensors.Tensor {
	t.Helper()
	const eps = 1e-3
	c4 := c.X[c.Axis]
	exec, err := NewExec(backend, func(x, scale, offset *Node) []*Node {
		var y, mean, variance *Node
		if fused {
			y, mean, variance = InternalBatchNormForTraining(x, scale, offset, eps, c.Axis)
		} else {
			var axes []int
			for a := range x.Rank() {
				if a != c.Axis {
					axes = append(axes, a)
				}
			}
			shape := make([]int, x.Rank())
			for i := range shape {
				shape[i] = 1
			}
			shape[c.Axis] = c4
			mean = ReduceMean(x, axes...)
			xc := Sub(x, Reshape(mean, shape...))
			variance = ReduceMean(Square(xc), axes...)
			y = Add(Mul(xc, Reshape(Div(scale, Sqrt(AddScalar(variance, eps))), shape...)), Reshape(offset, shape...))
		}
		proj := Const(x.Graph(), RandomTensor(y.Shape().Dimensions, 3))
		return append([]*Node{y, mean, variance}, Gradient(ReduceAllSum(Mul(y, proj)), x, scale, offset)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(RandomTensor(c.X, 1), RandomTensor([]int{c4}, 4), RandomTensor([]int{c4}, 5))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// DotCase is one DotGeneral configuration.
type DotCase struct {
	Name                  string
	Lhs, Rhs              []int
	LhsContract, LhsBatch []int
	RhsContract, RhsBatch []int
}

var DotCases = []DotCase{
	{Name: "matrix", Lhs: []int{64, 96}, Rhs: []int{96, 80}, LhsContract: []int{1}, RhsContract: []int{0}},
	{Name: "rhs transposed", Lhs: []int{64, 96}, Rhs: []int{80, 96}, LhsContract: []int{1}, RhsContract: []int{1}},
	{Name: "lhs transposed", Lhs: []int{96, 64}, Rhs: []int{96, 80}, LhsContract: []int{0}, RhsContract: []int{0}},
	{Name: "dense over a sequence", Lhs: []int{4, 25, 96}, Rhs: []int{96, 72}, LhsContract: []int{2}, RhsContract: []int{0}},
	{Name: "batched", Lhs: []int{3, 40, 50}, Rhs: []int{3, 50, 60}, LhsContract: []int{2}, LhsBatch: []int{0},
		RhsContract: []int{1}, RhsBatch: []int{0}},
	{Name: "two contracting axes", Lhs: []int{30, 8, 12}, Rhs: []int{8, 12, 70}, LhsContract: []int{1, 2}, RhsContract: []int{0, 1}},
	{Name: "batch axis last", Lhs: []int{40, 50, 3}, Rhs: []int{50, 60, 3}, LhsContract: []int{1}, LhsBatch: []int{2},
		RhsContract: []int{0}, RhsBatch: []int{2}},
}

// DotResults runs c on backend: the product and the gradients of a random
// projection of it with respect to both operands.
func DotResults(t *testing.T, backend compute.Backend, c DotCase) []*tensors.Tensor {
	t.Helper()
	return Results(t, backend, true, func(in []*Node) *Node {
		return Dot(in[0], in[1]).General(c.LhsContract, c.LhsBatch, c.RhsContract, c.RhsBatch)
	}, RandomTensor(c.Lhs, 1), RandomTensor(c.Rhs, 2))
}
