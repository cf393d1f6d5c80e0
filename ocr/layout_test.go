package ocr

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
	"github.com/dl4img/dl4img/tasks"
)

// layoutRun returns net's logits and the gradients of every trainable
// variable (nntest.OutputsAndGrads), checking the layout it builds in.
func layoutRun(t *testing.T, backend compute.Backend, net NetConfig, x *tensors.Tensor, training bool) map[string][]float32 {
	return nntest.OutputsAndGrads(t, backend, 3, training, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
		if want := nn.CBHW; !net.forceNHWC && net.layout(x.Graph()) != want {
			t.Fatalf("layout on %s = %s, want %s", backend.Name(), net.layout(x.Graph()), want)
		}
		return []*Node{net.Logits(scope, x)}
	}, x)
}

// TestLayoutsAgree checks that the networks built in the Go backend's
// channels-major layout compute what the NHWC ones compute: with the same
// weights and images, in training mode (batch-norm batch statistics,
// dropout) and inference mode (moving averages), the logits and the
// gradients of every trainable variable agree. The image sizes are odd
// after some pools, so the pools' cropping is exercised too.
func TestLayoutsAgree(t *testing.T) {
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
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
			got := layoutRun(t, backend, c.net, x, c.training)
			ref := c.net
			ref.forceNHWC = true
			want := layoutRun(t, backend, ref, x, c.training)
			nntest.AssertAgree(t, got, want, 1e-5, 3)
		})
	}
}
