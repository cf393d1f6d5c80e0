package fcn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// layoutRun builds the network on a store seeded with a fixed seed (so two
// runs start from the same weights) and returns the logits and the
// gradients of a fixed weighted sum of them w.r.t. every trainable
// variable, by name.
func layoutRun(t *testing.T, be compute.Backend, cfg Config, forceNHWC bool, x *tensors.Tensor) map[string][]float32 {
	t.Helper()
	st, err := nn.NewSeededStore(5)
	if err != nil {
		t.Fatal(err)
	}
	fn := logits(cfg, forceNHWC)
	var names []string
	outs, err := model.CallOnceN(be, st, func(scope *model.Scope, x *Node) []*Node {
		g := x.Graph()
		y := fn(scope, x)
		y.AssertDims(x.Shape().Dimensions[0], x.Shape().Dimensions[1], x.Shape().Dimensions[2], 1)
		rng := rand.New(rand.NewPCG(7, 8))
		gy := make([]float32, y.Shape().Size())
		for i := range gy {
			gy[i] = rng.Float32()*2 - 1
		}
		loss := ReduceAllSum(Mul(y, Const(g, tensors.FromFlatDataAndDimensions(gy, y.Shape().Dimensions...))))
		names = append(names, "logits")
		var vars []*Node
		for v := range st.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				names = append(names, v.Path())
				vars = append(vars, v.NodeValue(g))
			}
		}
		return append([]*Node{y}, Gradient(loss, vars...)...)
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	res := make(map[string][]float32, len(outs))
	for i, o := range outs {
		res[names[i]] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

// maxRelDiff is max|got-want| / max(1, max|want|).
func maxRelDiff(got, want []float32) float64 {
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

// TestLayoutsAgree checks that the network in the Go backend's
// channels-major layout (skip connections concatenated on its channels
// axis) computes what the NHWC one computes: same weights and images give
// the same logits and the same gradients of every variable.
func TestLayoutsAgree(t *testing.T) {
	be := backend(t)
	if got := nn.PreferredLayout(NewGraph(be, "layout")); got != nn.CBHW {
		t.Fatalf("PreferredLayout on %s = %s, want CBHW (nothing would be compared)", be.Name(), got)
	}
	for _, cfg := range []Config{
		{Filters: 3, Depth: 2, ConvsPerLevel: 2, L2: 1e-4, Loss: "bce"},
		{Filters: 4, Depth: 1, ConvsPerLevel: 1, Loss: "bce"},
		{Filters: 2, Depth: 0, ConvsPerLevel: 1, Loss: "bce"},
	} {
		t.Run(fmt.Sprintf("f%d_d%d_c%d", cfg.Filters, cfg.Depth, cfg.ConvsPerLevel), func(t *testing.T) {
			const b, h, w = 2, 12, 8
			rng := rand.New(rand.NewPCG(1, 2))
			img := make([]float32, b*h*w*3)
			for i := range img {
				img[i] = rng.Float32()*2 - 1
			}
			x := tensors.FromFlatDataAndDimensions(img, b, h, w, 3)
			got := layoutRun(t, be, cfg, false, x)
			want := layoutRun(t, be, cfg, true, x)
			if len(got) != len(want) || len(want) < 3 {
				t.Fatalf("got %d outputs, want %d (>= 3)", len(got), len(want))
			}
			for name, wv := range want {
				gv, ok := got[name]
				switch {
				case !ok:
					t.Errorf("%s: missing in the channels-major run", name)
				case len(gv) != len(wv):
					t.Errorf("%s: %d values, want %d", name, len(gv), len(wv))
				case !(maxRelDiff(gv, wv) <= 1e-5):
					t.Errorf("%s: relative difference %.3g between layouts", name, maxRelDiff(gv, wv))
				}
			}
		})
	}
}
