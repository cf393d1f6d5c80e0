package transfer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// weightedSum is sum(y * r) for a fixed pseudo-random r of y's shape.
func weightedSum(y *Node, seed uint64) *Node {
	rng := rand.New(rand.NewPCG(seed, 8))
	r := make([]float32, y.Shape().Size())
	for i := range r {
		r[i] = rng.Float32()*2 - 1
	}
	return ReduceAllSum(Mul(y, Const(y.Graph(), tensors.FromFlatDataAndDimensions(r, y.Shape().Dimensions...))))
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

// scratchRun runs fn (features and, when not nil, an NHWC map) on a store
// seeded with a fixed seed and returns its outputs and the gradients of a
// fixed weighted sum of them w.r.t. every trainable variable, by name.
func scratchRun(t *testing.T, be compute.Backend, fn func(scope *model.Scope, x *Node) (feats, fmap *Node), x *tensors.Tensor) map[string][]float32 {
	t.Helper()
	st, err := nn.NewSeededStore(5)
	if err != nil {
		t.Fatal(err)
	}
	d := x.Shape().Dimensions
	var names []string
	outs, err := model.CallOnceN(be, st, func(scope *model.Scope, x *Node) []*Node {
		g := x.Graph()
		feats, fmap := fn(scope, x)
		feats.AssertDims(d[0], 64)
		out, loss := []*Node{feats}, weightedSum(feats, 1)
		names = append(names, "features")
		if fmap != nil {
			fmap.AssertDims(d[0], d[1]/4, d[2]/4, 64)
			out, loss = append(out, fmap), Add(loss, weightedSum(fmap, 2))
			names = append(names, "map")
		}
		var vars []*Node
		for v := range st.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				names = append(names, v.Path())
				vars = append(vars, v.NodeValue(g))
			}
		}
		return append(out, Gradient(loss, vars...)...)
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

// TestScratchLayouts checks the scratch CNN's entry points, which run in the
// Go backend's channels-major layout, against the same layers built in
// NHWC: with the same weights, the pooled features (featuresGraph and
// mapGraph), the NHWC conv map for the CAM and the gradients of every
// variable agree.
func TestScratchLayouts(t *testing.T) {
	be := goBackend(t)
	if got := nn.PreferredLayout(NewGraph(be, "layout")); got != nn.CBHW {
		t.Fatalf("PreferredLayout = %s, want CBHW (nothing would be compared)", got)
	}
	const b, h, w = 2, 18, 14 // odd sides after the pools: their cropping is exercised
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, b*h*w*3)
	for i := range img {
		img[i] = rng.Float32()*2 - 1
	}
	x := tensors.FromFlatDataAndDimensions(img, b, h, w, 3)
	net := scratchNet{}
	nhwc := func(scope *model.Scope, x *Node) (*Node, *Node) {
		m := net.convs(scope, x, nn.NHWC)
		return nn.GlobalAvgPool2D(m), m
	}
	cases := []struct {
		name      string
		got, want func(scope *model.Scope, x *Node) (feats, fmap *Node)
	}{
		{"mapGraph", net.mapGraph, nhwc},
		{"featuresGraph",
			func(scope *model.Scope, x *Node) (*Node, *Node) { return net.featuresGraph(scope, x), nil },
			func(scope *model.Scope, x *Node) (*Node, *Node) { f, _ := nhwc(scope, x); return f, nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := scratchRun(t, be, c.got, x), scratchRun(t, be, c.want, x)
			if len(got) != len(want) || len(want) < 7 { // features, 6 variables (+ map)
				t.Fatalf("got %d outputs, want %d (>= 7)", len(got), len(want))
			}
			for name, wv := range want {
				gv := got[name]
				if d := maxRelDiff(gv, wv); len(gv) != len(wv) || !(d <= 1e-5) {
					t.Errorf("%s: %d values (want %d), relative difference %.3g between layouts", name, len(gv), len(wv), d)
				}
			}
		})
	}
}
