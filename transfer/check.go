package transfer

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"

	"github.com/dl4img/dl4img/nn/netbench"
)

// CheckNet runs the transfer model (the embedded demo backbone, as imported
// from ONNX, plus a two-class head) through netbench.CheckModel: the
// backbone keeps its ONNX weights, the head gets host-drawn ones. It is the
// "transfer" entry of `dl4img bench --check`.
func CheckNet(backend compute.Backend, batch int) (netbench.CheckResult, error) {
	if batch < 1 {
		return netbench.CheckResult{}, fmt.Errorf("transfer check: batch %d must be >= 1", batch)
	}
	dir, err := os.MkdirTemp("", "dl4img-check-")
	if err != nil {
		return netbench.CheckResult{}, fmt.Errorf("transfer check: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tinycnn.onnx")
	if err := os.WriteFile(path, demoONNX, 0o644); err != nil {
		return netbench.CheckResult{}, fmt.Errorf("transfer check: %w", err)
	}
	pre := BackbonePresets["tinycnn"]
	b, err := LoadBackbone(backend, path, pre, "")
	if err != nil {
		return netbench.CheckResult{}, err
	}
	st, err := b.store.Clone()
	if err != nil {
		return netbench.CheckResult{}, fmt.Errorf("transfer check: %w", err)
	}
	// Smooth deterministic images and alternating labels.
	x := make([]float32, batch*pre.Size*pre.Size*3)
	for i := range x {
		x[i] = float32((i*7919)%1000)/500 - 1
	}
	labels := make([]float32, batch)
	for i := range labels {
		labels[i] = float32(i % 2)
	}
	var h Head
	return netbench.CheckModel(backend, netbench.Model{
		Name:  "transfer",
		Store: st,
		Fn: func(scope *model.Scope, x *Node) *Node {
			f := b.featuresGraph(scope, x)
			h = Head{Dim: f.Shape().Dimensions[1], Classes: 2}
			return h.Logits(scope, f)
		},
		Loss: func(labels, logits []*Node) *Node { return h.loss(labels, logits) },
		Fill: func(v *model.Variable) bool { return v.Trainable && v.Scope() == "/head" },
		Batch: train.Batch{
			Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, batch, pre.Size, pre.Size, 3)},
			Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labels, batch, 1)},
		},
	})
}
