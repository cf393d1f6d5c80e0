package nn

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
)

type convTFixture struct {
	Cases []struct {
		Name                                   string
		Kernel, Stride, Padding, OutputPadding int `json:"-"`
		K                                      int `json:"kernel"`
		S                                      int `json:"stride"`
		P                                      int `json:"padding"`
		OP                                     int `json:"output_padding"`
		X, W, B, Y, Gy, Dx, Dw, Db             arr
	}
}

func TestConvTranspose2DMatchesTorch(t *testing.T) {
	var fx convTFixture
	loadFixture(t, "convtranspose.json", &fx)
	if len(fx.Cases) < 2 {
		t.Fatal("missing cases")
	}
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypes.Float32
			out := run(t, func(in []*Node) []*Node {
				x, w, b, gy := in[0], in[1], in[2], in[3]
				y := ConvTranspose2DOp(x, w, b, c.S, c.P, c.OP)
				return append([]*Node{y}, Gradient(weightedSum(y, gy), x, w, b)...)
			}, c.X.tensor(dt), c.W.tensor(dt), c.B.tensor(dt), c.Gy.tensor(dt))
			assertClose(t, "y", out[0], c.Y, 1e-5)
			assertClose(t, "dx", out[1], c.Dx, 1e-5)
			assertClose(t, "dw", out[2], c.Dw, 1e-5)
			assertClose(t, "db", out[3], c.Db, 1e-5)
		})
	}
}

func TestConvTranspose2DFiniteDifferences(t *testing.T) {
	for _, c := range []struct{ k, s, p int }{{2, 2, 0}, {4, 2, 1}} {
		x := randArr(11, 1, 3, 2, 2)
		w := randArr(12, c.k, c.k, 2, 2)
		oh, ow := (3-1)*c.s-2*c.p+c.k, (2-1)*c.s-2*c.p+c.k
		gy := randArr(13, 1, oh, ow, 2)
		fdCheck(t, func(in []*Node) *Node {
			return weightedSum(ConvTranspose2DOp(in[0], in[1], nil, c.s, c.p, 0), in[2])
		}, x, w, gy)
	}
}
