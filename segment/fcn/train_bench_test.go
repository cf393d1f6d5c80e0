package fcn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
)

// BenchmarkTrainStep times Adam training steps of the FCN on the Go backend
// (graph compilation excluded) at the segment kind's demo and default
// sizes, reporting CPU seconds per step:
//
//	GOEXPERIMENT=simd go test ./segment/fcn -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		name        string
		cfg         Config
		batch, side int
	}{
		{"demo", Config{Filters: 8, Depth: 2, ConvsPerLevel: 2, L2: 1e-4, Loss: "bce+dice"}, 8, 64},
		{"default", Config{Filters: 16, Depth: 3, ConvsPerLevel: 2, L2: 1e-4, Loss: "bce+dice"}, 8, 256},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/%dx%d/batch%d", c.name, c.side, c.side, c.batch), func(b *testing.B) {
			st, err := nn.NewSeededStore(1)
			if err != nil {
				b.Fatal(err)
			}
			lf, err := LossFn(c.cfg)
			if err != nil {
				b.Fatal(err)
			}
			tr := train.NewTrainer(backend(b), st, Logits(c.cfg), lf, optimizer.Adam().LearningRate(1e-3).Done(), nil, nil)
			imgs, masks := toyBatch(rand.New(rand.NewPCG(1, 2)), c.batch, c.side)
			x, err := Input(imgs)
			if err != nil {
				b.Fatal(err)
			}
			y, err := Labels(masks)
			if err != nil {
				b.Fatal(err)
			}
			batch := train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}}
			nntest.BenchTrainSteps(b, tr, batch)
		})
	}
}
