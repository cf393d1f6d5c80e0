package fcn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
)

// layoutRun returns the logits and the gradients of every trainable
// variable (nntest.OutputsAndGrads).
func layoutRun(t *testing.T, be compute.Backend, cfg Config, forceNHWC bool, x *tensors.Tensor) map[string][]float32 {
	fn := logits(cfg, forceNHWC)
	return nntest.OutputsAndGrads(t, be, 5, false, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
		y := fn(scope, x)
		y.AssertDims(x.Shape().Dimensions[0], x.Shape().Dimensions[1], x.Shape().Dimensions[2], 1)
		return []*Node{y}
	}, x)
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
			nntest.AssertAgree(t, got, want, 1e-5, 3)
		})
	}
}
