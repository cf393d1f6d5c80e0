package transfer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/onnx-gomlx/onnx"

	"github.com/dl4img/dl4img/nn/netbench"
)

// ONNXBench is the result of BenchONNX.
type ONNXBench struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	Batch   int    `json:"batch"`
	Size    int    `json:"size"`
	Steps   int    `json:"steps"`
	// FinetuneLayers > 0 times training steps instead: the last N weighted
	// layers and a dense head, binary cross-entropy, Adam.
	FinetuneLayers int `json:"finetune_layers,omitempty"`
	// FirstBatchNS includes parsing the graph and compiling it.
	FirstBatchNS  int64   `json:"first_batch_ns"`
	MedianBatchNS int64   `json:"median_batch_ns"`
	ImagesPerS    float64 `json:"images_per_s"`
	// MedianBatchCPUNS is the process CPU time (all threads) per batch.
	MedianBatchCPUNS int64 `json:"median_batch_cpu_ns"`
	PeakRSSBytes     int64 `json:"peak_rss_bytes"`
}

// BenchONNX times forward passes of the whole ONNX model at path (all its
// outputs) on batches of random images, or with finetune > 0 training steps
// that tune its last finetune weighted layers (as finetune_layers does) and
// a dense head: one warm-up batch (compilation), then steps timed ones.
// size 0 takes the model's own static size.
func BenchONNX(ctx context.Context, backend compute.Backend, path string, batch, size, steps, finetune int) (res ONNXBench, err error) {
	if batch < 1 || steps < 1 || size < 0 {
		return res, fmt.Errorf("bench onnx: batch (%d) and steps (%d) must be >= 1", batch, steps)
	}
	defer recoverErr(&err, path)
	im, err := parseImageModel(path, size)
	if err != nil {
		return res, err
	}
	size = im.size
	if len(im.dims) == 4 && im.dims[0] > 0 && im.dims[0] != batch {
		return res, fmt.Errorf("%s: input %q has a fixed batch of %d, not %d: use --batch %d", path, im.input, im.dims[0], batch, im.dims[0])
	}
	r := rand.New(rand.NewPCG(1, 2))
	input := make([]float32, batch*3*size*size)
	for i := range input {
		input[i] = float32(r.NormFloat64())
	}
	var step func() error
	if finetune > 0 {
		step, err = finetuneStep(backend, path, size, finetune, input, batch)
	} else {
		step, err = forwardStep(backend, im.m, im.input, im.nchw, input, batch, size)
	}
	if err != nil {
		return res, err
	}
	res = ONNXBench{Model: path, Backend: backend.Name(), Batch: batch, Size: size, Steps: steps, FinetuneLayers: finetune}
	var times, cpu []time.Duration
	for i := range steps + 1 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		start, startCPU := time.Now(), netbench.ProcessCPU()
		if err := step(); err != nil {
			return res, err
		}
		if i == 0 {
			res.FirstBatchNS = int64(time.Since(start))
			continue
		}
		times = append(times, time.Since(start))
		cpu = append(cpu, netbench.ProcessCPU()-startCPU)
	}
	res.MedianBatchNS = int64(netbench.Median(times))
	res.MedianBatchCPUNS = int64(netbench.Median(cpu))
	res.ImagesPerS = float64(batch) / time.Duration(res.MedianBatchNS).Seconds()
	res.PeakRSSBytes = netbench.PeakRSS()
	return res, nil
}

// forwardStep runs every output of the model on input.
func forwardStep(backend compute.Backend, m onnx.Model, inputName string, nchw bool, input []float32, batch, size int) (func() error, error) {
	outs, _ := m.Outputs()
	store := model.NewStore()
	if err := m.VariablesToScope(store.RootScope()); err != nil {
		return nil, err
	}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
		return m.CallGraph(scope, x.Graph(), map[string]*Node{inputName: x}, outs...)
	})
	if err != nil {
		return nil, err
	}
	dims := []int{batch, size, size, 3}
	if nchw {
		dims = []int{batch, 3, size, size}
	}
	return func() error {
		out, err := exec.Call(tensors.FromFlatDataAndDimensions(input, dims...))
		for _, t := range out {
			t.FinalizeAll()
		}
		return err
	}, nil
}

// finetuneStep is one training step of the backbone cut at its pooled
// features, its last layers weighted layers trainable, and a dense head.
func finetuneStep(backend compute.Backend, path string, size, layers int, input []float32, batch int) (func() error, error) {
	bb, err := LoadBackbone(backend, path, Preprocess{Size: size, Resize: "squash", Normalize: "unit"}, "")
	if err != nil {
		return nil, err
	}
	trainer, err := bb.finetuneTrainer(layers, 1e-4)
	if err != nil {
		return nil, err
	}
	labels := make([]float32, batch)
	for i := range labels {
		labels[i] = float32(i % 2)
	}
	return func() error {
		_, err := trainer.TrainStep(train.Batch{
			Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(input, batch, size, size, 3)},
			Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labels, batch, 1)}})
		return err
	}, nil
}

// finetuneTrainer trains the backbone's last layers weighted layers and a
// dense head on its features, binary cross-entropy, Adam at lr.
func (bb *Backbone) finetuneTrainer(layers int, lr float64) (*train.Trainer, error) {
	tune, err := bb.tuneVars(layers)
	if err != nil {
		return nil, err
	}
	for v := range bb.store.IterVariables() {
		if v.Scope() == "/"+onnx.ModelScope {
			v.SetTrainable(tune[v.Name()])
		}
	}
	modelFn := func(scope *model.Scope, x *Node) *Node {
		f := bb.featuresGraph(scope, x)
		w := scope.At("bench_head").VariableWithShape("weights", shapes.Make(f.DType(), f.Shape().Dimensions[1], 1))
		return MatMul(f, w.NodeValue(x.Graph()))
	}
	lossFn := func(labels, logits []*Node) *Node { return loss.BinaryCrossentropyLogits(labels, logits) }
	return train.NewTrainer(bb.backend, bb.store, modelFn, lossFn, optimizer.Adam().LearningRate(lr).Done(), nil, nil), nil
}

// staticSize is the spatial size of a rank-4 image input with a static,
// square size, else 0.
func staticSize(d []int) int {
	if len(d) != 4 {
		return 0
	}
	for _, s := range [][2]int{{d[2], d[3]}, {d[1], d[2]}} {
		if s[0] > 3 && s[0] == s[1] {
			return s[0]
		}
	}
	return 0
}
