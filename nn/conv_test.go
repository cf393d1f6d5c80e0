package nn

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
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
func conv2DWithGrads(stride int, pad Padding) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		x, w, b, gy := in[0], in[1], in[2], in[3]
		y := Add(Conv2DOp(x, w, stride, pad), Reshape(b, 1, 1, 1, -1))
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
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypes.Float32
			out := run(t, conv2DWithGrads(c.Stride, parsePadding(c.Padding)),
				c.X.tensor(dt), c.W.tensor(dt), c.B.tensor(dt), c.Gy.tensor(dt))
			assertClose(t, "y", out[0], c.Y, 1e-5)
			assertClose(t, "dx", out[1], c.Dx, 1e-5)
			assertClose(t, "dw", out[2], c.Dw, 1e-5)
			assertClose(t, "db", out[3], c.Db, 1e-5)
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
				return weightedSum(Conv2DOp(in[0], in[1], c.s, c.pad), in[2])
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
	Conv2DOp(x, w, 1, PadSame)
}
