package transfer

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn/nntest"
)

// TestScratchEngineAgrees checks the scratch CNN's entry points on the
// engine against the Go backend without it: with the same weights, the
// pooled features, the conv map for the CAM and the gradients of every
// variable agree.
func TestScratchEngineAgrees(t *testing.T) {
	const b, h, w = 2, 18, 14 // odd sides after the pools: their cropping is exercised
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, b*h*w*3)
	for i := range img {
		img[i] = rng.Float32()*2 - 1
	}
	x := tensors.FromFlatDataAndDimensions(img, b, h, w, 3)
	net := scratchNet{}
	nntest.EngineAgrees(t, 5, false, []string{"features", "map"}, func(scope *model.Scope, x *Node) []*Node {
		f, m := net.mapGraph(scope, x)
		f.AssertDims(b, 64)
		m.AssertDims(b, h/4, w/4, 64)
		return []*Node{f, m}
	}, x, 1e-4)
}
