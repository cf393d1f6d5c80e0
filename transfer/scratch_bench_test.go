package transfer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
)

// BenchmarkScratchTrainStep times Adam training steps of the from-scratch
// CNN and its two-class head on the Go backend (graph compilation
// excluded), as the scratch task trains them, reporting CPU seconds per
// step:
//
//	GOEXPERIMENT=simd go test ./transfer -run '^$' -bench ScratchTrainStep -benchtime 3x
func BenchmarkScratchTrainStep(b *testing.B) {
	for _, c := range []struct{ side, batch int }{{64, 32}, {224, 8}} {
		b.Run(fmt.Sprintf("%dx%d/batch%d", c.side, c.side, c.batch), func(b *testing.B) {
			st, err := nn.NewSeededStore(1)
			if err != nil {
				b.Fatal(err)
			}
			h := Head{Dim: 64, Classes: 2, Dropout: 0.5}
			h.vars(st.RootScope())
			h.norm(st.RootScope())
			net := scratchNet{}
			modelFn := func(scope *model.Scope, x *Node) *Node { return h.Logits(scope, net.featuresGraph(scope, x)) }
			tr := train.NewTrainer(goBackend(b), st, modelFn, h.loss, optimizer.Adam().LearningRate(1e-3).Done(), nil, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, c.batch*c.side*c.side*3)
			for i := range x {
				x[i] = rng.Float32()*2 - 1
			}
			y := make([]float32, c.batch)
			for i := range y {
				y[i] = float32(i % 2)
			}
			batch := train.Batch{Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, c.batch, c.side, c.side, 3)},
				Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(y, c.batch, 1)}}
			nntest.BenchTrainSteps(b, tr, batch)
		})
	}
}
