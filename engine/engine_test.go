//go:build !nodnnl

package engine

import (
	"bytes"
	"log"
	"os"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors/images"

	et "github.com/dl4img/dl4img/engine/internal/enginetest"
	"github.com/dl4img/dl4img/engine/lower"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

func engineBackend(t *testing.T) *backend {
	t.Helper()
	b, err := Wrap(et.GoBackend(t))
	if err != nil {
		t.Fatal(err)
	}
	e := b.(*backend)
	e.reuse.poison = true
	return e
}

// TestConvMatchesGo compares every convolution configuration, and the two
// gradient convolutions autodiff makes of it, run on oneDNN, with the plain
// Go backend's direct loop.
func TestConvMatchesGo(t *testing.T) {
	native := et.GoBackend(t)
	for _, c := range et.ConvCases {
		t.Run(c.Name, func(t *testing.T) {
			eng := engineBackend(t)
			want := et.ConvResults(t, native, c)
			got := et.ConvResults(t, eng, c)
			for i, name := range []string{"y", "dx", "dkernel"}[:len(want)] {
				if err := et.Close32(got[i], want[i], 1e-4); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			s, _ := StatsOf(eng)
			t.Log(s)
		})
	}
}

// TestPoolMatchesGo compares every pooling configuration run on oneDNN
// with the plain Go backend (and the max pools' gradients with the
// reference, which the Go backend lacks).
func TestPoolMatchesGo(t *testing.T) {
	native := et.GoBackend(t)
	for _, c := range et.PoolCases {
		t.Run(c.Name, func(t *testing.T) {
			eng := engineBackend(t)
			want := et.PoolResults(t, native, c, c.NativeGradients())
			maxGrad := c.Op == compute.ReduceOpMax && c.WDil == nil
			got := et.PoolResults(t, eng, c, c.NativeGradients() || maxGrad)
			if maxGrad {
				x := c.Input()
				proj := et.RandomTensor(want[0].Shape().Dimensions, 3)
				want = append(want, et.MaxPoolGradient(x, proj, c.Window, c.Strides, c.Pads))
			}
			for i, name := range []string{"y", "dx"}[:len(want)] {
				if err := et.Close32(got[i], want[i], 1e-4); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			s, _ := StatsOf(eng)
			t.Log(s)
		})
	}
}

// TestBatchNormMatchesGo compares the batch-normalization ops on oneDNN,
// and their lowering, with batch normalization written out in the plain
// Go backend's element-wise ops (whose gradients autodiff derives).
func TestBatchNormMatchesGo(t *testing.T) {
	for _, c := range et.BatchNormCases {
		t.Run(c.Name, func(t *testing.T) {
			want := et.BatchNormResults(t, et.GoBackend(t), c, false)
			eng := engineBackend(t)
			for name, b := range map[string]compute.Backend{"engine": eng, "lowering": lower.Wrap(et.GoBackend(t))} {
				got := et.BatchNormResults(t, b, c, true)
				for i, what := range []string{"y", "mean", "variance", "dx", "dscale", "doffset"} {
					if err := et.Close32(got[i], want[i], 1e-4); err != nil {
						t.Errorf("%s %s: %v", name, what, err)
					}
				}
			}
			if s, _ := StatsOf(eng); s.Ran("batch norm training") != 1 || s.Ran("batch norm backward") != 1 {
				t.Errorf("batch norm not on oneDNN: %s", s)
			}
		})
	}
}

// TestDotMatchesGo compares matmuls on oneDNN (and their gradients, which
// are matmuls too) with the plain Go backend.
func TestDotMatchesGo(t *testing.T) {
	native := et.GoBackend(t)
	for _, c := range et.DotCases {
		t.Run(c.Name, func(t *testing.T) {
			eng := engineBackend(t)
			want := et.DotResults(t, native, c)
			got := et.DotResults(t, eng, c)
			for i, name := range []string{"y", "dlhs", "drhs"} {
				if err := et.Close32(got[i], want[i], 1e-4); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			s, _ := StatsOf(eng)
			t.Log(s)
		})
	}
}

// TestFusedConvMatchesGo: a ResNet block's conv + bias + residual + ReLU
// (in both layouts, as ONNX imports and nn build them) runs as one oneDNN
// convolution with post-ops and equals the Go backend; where an
// intermediate value is read elsewhere, nothing is fused.
func TestFusedConvMatchesGo(t *testing.T) {
	for _, c := range []struct {
		name     string
		axes     ConvolveAxesConfig
		x, k, b  []int
		residual bool
		reuse    bool // the pre-ReLU sum is an output too: no ReLU fusion
		want     string
	}{
		{"nchw bias relu", et.NCHW, []int{2, 8, 9, 10}, []int{16, 8, 3, 3}, []int{1, 16, 1, 1}, false, false, "conv forward+bias+relu"},
		{"nchw bias residual relu", et.NCHW, []int{2, 8, 9, 10}, []int{8, 8, 3, 3}, []int{1, 8, 1, 1}, true, false, "conv forward+bias+residual+relu"},
		{"nhwc bias residual relu", et.NHWC, []int{2, 9, 10, 8}, []int{3, 3, 8, 8}, []int{1, 1, 1, 8}, true, false, "conv forward+bias+residual+relu"},
		{"nhwc bias relu", et.NHWC, []int{2, 9, 10, 8}, []int{3, 3, 8, 16}, []int{1, 1, 1, 16}, false, false, "conv forward+bias+relu"},
		{"nchw bias relu6", et.NCHW, []int{2, 8, 9, 10}, []int{16, 8, 3, 3}, []int{1, 16, 1, 1}, false, false, "conv forward+bias+clip"},
		{"pre-relu read elsewhere", et.NHWC, []int{2, 9, 10, 8}, []int{3, 3, 8, 16}, []int{1, 1, 1, 16}, false, true, "conv forward+bias"},
	} {
		t.Run(c.name, func(t *testing.T) {
			block := func(in []*Node) []*Node {
				y := Add(ConvGeneral(in[0], in[1], c.axes, nil, [][2]int{{1, 1}, {1, 1}}, nil, nil, 1, 1), in[2])
				if c.residual {
					y = Add(y, in[0])
				}
				out := []*Node{Max(y, ZerosLike(y))}
				if strings.HasSuffix(c.name, "relu6") {
					out[0] = Min(out[0], Scalar(y.Graph(), y.DType(), 6))
				}
				if c.reuse {
					out = append(out, y)
				}
				return out
			}
			run := func(b compute.Backend) []*tensors.Tensor {
				exec, err := NewExec(b, block)
				if err != nil {
					t.Fatal(err)
				}
				out, err := exec.Exec(et.RandomTensor(c.x, 1), et.RandomTensor(c.k, 2), et.RandomTensor(c.b, 3))
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			eng := engineBackend(t)
			want, got := run(et.GoBackend(t)), run(eng)
			et.AllClose32(t, got, want, 1e-4)
			if s, _ := StatsOf(eng); s.Ran(c.want) != 1 {
				t.Errorf("want one %q: %s", c.want, s)
			}
		})
	}
}

// TestReluGradMatchesGo: ReLU's gradient written as nn.Relu writes it runs
// as oneDNN's ReLU backward and equals the Go backend's select.
func TestReluGradMatchesGo(t *testing.T) {
	grad := func(in []*Node) []*Node {
		y := Max(in[0], ZerosLike(in[0]))
		zero := ScalarZero(y.Graph(), y.DType())
		return []*Node{Where(GreaterThan(y, zero), in[1], zero)}
	}
	run := func(b compute.Backend) *tensors.Tensor {
		out, err := MustNewExec(b, grad).Exec(et.RandomTensor([]int{4, 64, 70}, 1), et.RandomTensor([]int{4, 64, 70}, 2))
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	eng := engineBackend(t)
	if err := et.Close32(run(eng), run(et.GoBackend(t)), 0); err != nil {
		t.Error(err)
	}
	if s, _ := StatsOf(eng); s.Ran("relu backward") != 1 {
		t.Errorf("relu backward not on oneDNN: %s", s)
	}
}

// TestConvBiasGradients: a convolution layer with a bias (as nn builds it)
// trains with the bias's gradient folded into oneDNN's backward-weights,
// and every value equals the Go backend's.
func TestConvBiasGradients(t *testing.T) {
	layer := func(x, k, b *Node) []*Node {
		y := Add(Convolve(x, k).PadSame().Done(), Reshape(b, 1, 1, 1, -1))
		y = Max(y, ZerosLike(y))
		return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, y)), x, k, b)...)
	}
	run := func(b compute.Backend) []*tensors.Tensor {
		out, err := MustNewExec(b, layer).Exec(et.RandomTensor([]int{2, 9, 8, 3}, 1), et.RandomTensor([]int{3, 3, 3, 6}, 2),
			et.RandomTensor([]int{6}, 3))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	eng := engineBackend(t)
	want, got := run(et.GoBackend(t)), run(eng)
	for i, name := range []string{"y", "dx", "dkernel", "dbias"} {
		if err := et.Close32(got[i], want[i], 1e-4); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s, _ := StatsOf(eng); s.Ran("conv backward weights+bias") != 1 {
		t.Errorf("the bias gradient was not folded: %s", s)
	}
}

// TestRegionsKeepOneDNNLayout: in an NCHW chain of convolutions and pools
// (which oneDNN runs in its blocked layout), the values between them stay
// in that layout, and the results equal the Go backend's.
func TestRegionsKeepOneDNNLayout(t *testing.T) {
	chain := func(x, k1, k2, k3 *Node) *Node {
		conv := func(x, k *Node) *Node {
			y := ConvGeneral(x, k, et.NCHW, nil, [][2]int{{1, 1}, {1, 1}}, nil, nil, 1, 1)
			return Max(y, ZerosLike(y))
		}
		y := conv(conv(x, k1), k2)
		y = MaxPool(y).ChannelsAxis(images.ChannelsFirst).Window(2).Done()
		return ReduceSum(conv(y, k3), 2, 3)
	}
	run := func(b compute.Backend) *tensors.Tensor {
		out, err := MustNewExec(b, chain).Exec(et.RandomTensor([]int{2, 8, 12, 10}, 1), et.RandomTensor([]int{16, 8, 3, 3}, 2),
			et.RandomTensor([]int{16, 16, 3, 3}, 3), et.RandomTensor([]int{8, 16, 3, 3}, 4))
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	eng := engineBackend(t)
	if err := et.Close32(run(eng), run(et.GoBackend(t)), 1e-4); err != nil {
		t.Error(err)
	}
	if s, _ := StatsOf(eng); s.Regions != 3 {
		t.Errorf("want the 3 values between the 4 primitives in oneDNN's layout: %s", s)
	}
}

// TestRegionsRunThroughPoolsAndReLU trains channels-last blocks as the
// book's nets build them, with 12 channels, which oneDNN's blocked layout
// pads to 16: conv + bias + ReLU, max pool, conv + ReLU (the captcha CNN)
// and conv, batch norm, ReLU, max pool, conv + ReLU (the CRNN). Pools,
// batch norms, ReLUs and ReLU gradients run inside the region, over the
// padded layout, and every value (run twice, reused buffers poisoned)
// equals the Go backend's.
func TestRegionsRunThroughPoolsAndReLU(t *testing.T) {
	const c = 12
	for _, tc := range []struct {
		name    string
		block   func(in []*Node) *Node // in[0] x, in[1] kernel, in[2], in[3] per-channel parameters
		relus   int                    // forward ReLUs on their own (not fused into a convolution)
		regions int
	}{
		// Kept: the first conv's output (read by the pool and the ReLU's
		// gradient), the pool's output, the pool gradient's input and
		// output, the ReLU gradient's output. The second ReLU's gradient
		// reads the loss's gradient, which the Go backend makes: it stays
		// on plain data.
		{"conv+bias+relu", func(in []*Node) *Node {
			return relu(Add(Convolve(in[0], in[1]).PadSame().Done(), Reshape(in[2], 1, 1, 1, -1)))
		}, 0, 5},
		// Kept besides: the conv's output (read by the batch norm and its
		// gradient), the batch norm's output, and its gradient's input.
		{"conv, batch norm, relu", func(in []*Node) *Node {
			y, _, _ := InternalBatchNormForTraining(Convolve(in[0], in[1]).PadSame().Done(), in[2], in[3], 1e-3, 3)
			return relu(y)
		}, 1, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := func(in []*Node) *Node {
				y := MaxPool(tc.block(in)).Window(2).Done()
				return relu(Convolve(y, in[4]).PadSame().Done())
			}
			inputs := func() []*tensors.Tensor {
				return []*tensors.Tensor{et.RandomTensor([]int{4, 64, 64, 3}, 1), et.RandomTensor([]int{3, 3, 3, c}, 2),
					et.RandomTensor([]int{c}, 3), et.RandomTensor([]int{c}, 4), et.RandomTensor([]int{3, 3, c, c}, 5)}
			}
			eng := engineBackend(t)
			got := et.Results(t, eng, true, net, inputs()...)
			want := et.Results(t, lower.Wrap(et.GoBackend(t)), true, net, inputs()...)
			et.AllClose32(t, got, want, 1e-4)
			s, _ := StatsOf(eng)
			if s.Ran("relu backward") != 2 || s.Ran("relu forward") != tc.relus || s.Regions != tc.regions {
				t.Errorf("want both ReLU gradients, %d ReLUs on oneDNN and %d values in its layout: %s", tc.relus, tc.regions, s)
			}
		})
	}
}

// TestBiasAddMatchesGo: a per-channel bias add no convolution takes runs
// on oneDNN's binary add, with 12 channels (padded to 16 in the blocked
// layout), equal to the Go backend's: after a convolution whose output is
// read elsewhere too (trained: the add's gradients as well), and after a
// transposed convolution (an input-dilated one, as nn.ConvTranspose2D
// builds it), where the add and the ReLU after it stay in the region
// between the two convolutions.
func TestBiasAddMatchesGo(t *testing.T) {
	const c = 12
	cases := []struct {
		name    string
		grads   bool
		net     func(in []*Node) *Node
		regions int
	}{
		{"conv read twice", true, func(in []*Node) *Node {
			y := Convolve(in[0], in[1]).PadSame().Done()
			return Add(relu(Add(y, Reshape(in[2], 1, 1, 1, c))), y)
		}, -1},
		{"transposed conv", false, func(in []*Node) *Node {
			axes := ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
				KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
				OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
			y := ConvGeneral(in[0], in[1], axes, nil, [][2]int{{2, 2}, {2, 2}}, []int{2, 2}, nil, 1, 1)
			y = relu(Add(y, Reshape(in[2], 1, 1, 1, c)))
			return Convolve(y, in[3]).PadSame().Done()
		}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k1 := []int{3, 3, 3, c}
			if !tc.grads {
				k1 = []int{4, 4, 3, c}
			}
			inputs := func() []*tensors.Tensor {
				return []*tensors.Tensor{et.RandomTensor([]int{4, 48, 48, 3}, 1), et.RandomTensor(k1, 2),
					et.RandomTensor([]int{c}, 3), et.RandomTensor([]int{3, 3, c, c}, 4)}
			}
			eng := engineBackend(t)
			got := et.Results(t, eng, tc.grads, tc.net, inputs()...)
			want := et.Results(t, et.GoBackend(t), tc.grads, tc.net, inputs()...)
			et.AllClose32(t, got, want, 1e-4)
			s, _ := StatsOf(eng)
			if s.Ran("bias add") != 1 || (tc.regions >= 0 && s.Regions != tc.regions) {
				t.Errorf("want the bias add on oneDNN (and %d values in its layout): %s", tc.regions, s)
			}
		})
	}
}

// relu is nn.Relu: max(x, 0) with the gradient torch's ReLU has, which the
// engine offloads (reluGradKernel).
func relu(x *Node) *Node {
	zero := ScalarZero(x.Graph(), x.DType())
	var dy, y *Node
	xIn := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		return Where(GreaterThan(y, zero), dy, zero)
	})
	y = IdentityWithCustomGradient(Max(xIn, zero), func(_, v *Node) *Node {
		dy = v
		return v
	})
	return y
}

// TestReusedOutputsAreRewritten trains a small strided net (its
// backward-data convolutions have tails to zero) twice on one engine:
// the second run's kernels get the first run's released buffers,
// poisoned with NaN, and must still equal the Go backend (with the
// lowering, which has the max pool's gradient).
func TestReusedOutputsAreRewritten(t *testing.T) {
	net := func(in []*Node) *Node {
		y := ConvGeneral(in[0], in[1], et.NCHW, []int{2, 2}, [][2]int{{1, 1}, {1, 1}}, nil, nil, 1, 1)
		y = MaxPool(Max(y, ZerosLike(y))).ChannelsAxis(images.ChannelsFirst).Window(2).Done()
		return ConvGeneral(y, in[2], et.NCHW, []int{2, 2}, nil, nil, nil, 1, 1)
	}
	inputs := func() []*tensors.Tensor {
		return []*tensors.Tensor{et.RandomTensor([]int{2, 4, 23, 21}, 1), et.RandomTensor([]int{8, 4, 3, 3}, 2),
			et.RandomTensor([]int{6, 8, 2, 2}, 3)}
	}
	eng := engineBackend(t)
	got := et.Results(t, eng, true, net, inputs()...)
	want := et.Results(t, lower.Wrap(et.GoBackend(t)), true, net, inputs()...)
	et.AllClose32(t, got, want, 1e-4)
	if eng.reuse.reused.Load() == 0 {
		t.Error("the second run reused no kernel output: the test tests nothing")
	}
}

// TestIdentitiesAreAliases: the engine reads through Identity ops (the Go
// backend would copy each), and a value that is then several outputs,
// or an input that is an output, comes back whole in each.
func TestIdentitiesAreAliases(t *testing.T) {
	f := func(x, k *Node) []*Node {
		y := relu(Convolve(x, k).PadSame().Done())
		return []*Node{Identity(y), y, Identity(Identity(x)), ReduceAllSum(y)}
	}
	run := func(b compute.Backend) []*tensors.Tensor {
		exec := MustNewExec(b, f)
		var out []*tensors.Tensor
		for range 2 {
			var err error
			if out, err = exec.Exec(et.RandomTensor([]int{2, 32, 32, 8}, 1), et.RandomTensor([]int{3, 3, 8, 16}, 2)); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	eng := engineBackend(t)
	got, want := run(eng), run(et.GoBackend(t))
	et.AllClose32(t, got, want, 1e-4)
	if s, _ := StatsOf(eng); s.Ran("conv forward+relu") != 1 {
		t.Errorf("the ReLU under the Identity was not fused: %s", s)
	}
}

// TestUnplaceableOpRunsOnFallback: an op the engine cannot place (a min
// pool, a 3-D convolution) still runs, on the lowering, equal to the Go
// backend, and the engine says so once in the log however often it is
// compiled.
func TestUnplaceableOpRunsOnFallback(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	fn := func(x, k *Node) []*Node {
		pooled := BackendReduceWindow(x, compute.ReduceOpMin, []int{1, 2, 2, 1}, []int{1, 2, 2, 1}, nil, nil, nil)
		x3 := Reshape(x, 1, 2, 6, 8, 3)
		conv3 := ConvGeneral(x3, Reshape(k, 1, 1, 3, 3, 4), ConvolveAxesConfig{InputBatch: 0, InputChannels: 4,
			InputSpatial: []int{1, 2, 3}, KernelInputChannels: 3, KernelOutputChannels: 4, KernelSpatial: []int{0, 1, 2},
			OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}, nil, nil, nil, nil, 1, 1)
		return []*Node{pooled, conv3}
	}
	eng := engineBackend(t)
	for range 2 { // compiled twice: logged once
		exec := MustNewExec(eng, fn)
		got, err := exec.Exec(et.RandomTensor([]int{2, 6, 8, 3}, 1), et.RandomTensor([]int{1, 3, 3, 4}, 2))
		if err != nil {
			t.Fatal(err)
		}
		want, err := MustNewExec(et.GoBackend(t), fn).Exec(et.RandomTensor([]int{2, 6, 8, 3}, 1), et.RandomTensor([]int{1, 3, 3, 4}, 2))
		if err != nil {
			t.Fatal(err)
		}
		et.AllClose32(t, got, want, 1e-4)
	}
	for _, why := range []string{"ReduceWindow kept on Go: reduction", "ConvGeneral kept on Go: 3 spatial axes"} {
		if n := strings.Count(logged.String(), why); n != 1 {
			t.Errorf("%q logged %d times, want once; log:\n%s", why, n, logged.String())
		}
	}
}
