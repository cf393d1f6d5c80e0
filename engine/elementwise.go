//go:build !nodnnl

package engine

import (
	"github.com/gomlx/compute/dtypes"

	"github.com/dl4img/dl4img/engine/dnnl"
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

// elementwiseKernels places, after fusion (fuse runs first and takes what
// a convolution can), each per-channel bias add on oneDNN's binary add,
// then each ReLU, Max(x, 0), on its ReLU forward: multithreaded, and in a
// region's layout where the values around them are (a transposed
// convolution's bias and ReLU in the FCN, which oneDNN's backward-data
// primitive cannot take as post-ops; a batch norm's ReLU in the CRNN).
func (b *backend) elementwiseKernels(f *function, kernels map[*node]*placed) {
	live := liveNodes(f, kernels, sourceOf(kernels))
	for _, n := range f.nodes {
		if !live[n.index] || kernels[n] != nil {
			continue
		}
		var pk *placed
		switch n.op {
		case "Add":
			pk = b.biasKernel(n)
		case "Max":
			pk = b.reluKernel(n)
		}
		if pk != nil {
			kernels[n] = pk
		}
	}
}

// reluKernel maps Max(x, 0) to oneDNN's ReLU forward.
func (b *backend) reluKernel(n *node) *placed {
	x := n.inputs[0]
	if isZero(x) {
		x = n.inputs[1]
	} else if !isZero(n.inputs[1]) {
		return nil
	}
	if x.shape.DType != dtypes.Float32 || !x.shape.Equal(n.outs[0].shape) || x.shape.Size() < minElementwise {
		return nil
	}
	k, err := b.newReluKernel(n, false, x.shape.Size())
	if err != nil {
		return nil
	}
	return &placed{k: k, in: []*value{x}}
}

// biasKernel maps Add(x, bias) (either order), bias holding one value per
// channel of x ([1, 1, 1, C] against NHWC x), to oneDNN's binary add.
func (b *backend) biasKernel(n *node) *placed {
	y := n.outs[0].shape
	if y.DType != dtypes.Float32 || y.Size() < minElementwise {
		return nil
	}
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		x, bias := n.inputs[order[0]], n.inputs[order[1]]
		axis := channelAxis(bias.shape.Dimensions, y.Dimensions)
		if !x.shape.Equal(y) || axis < 0 {
			continue
		}
		op, err := b.lib.Bias(dnnl.BiasSpec{Src: featureTensor(y.Dimensions, axis), Plain: plainLayout()})
		if err != nil || reference(op) != "" {
			return nil // the Go backend's add is faster than a scalar loop
		}
		return &placed{k: &argsKernel{lib: b.lib, op: op, label: "bias add", shapes: n.outShapes()},
			in: []*value{x, bias}}
	}
	return nil
}

// channelAxis is the one axis where a tensor of dims (of the rank of y)
// is not 1 and has y's size, or -1.
func channelAxis(dims, y []int) int {
	axis := -1
	if len(dims) != len(y) {
		return -1
	}
	for i, d := range dims {
		switch {
		case d == 1:
		case d == y[i] && axis < 0:
			axis = i
		default:
			return -1
		}
	}
	return axis
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
