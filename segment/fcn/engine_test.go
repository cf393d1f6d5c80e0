package fcn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn/nntest"
)

// TestEngineAgrees checks the network (skip connections, k2 s2 transposed
// convolutions) on the engine against the Go backend without it: same
// weights and images give the same logits and gradients of every variable.
func TestEngineAgrees(t *testing.T) {
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
			nntest.EngineAgrees(t, 3, true, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
				return []*Node{Logits(cfg)(scope, x)}
			}, x, 1e-4)
		})
	}
}
