package reader

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

// BenchmarkTrainStep times Adam training steps on the Go backend with
// random images and labels (graph compilation excluded), reporting CPU
// seconds per step: the book's networks (captcha-cnn at 170×80, its CRNN at
// 170×80 and 180×60), small test ones, and the strip reader at the formula
// kind's demo and default sizes (the default at batch 8 only, to stay
// short):
//
//	GOEXPERIMENT=simd go test ./ocr/reader -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		name    string
		net     Net
		classes int
		batches []int
	}{
		{"captcha-cnn", CNN{Height: 80, Width: 170, Classes: 36, Length: 4, Filters: 32}, 36, []int{32, 128}},
		{"captcha-ctc", Book(80, 170, 36, 4, 32, 128, 128, 0.99), 36, []int{32, 128}},
		{"arith-ctc", Book(60, 180, 15, 7, 32, 128, 128, 0.99), 15, []int{32, 128}},
		{"small-ctc", Book(32, 64, 10, 2, 8, 32, 32, 0.99), 10, []int{32, 128}},
		{"small-cnn", CNN{Height: 32, Width: 64, Classes: 10, Length: 2, Filters: 8}, 10, []int{32, 128}},
		{"strip-demo", Strip(32, 320, 44, 64, 8, 32, 1e-5), 44, []int{16}},
		{"strip-default", Strip(80, 900, 44, 64, 32, 128, 1e-5), 44, []int{8}},
	}
	for _, c := range cases {
		for _, batch := range c.batches {
			b.Run(fmt.Sprintf("%s/batch%d", c.name, batch), func(b *testing.B) { benchTrainStep(b, c.net, c.classes, batch) })
		}
	}
}

// benchTrainStep times net's training steps on random images and labels
// of LabelLen characters (20 at most) of classes.
func benchTrainStep(b *testing.B, net Net, classes, batch int) {
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	st, err := nn.NewSeededStore(1)
	if err != nil {
		b.Fatal(err)
	}
	trainer := train.NewTrainer(backend, st, net.Logits, Loss(net), optimizer.Adam().LearningRate(1e-3).Done(), nil, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	h, w, c := net.Input()
	x := make([]float32, batch*h*w*c)
	for i := range x {
		x[i] = rng.Float32()
	}
	n := net.LabelLen()
	labels := make([]int32, batch*n)
	lens := make([]int32, batch)
	for i := range lens {
		lens[i] = int32(min(n, 20))
		for j := range lens[i] {
			labels[i*n+int(j)] = int32(rng.IntN(classes))
		}
	}
	nntest.BenchTrainSteps(b, trainer, train.Batch{Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, batch, h, w, c)},
		Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labels, batch, n), tensors.FromFlatDataAndDimensions(lens, batch)}})
}
