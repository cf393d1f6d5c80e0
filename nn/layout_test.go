package nn

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// withGrads returns y and the gradients of sum(y*gy) w.r.t. x and w for
// op(x, w) on NHWC x; gy is in[2].
func withGrads(op func(x, w *Node) *Node) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		y := op(in[0], in[1])
		return append([]*Node{y}, Gradient(weightedSum(y, in[2]), in[0], in[1])...)
	}
}

func assertAllClose(t *testing.T, got, want []arr, names ...string) {
	t.Helper()
	for i, name := range names {
		assertClose(t, name, got[i], want[i], 1e-5)
	}
}

// TestConv2DSameCBHWEqualsNative checks the frame convolution (outputs and
// both gradients) against GoMLX's native convolution for several kernel
// sizes, including images smaller than the kernel and 1x1 kernels.
func TestConv2DSameCBHWEqualsNative(t *testing.T) {
	cases := []struct{ b, h, w, cin, cout, kh, kw int }{
		{2, 7, 5, 3, 4, 3, 3},
		{3, 4, 9, 2, 5, 5, 5},
		{2, 6, 5, 3, 2, 3, 5},
		{1, 1, 1, 2, 3, 3, 3},
		{1, 2, 3, 2, 2, 5, 3},
		{2, 6, 6, 4, 3, 1, 1},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%dx%d_k%dx%d", c.h, c.w, c.kh, c.kw), func(t *testing.T) {
			dt := dtypes.Float32
			x := randArr(uint64(i+1), c.b, c.h, c.w, c.cin).tensor(dt)
			w := randArr(uint64(i+100), c.kh, c.kw, c.cin, c.cout).tensor(dt)
			gy := randArr(uint64(i+300), c.b, c.h, c.w, c.cout).tensor(dt)
			got := run(t, withGrads(func(x, w *Node) *Node {
				return ToLayout(Conv2DSameCBHW(ToLayout(x, NHWC, CBHW), w), CBHW, NHWC)
			}), x, w, gy)
			want := run(t, withGrads(func(x, w *Node) *Node {
				return Conv2DOp(x, w, 1, PadSame, ConvNative)
			}), x, w, gy)
			assertAllClose(t, got, want, "y", "dx", "dw")
		})
	}
}

func TestConv2DSameCBHWFiniteDifferences(t *testing.T) {
	x := randArr(1, 2, 2, 4, 3)
	w := randArr(2, 3, 3, 2, 2)
	gy := randArr(3, 2, 2, 4, 3)
	fdCheck(t, func(in []*Node) *Node { return weightedSum(Conv2DSameCBHW(in[0], in[1]), in[2]) }, x, w, gy)
}

// TestConv2DLayouts checks that Conv2D in CBHW equals Conv2D in NHWC for the
// frame path and for the configurations that fall back to NHWC.
func TestConv2DLayouts(t *testing.T) {
	cases := []struct {
		k, s int
		pad  Padding
	}{{3, 1, PadSame}, {1, 1, PadValid}, {3, 2, PadSame}, {3, 1, PadValid}, {4, 1, PadSame}}
	for i, c := range cases {
		t.Run(fmt.Sprintf("k%d_s%d_%d", c.k, c.s, c.pad), func(t *testing.T) {
			dt := dtypes.Float32
			x := randArr(uint64(i+1), 2, 9, 8, 3).tensor(dt)
			w := randArr(uint64(i+100), c.k, c.k, 3, 4).tensor(dt)
			nhwc := func(x, w *Node) *Node { return conv2DLayout(x, w, c.s, c.pad, ConvAuto, NHWC) }
			cbhw := func(x, w *Node) *Node {
				return ToLayout(conv2DLayout(ToLayout(x, NHWC, CBHW), w, c.s, c.pad, ConvAuto, CBHW), CBHW, NHWC)
			}
			y := run(t, func(in []*Node) []*Node { return []*Node{nhwc(in[0], in[1])} }, x, w)
			gy := randArr(uint64(i+300), y[0].Shape...).tensor(dt)
			assertAllClose(t, run(t, withGrads(cbhw), x, w, gy), run(t, withGrads(nhwc), x, w, gy), "y", "dx", "dw")
		})
	}
}

func TestConvTranspose2DLayouts(t *testing.T) {
	cases := []struct{ h, w, k, s, p, op int }{
		{5, 4, 4, 2, 1, 0}, // the frame path
		{4, 4, 2, 2, 0, 0}, // the frame path with a 1x1 sub-pixel kernel
		{3, 6, 3, 2, 1, 1}, // asymmetric offsets: NHWC fallback
		{4, 3, 4, 2, 0, 0},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("k%d_s%d_p%d_op%d", c.k, c.s, c.p, c.op), func(t *testing.T) {
			dt := dtypes.Float32
			x := randArr(uint64(i+1), 2, c.h, c.w, 3).tensor(dt)
			w := randArr(uint64(i+100), c.k, c.k, 3, 4).tensor(dt)
			oh, ow := (c.h-1)*c.s-2*c.p+c.k+c.op, (c.w-1)*c.s-2*c.p+c.k+c.op
			gy := randArr(uint64(i+300), 2, oh, ow, 4).tensor(dt)
			got := run(t, withGrads(func(x, w *Node) *Node {
				return ToLayout(ConvTranspose2DIn(ToLayout(x, NHWC, CBHW), w, c.s, c.p, c.op, CBHW), CBHW, NHWC)
			}), x, w, gy)
			want := run(t, withGrads(func(x, w *Node) *Node { return ConvTranspose2DOp(x, w, c.s, c.p, c.op) }), x, w, gy)
			assertAllClose(t, got, want, "y", "dx", "dw")
		})
	}
}

func TestMaxPool2DInCBHW(t *testing.T) {
	dt := dtypes.Float32
	x := randArr(1, 2, 7, 6, 3).tensor(dt)
	gy := randArr(2, 2, 3, 3, 3).tensor(dt)
	f := func(cbhw bool) func(in []*Node) []*Node {
		return func(in []*Node) []*Node {
			var y *Node
			if cbhw {
				y = ToLayout(MaxPool2DIn(ToLayout(in[0], NHWC, CBHW), 2, CBHW), CBHW, NHWC)
			} else {
				y = MaxPool2D(in[0], 2)
			}
			return []*Node{y, Gradient(weightedSum(y, in[1]), in[0])[0]}
		}
	}
	assertAllClose(t, run(t, f(true), x, gy), run(t, f(false), x, gy), "y", "dx")
}

// TestReluGradientMatchesGoMLX checks nn.Relu against activation.Relu,
// including exact zeros (whose gradient GoMLX defines as 1).
func TestReluGradientMatchesGoMLX(t *testing.T) {
	xs := []float32{-2, -0.5, 0, 0, 0.25, 3, -1e-30, 1e-30}
	x := tensors.FromFlatDataAndDimensions(xs, 2, 4)
	gy := randArr(5, 2, 4).tensor(dtypes.Float32)
	f := func(relu func(*Node) *Node) func(in []*Node) []*Node {
		return func(in []*Node) []*Node {
			y := relu(in[0])
			return []*Node{y, Gradient(weightedSum(y, in[1]), in[0])[0]}
		}
	}
	got, want := run(t, f(Relu), x, gy), run(t, f(activation.Relu), x, gy)
	for i, name := range []string{"y", "dx"} {
		if relErr(got[i].Data, want[i].Data) != 0 {
			t.Errorf("%s: got %v, want %v", name, got[i].Data, want[i].Data)
		}
	}
}

func TestToLayoutRoundTrip(t *testing.T) {
	x := randArr(1, 2, 3, 4, 5)
	out := run(t, func(in []*Node) []*Node {
		cb := ToLayout(in[0], NHWC, CBHW)
		return []*Node{cb, ToLayout(cb, CBHW, NHWC)}
	}, x.tensor(dtypes.Float64))
	if got := out[0].Shape; !sameShape(got, []int{5, 2, 3, 4}) {
		t.Errorf("CBHW shape %v, want [5 2 3 4]", got)
	}
	assertClose(t, "round trip", out[1], x, 0)
}

func TestPreferredLayout(t *testing.T) {
	if got := PreferredLayout(NewGraph(backend(t), "layout")); got != CBHW {
		t.Errorf("PreferredLayout on %q = %s, want CBHW", backend(t).Name(), got)
	}
}

// Step t of ColumnsAsSteps is column t, channels fastest, in both layouts.
func TestColumnsAsSteps(t *testing.T) {
	const b, h, w, c = 2, 3, 4, 5
	x := randArr(2, b, h, w, c)
	out := run(t, func(in []*Node) []*Node {
		return []*Node{ColumnsAsSteps(in[0], NHWC), ColumnsAsSteps(ToLayout(in[0], NHWC, CBHW), CBHW)}
	}, x.tensor(dtypes.Float64))
	for _, o := range out {
		if !sameShape(o.Shape, []int{b, w, h * c}) {
			t.Fatalf("shape %v, want [%d %d %d]", o.Shape, b, w, h*c)
		}
	}
	want := make([]float64, len(x.Data))
	for i := range b {
		for y := range h {
			for col := range w {
				for ch := range c {
					want[(i*w+col)*h*c+y*c+ch] = x.Data[((i*h+y)*w+col)*c+ch]
				}
			}
		}
	}
	for k, o := range out {
		assertClose(t, []string{"NHWC", "CBHW"}[k], o, arr{Shape: o.Shape, Data: want}, 0)
	}
}
