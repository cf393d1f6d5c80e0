package transfer

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
)

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
	checked := func(feats, fmap *Node) []*Node {
		feats.AssertDims(b, 64)
		if fmap == nil {
			return []*Node{feats}
		}
		fmap.AssertDims(b, h/4, w/4, 64)
		return []*Node{feats, fmap}
	}
	nhwc := func(scope *model.Scope, x *Node) (*Node, *Node) {
		m := net.convs(scope, x, nn.NHWC)
		return nn.GlobalAvgPool2D(m), m
	}
	cases := []struct {
		name      string
		outs      []string
		got, want func(scope *model.Scope, x *Node) []*Node
	}{
		{"mapGraph", []string{"features", "map"},
			func(scope *model.Scope, x *Node) []*Node { return checked(net.mapGraph(scope, x)) },
			func(scope *model.Scope, x *Node) []*Node { return checked(nhwc(scope, x)) }},
		{"featuresGraph", []string{"features"},
			func(scope *model.Scope, x *Node) []*Node { return checked(net.featuresGraph(scope, x), nil) },
			func(scope *model.Scope, x *Node) []*Node { f, _ := nhwc(scope, x); return checked(f, nil) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := nntest.OutputsAndGrads(t, be, 5, false, c.outs, c.got, x)
			want := nntest.OutputsAndGrads(t, be, 5, false, c.outs, c.want, x)
			nntest.AssertAgree(t, got, want, 1e-5, len(c.outs)+6) // 6 variables
		})
	}
}
