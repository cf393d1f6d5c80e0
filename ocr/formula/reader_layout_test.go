package formula

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

// readerLayoutRun returns the reader's logits and the gradients of every
// trainable variable (nntest.OutputsAndGrads), checking the layout it
// builds in.
func readerLayoutRun(t *testing.T, be compute.Backend, rc ReaderConfig, x *tensors.Tensor, training bool) map[string][]float32 {
	return nntest.OutputsAndGrads(t, be, 3, training, []string{"logits"}, func(scope *model.Scope, x *Node) []*Node {
		if got := rc.layout(x.Graph()); !rc.forceNHWC && got != nn.CBHW {
			t.Fatalf("layout on %s = %s, want CBHW (nothing would be compared)", be.Name(), got)
		}
		return []*Node{rc.Logits(scope, x)}
	}, x)
}

// TestReaderLayoutsAgree checks that the reader built in the Go backend's
// channels-major layout (including its 2×1 pool) computes what the NHWC
// one computes: same weights and strips give the same logits and gradients
// of every variable, in training mode (batch statistics) and inference
// mode (moving averages).
func TestReaderLayoutsAgree(t *testing.T) {
	be, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
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
			got := readerLayoutRun(t, be, rc, x, c.training)
			ref := rc
			ref.forceNHWC = true
			want := readerLayoutRun(t, be, ref, x, c.training)
			nntest.AssertAgree(t, got, want, 1e-5, 3)
		})
	}
}
