package nn

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

type convFixture struct {
	Cases []struct {
		Name                       string
		Kernel, Stride             int
		Padding                    string
		X, W, B, Y, Gy, Dx, Dw, Db arr
	}
}

func parsePadding(s string) Padding {
	if s == "same" {
		return PadSame
	}
	return PadValid
}

// conv2DWithGrads returns y, dx, dw, db for cotangent gy.
func conv2DWithGrads(stride int, pad Padding, impl ConvImpl) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		x, w, b, gy := in[0], in[1], in[2], in[3]
		y := Add(Conv2DOp(x, w, stride, pad, impl), Reshape(b, 1, 1, 1, -1))
		grads := Gradient(weightedSum(y, gy), x, w, b)
		return append([]*Node{y}, grads...)
	}
}

func TestConv2DMatchesTorch(t *testing.T) {
	var fx convFixture
	loadFixture(t, "conv2d.json", &fx)
	if len(fx.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range fx.Cases {
		for _, impl := range []ConvImpl{ConvIm2Col, ConvNative} {
			t.Run(fmt.Sprintf("%s/%s", c.Name, impl), func(t *testing.T) {
				dt := dtypes.Float32
				out := run(t, conv2DWithGrads(c.Stride, parsePadding(c.Padding), impl),
					c.X.tensor(dt), c.W.tensor(dt), c.B.tensor(dt), c.Gy.tensor(dt))
				assertClose(t, "y", out[0], c.Y, 1e-5)
				assertClose(t, "dx", out[1], c.Dx, 1e-5)
				assertClose(t, "dw", out[2], c.Dw, 1e-5)
				assertClose(t, "db", out[3], c.Db, 1e-5)
			})
		}
	}
}

// TestConv2DIm2ColEqualsNative checks that both paths agree (outputs and
// gradients) on larger random inputs than the fixtures.
func TestConv2DIm2ColEqualsNative(t *testing.T) {
	cases := []struct {
		h, w, cin, cout, k, s int
		pad                   Padding
	}{
		{17, 13, 8, 16, 3, 1, PadSame},
		{16, 20, 5, 7, 3, 2, PadSame},
		{15, 12, 4, 6, 5, 1, PadValid},
		{9, 9, 3, 4, 4, 2, PadSame},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("case%d", i), func(t *testing.T) {
			dt := dtypes.Float32
			x := randArr(uint64(i+1), 2, c.h, c.w, c.cin).tensor(dt)
			w := randArr(uint64(i+100), c.k, c.k, c.cin, c.cout).tensor(dt)
			b := randArr(uint64(i+200), c.cout).tensor(dt)
			dy := func(s, p int) *tensors.Tensor {
				oh, ow := (c.h+2*p-c.k)/s+1, (c.w+2*p-c.k)/s+1
				if c.pad == PadSame {
					oh, ow = (c.h+s-1)/s, (c.w+s-1)/s
				}
				return randArr(uint64(i+300), 2, oh, ow, c.cout).tensor(dt)
			}(c.s, 0)
			a := run(t, conv2DWithGrads(c.s, c.pad, ConvIm2Col), x, w, b, dy)
			n := run(t, conv2DWithGrads(c.s, c.pad, ConvNative), x, w, b, dy)
			for j, name := range []string{"y", "dx", "dw", "db"} {
				assertClose(t, name, a[j], n[j], 1e-5)
			}
		})
	}
}

func TestConv2DFiniteDifferences(t *testing.T) {
	for _, c := range []struct {
		s   int
		pad Padding
	}{{1, PadSame}, {2, PadSame}, {2, PadValid}} {
		t.Run(fmt.Sprintf("s%d_%d", c.s, c.pad), func(t *testing.T) {
			x := randArr(1, 1, 5, 4, 2)
			w := randArr(2, 3, 3, 2, 2)
			oh, ow := 5, 4
			if c.pad == PadSame {
				oh, ow = (5+c.s-1)/c.s, (4+c.s-1)/c.s
			} else {
				oh, ow = (5-3)/c.s+1, (4-3)/c.s+1
			}
			gy := randArr(3, 1, oh, ow, 2)
			fdCheck(t, func(in []*Node) *Node {
				return weightedSum(Conv2DOp(in[0], in[1], c.s, c.pad, ConvIm2Col), in[2])
			}, x, w, gy)
		})
	}
}

func TestConv2DBadInputPanics(t *testing.T) {
	g := NewGraph(backend(t), "bad")
	defer func() {
		if recover() == nil {
			t.Error("want panic for channel mismatch")
		}
	}()
	x := Zeros(g, shapesF32(1, 4, 4, 3))
	w := Zeros(g, shapesF32(3, 3, 2, 4))
	Conv2DOp(x, w, 1, PadSame, ConvIm2Col)
}

func TestConvAutoPicksIm2ColOnGoBackend(t *testing.T) {
	g := NewGraph(backend(t), "auto")
	if got := resolveImpl(g, ConvAuto); got != ConvIm2Col {
		t.Errorf("auto on %q resolved to %s, want im2col", backend(t).Name(), got)
	}
	if got := resolveImpl(g, ConvNative); got != ConvNative {
		t.Errorf("explicit native resolved to %s", got)
	}
}
