package ocr

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dl4img/dl4img/tasks"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
)

// benchTrainStep times Adam training steps of net at batch on the Go
// backend with random images and labels (graph compilation excluded).
func benchTrainStep(b *testing.B, net NetConfig, batch int) {
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	st, err := nn.NewSeededStore(1)
	if err != nil {
		b.Fatal(err)
	}
	trainer := train.NewTrainer(backend, st, net.Logits, net.Loss, optimizer.Adam().LearningRate(1e-3).Done(), nil, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*net.Height*net.Width*3)
	for i := range x {
		x[i] = rng.Float32()
	}
	labels := make([]int32, batch*net.Length)
	for i := range labels {
		labels[i] = int32(rng.IntN(net.Classes))
	}
	lens := make([]int32, batch)
	for i := range lens {
		lens[i] = int32(net.Length)
	}
	batchOf := func() train.Batch {
		return train.Batch{Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, batch, net.Height, net.Width, 3)},
			Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labels, batch, net.Length), tensors.FromFlatDataAndDimensions(lens, batch)}}
	}
	if _, err := trainer.TrainStep(batchOf()); err != nil { // compile
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := trainer.TrainStep(batchOf()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStep measures the book's networks (captcha-cnn at 170×80,
// CRNN at 170×80 and 180×60) and the small test CRNN:
//
//	GOEXPERIMENT=simd go test ./ocr -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	book := NetConfig{Height: 80, Width: 170, Classes: 36, Length: 4, Filters: 32, Dense: 128, RNNHidden: 128}
	cases := []struct {
		name string
		net  NetConfig
	}{
		{"captcha-cnn", func() NetConfig { n := book; n.Arch = ArchCNN; return n }()},
		{"captcha-ctc", func() NetConfig { n := book; n.Arch = ArchCRNN; return n }()},
		{"arith-ctc", NetConfig{Arch: ArchCRNN, Height: 60, Width: 180, Classes: 15, Length: 7, Filters: 32, Dense: 128, RNNHidden: 128}},
		{"small-ctc", NetConfig{Arch: ArchCRNN, Height: 32, Width: 64, Classes: 10, Length: 2, Filters: 8, Dense: 32, RNNHidden: 32}},
		{"small-cnn", NetConfig{Arch: ArchCNN, Height: 32, Width: 64, Classes: 10, Length: 2, Filters: 8}},
	}
	for _, c := range cases {
		for _, batch := range []int{32, 128} {
			b.Run(fmt.Sprintf("%s/batch%d", c.name, batch), func(b *testing.B) { benchTrainStep(b, c.net, batch) })
		}
	}
}
