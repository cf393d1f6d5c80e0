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
	k, err := b.newReluKernel(n, true, dy.shape.Size())
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	return &placed{k: k, in: []*value{y, dy}}, ""
}

// reluKernels places each ReLU, Max(x, 0), that no convolution took in
// (fuse runs first), on oneDNN's ReLU forward: multithreaded, and in a
// region's layout where the values around it are (a batch norm's output,
// in the CRNN). As fuse, it sees through the Identity ops before and after
// it (nn.Relu's custom gradient).
func (b *backend) reluKernels(f *function, kernels map[*node]*placed) {
	live := liveNodes(f, kernels, sourceOf(kernels))
	readers := map[*value][]*node{}
	for _, n := range f.nodes {
		if live[n.index] {
			for _, in := range n.inputs {
				readers[in] = append(readers[in], n)
			}
		}
	}
	for _, v := range f.outputs {
		readers[v] = append(readers[v], nil)
	}
	for _, n := range f.nodes {
		if !live[n.index] || n.op != "Max" || kernels[n] != nil {
			continue
		}
		x := n.inputs[0]
		if isZero(x) {
			x = n.inputs[1]
		} else if !isZero(n.inputs[1]) {
			continue
		}
		if x.shape.DType != dtypes.Float32 || !x.shape.Equal(n.outs[0].shape) || x.shape.Size() < minElementwise {
			continue
		}
		for x.node.op == "Identity" {
			x = x.node.inputs[0]
		}
		last := n
		for r := readers[last.outs[0]]; len(r) == 1 && r[0] != nil && r[0].op == "Identity" && kernels[r[0]] == nil; r = readers[last.outs[0]] {
			last = r[0]
		}
		if k, err := b.newReluKernel(last, false, x.shape.Size()); err == nil {
			kernels[last] = &placed{k: k, in: []*value{x}}
		}
	}
}

// reluKernel is ReLU forward, x -> y, or its gradient, (y, dy) -> dx,
// element by element.
type reluKernel struct {
	argsKernel
	backward bool
}

func (b *backend) newReluKernel(n *node, backward bool, size int) (*reluKernel, error) {
	op, err := b.lib.Relu(int64(size), backward)
	if err != nil {
		return nil, err
	}
	label := "relu forward"
	if backward {
		label = "relu backward"
	}
	return &reluKernel{argsKernel{lib: b.lib, op: op, label: label, shapes: n.outShapes()}, backward}, nil
}

func (k *reluKernel) sized(n int) (kernel, error) {
	op, err := k.lib.Relu(int64(n), k.backward)
	if err != nil {
		return nil, err
	}
	c := *k
	c.op = op
	return &c, nil
}
