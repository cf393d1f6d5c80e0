package ocr

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
// is exercised too.
func TestEngineAgrees(t *testing.T) {
	cases := []struct {
		name     string
		net      NetConfig
		training bool
	}{
		{"cnn/train", NetConfig{Arch: ArchCNN, Height: 20, Width: 42, Classes: 5, Length: 2, Filters: 4}, true},
		{"cnn/infer", NetConfig{Arch: ArchCNN, Height: 20, Width: 42, Classes: 5, Length: 2, Filters: 4}, false},
		{"crnn/train", NetConfig{Arch: ArchCRNN, Height: 20, Width: 44, Classes: 5, Length: 2, Filters: 4, Dense: 8, RNNHidden: 6}, true},
		{"crnn/infer", NetConfig{Arch: ArchCRNN, Height: 20, Width: 44, Classes: 5, Length: 2, Filters: 4, Dense: 8, RNNHidden: 6}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.net.Check(); err != nil {
				t.Fatal(err)
			}
			const batch = 3
			rng := rand.New(rand.NewPCG(1, 2))
			img := make([]float32, batch*c.net.Height*c.net.Width*3)
			for i := range img {
				img[i] = rng.Float32()
			}
			x := tensors.FromFlatDataAndDimensions(img, batch, c.net.Height, c.net.Width, 3)
			nntest.EngineAgrees(t, 3, c.training, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
				return []*Node{c.net.Logits(scope, x)}
			}, x, 1e-4)
		})
	}
}
