package formula

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/nn/nntest"
	"github.com/dl4img/dl4img/tasks"
)

// BenchmarkReaderTrainStep times Adam training steps of the reader on the
// Go backend with random strips and labels (graph compilation excluded) at
// the formula kind's demo and default sizes (the default at batch 8, not 32,
// to stay short), reporting CPU seconds per step:
//
//	GOEXPERIMENT=simd go test ./ocr/formula -run '^$' -bench ReaderTrainStep -benchtime 3x
func BenchmarkReaderTrainStep(b *testing.B) {
	cases := []struct {
		name  string
		rc    ReaderConfig
		batch int
	}{
		{"demo", ReaderConfig{Height: 32, Width: 320, Filters: 8, Hidden: 32, L2: 1e-5}, 16},
		{"default", ReaderConfig{Height: 80, Width: 900, Filters: 32, Hidden: 128, L2: 1e-5}, 8},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/%dx%d/batch%d", c.name, c.rc.Width, c.rc.Height, c.batch), func(b *testing.B) {
			be, _, err := tasks.NewBackend("go")
			if err != nil {
				b.Fatal(err)
			}
			st, err := nn.NewSeededStore(1)
			if err != nil {
				b.Fatal(err)
			}
			tr := train.NewTrainer(be, st, c.rc.Logits, c.rc.Loss, optimizer.Adam().LearningRate(1e-3).Done(), nil, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, c.batch*c.rc.Height*c.rc.Width)
			for i := range x {
				x[i] = rng.Float32()
			}
			labels := make([][]int32, c.batch)
			for i := range labels {
				labels[i] = make([]int32, 20)
				for j := range labels[i] {
					labels[i][j] = int32(rng.IntN(c.rc.Blank()))
				}
			}
			lt, lens := labelTensors(labels)
			batch := train.Batch{Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, c.batch, c.rc.Height, c.rc.Width, 1)},
				Labels: []*tensors.Tensor{lt, lens}}
			nntest.BenchTrainSteps(b, tr, batch)
		})
	}
}
