package transfer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/onnx-gomlx/onnx/parser"

	"github.com/dl4img/dl4img/nn/netbench"
)

// ONNXBench is the result of BenchONNX.
type ONNXBench struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	Batch   int    `json:"batch"`
	Size    int    `json:"size"`
	Steps   int    `json:"steps"`
	// FirstBatchNS includes parsing the graph and compiling it.
	FirstBatchNS  int64   `json:"first_batch_ns"`
	MedianBatchNS int64   `json:"median_batch_ns"`
	ImagesPerS    float64 `json:"images_per_s"`
	// MedianBatchCPUNS is the process CPU time (all threads) per batch.
	MedianBatchCPUNS int64 `json:"median_batch_cpu_ns"`
	PeakRSSBytes     int64 `json:"peak_rss_bytes"`
}

// BenchONNX times forward passes of the whole ONNX model at path (all its
// outputs) on batches of random images: one warm-up batch (compilation),
// then steps timed ones. size 0 takes the model's own static size.
func BenchONNX(ctx context.Context, backend compute.Backend, path string, batch, size, steps int) (res ONNXBench, err error) {
	if batch < 1 || steps < 1 || size < 0 {
		return res, fmt.Errorf("bench onnx: batch (%d) and steps (%d) must be >= 1", batch, steps)
	}
	if _, err := onnxNodes(path); err != nil { // names the file when it is not ONNX
		return res, err
	}
	defer recoverErr(&err, path)
	m, err := parser.ParseFile(path)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	names, shs := m.Inputs()
	if len(names) != 1 {
		return res, fmt.Errorf("%s: want one image input, the model has %d (%v)", path, len(names), names)
	}
	d := shs[0].Dimensions
	if size == 0 {
		size = staticSize(d)
		if size <= 0 {
			return res, fmt.Errorf("%s: input %q has no static size (%s): give --size", path, names[0], shs[0])
		}
	}
	nchw, err := inputLayout(shs[0], size)
	if err != nil {
		return res, fmt.Errorf("%s: input %q: %w", path, names[0], err)
	}
	if len(d) == 4 && d[0] > 0 && d[0] != batch {
		return res, fmt.Errorf("%s: input %q has a fixed batch of %d, not %d: use --batch %d", path, names[0], d[0], batch, d[0])
	}
	outs, _ := m.Outputs()
	store := model.NewStore()
	if err := m.VariablesToScope(store.RootScope()); err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
		return m.CallGraph(scope, x.Graph(), map[string]*Node{names[0]: x}, outs...)
	})
	if err != nil {
		return res, err
	}
	dims := []int{batch, size, size, 3}
	if nchw {
		dims = []int{batch, 3, size, size}
	}
	r := rand.New(rand.NewPCG(1, 2))
	input := make([]float32, batch*3*size*size)
	for i := range input {
		input[i] = float32(r.NormFloat64())
	}
	res = ONNXBench{Model: path, Backend: backend.Name(), Batch: batch, Size: size, Steps: steps}
	var times, cpu []time.Duration
	for i := range steps + 1 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		start, startCPU := time.Now(), netbench.ProcessCPU()
		out, err := exec.Call(tensors.FromFlatDataAndDimensions(input, dims...))
		if err != nil {
			return res, err
		}
		for _, t := range out {
			t.FinalizeAll()
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
