//go:build !nodnnl

package engine

import (
	"github.com/gomlx/compute/dtypes"
)

// minElementwise is the smallest element-wise op (elements) worth a step
// of its own.
const minElementwise = 1 << 14

// reluGradKernel maps ReLU's gradient as nn.Relu (and torch) write it,
// Where(GreaterThan(y, 0), dy, 0), where the comparison feeds nothing
// else, to oneDNN's ReLU backward from the output: one multithreaded pass
// instead of two on one core.
func (b *backend) reluGradKernel(n *node, readers map[*value]int) (*placed, string) {
	cond, dy, other := n.inputs[0], n.inputs[1], n.inputs[2]
	gt := cond.node
	if gt.op != "GreaterThan" || readers[cond] != 1 || !isZero(other) || !isZero(gt.inputs[1]) {
		return nil, ""
	}
	y := gt.inputs[0]
	if dy.shape.DType != dtypes.Float32 || !y.shape.Equal(dy.shape) || !n.outs[0].shape.Equal(dy.shape) ||
		dy.shape.Size() < minElementwise {
		return nil, ""
	}
	op, err := b.lib.ReluBackward(int64(dy.shape.Size()))
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	return &placed{k: &argsKernel{lib: b.lib, op: op, label: "relu backward", shapes: n.outShapes()},
		in: []*value{y, dy}}, ""
}
