package nn

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
)

type poolFixture struct {
	Cases []struct {
		Name         string
		Size         int
		X, Y, Gy, Dx arr
	}
}

func TestMaxPool2DMatchesTorch(t *testing.T) {
	var fx poolFixture
	loadFixture(t, "maxpool.json", &fx)
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypes.Float32
			out := run(t, func(in []*Node) []*Node {
				y := MaxPool2D(in[0], c.Size)
				return []*Node{y, Gradient(weightedSum(y, in[1]), in[0])[0]}
			}, c.X.tensor(dt), c.Gy.tensor(dt))
			assertClose(t, "y", out[0], c.Y, 1e-7)
			assertClose(t, "dx", out[1], c.Dx, 1e-7)
		})
	}
}

func TestMaxPool2DFiniteDifferences(t *testing.T) {
	x := randArr(7, 1, 5, 4, 2) // odd height: last row dropped
	gy := randArr(8, 1, 2, 2, 2)
	fdCheck(t, func(in []*Node) *Node { return weightedSum(MaxPool2D(in[0], 2), in[1]) }, x, gy)
}

func TestGlobalAvgPool2D(t *testing.T) {
	x := randArr(9, 2, 3, 4, 5)
	out := run(t, func(in []*Node) []*Node { return []*Node{GlobalAvgPool2D(in[0])} }, x.tensor(dtypes.Float64))
	want := make([]float64, 10)
	for b := range 2 {
		for i := range 12 {
			for c := range 5 {
				want[b*5+c] += x.Data[(b*12+i)*5+c] / 12
			}
		}
	}
	assertClose(t, "mean", out[0], arr{Shape: []int{2, 5}, Data: want}, 1e-12)
}
