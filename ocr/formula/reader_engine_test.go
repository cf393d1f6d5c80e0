package formula

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn/nntest"
)

// TestReaderEngineAgrees checks the reader (with its 2×1 pool) on the engine
// against the Go backend without it: same weights and strips give the same
// logits and gradients of every variable, in training mode (batch
// statistics) and inference mode (moving averages).
func TestReaderEngineAgrees(t *testing.T) {
	rc := ReaderConfig{Height: 16, Width: 68, Filters: 3, Hidden: 5, L2: 1e-4}
	if err := rc.Check(); err != nil {
		t.Fatal(err)
	}
	const batch = 2
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, batch*rc.Height*rc.Width)
	for i := range img {
		img[i] = rng.Float32()
	}
	x := tensors.FromFlatDataAndDimensions(img, batch, rc.Height, rc.Width, 1)
	for _, c := range []struct {
		name     string
		training bool
	}{{"train", true}, {"infer", false}} {
		t.Run(c.name, func(t *testing.T) {
			nntest.EngineAgrees(t, 3, c.training, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
				return []*Node{rc.Logits(scope, x)}
			}, x, 1e-4)
		})
	}
}
