package reader

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn/nntest"
)

// TestEngineAgrees checks the networks on the engine against the Go
// backend without it: with the same weights and images, in training mode
// (batch-norm batch statistics, dropout) and inference mode (moving
// averages), the logits and the gradients of every trainable variable
// agree. The image sizes are odd after some pools, so the pools' cropping
// is exercised too, and the strip reader's 2×1 pool.
func TestEngineAgrees(t *testing.T) {
	cnn := CNN{Height: 20, Width: 42, Classes: 5, Length: 2, Filters: 4}
	book := Book(20, 44, 5, 2, 4, 8, 6, 0.99)
	strip := Strip(16, 68, 5, 8, 3, 5, 1e-4)
	cases := []struct {
		name     string
		net      Net
		training bool
	}{
		{"cnn/train", cnn, true}, {"cnn/infer", cnn, false},
		{"book/train", book, true}, {"book/infer", book, false},
		{"strip/train", strip, true}, {"strip/infer", strip, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.net.Check(); err != nil {
				t.Fatal(err)
			}
			const batch = 3
			h, w, ch := c.net.Input()
			rng := rand.New(rand.NewPCG(1, 2))
			img := make([]float32, batch*h*w*ch)
			for i := range img {
				img[i] = rng.Float32()
			}
			x := tensors.FromFlatDataAndDimensions(img, batch, h, w, ch)
			nntest.EngineAgrees(t, 3, c.training, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
				return []*Node{c.net.Logits(scope, x)}
			}, x, 1e-4)
		})
	}
}
