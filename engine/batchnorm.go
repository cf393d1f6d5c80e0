//go:build !nodnnl

package engine

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/dnnl"
)

// bnKernel maps the batch-normalization ops (which the engine declares,
// so GoMLX's norm.BatchNorm emits them) to oneDNN's primitive: each
// node's inputs, then its outputs, are the primitive's arguments in
// order (see dnnl.BatchNormProp).
func (b *backend) bnKernel(n *node) (*placed, string) {
	x := n.inputs[0].shape
	if x.DType != dtypes.Float32 {
		return nil, "not float32"
	}
	prop := map[string]dnnl.BatchNormProp{"BatchNormForTraining": dnnl.BatchNormTraining,
		"BatchNormForInference": dnnl.BatchNormInference, "BatchNormGradient": dnnl.BatchNormBackward}[n.op]
	s := dnnl.BatchNormSpec{Prop: prop, Data: featureTensor(x.Dimensions, n.args[1].(int)), Epsilon: n.args[0].(float32),
		Plain: plainLayout()}
	op, err := b.lib.BatchNorm(s)
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	return &placed{k: &argsKernel{lib: b.lib, op: op, shapes: n.outShapes(),
		label: []string{"batch norm training", "batch norm inference", "batch norm backward"}[prop]}}, ""
}

// featureTensor describes a row-major tensor as (N, C[, H, W]) around its
// feature axis: the axes before it merged into N, those after into W.
func featureTensor(dims []int, axis int) dnnl.Tensor {
	if len(dims) == 4 && (axis == 1 || axis == 3) {
		// An image batch, NCHW or NHWC: as the convolutions and pools
		// around it see it, so that a region can run through it.
		spatial := []int{1, 2}
		if axis == 1 {
			spatial = []int{2, 3}
		}
		return tensor4(dims, 0, axis, spatial)
	}
	n, w := int64(1), int64(1)
	for _, d := range dims[:axis] {
		n *= int64(d)
	}
	for _, d := range dims[axis+1:] {
		w *= int64(d)
	}
	c := int64(dims[axis])
	if w == 1 && axis > 1 {
		// Channels last: (batch, C, 1, the rest) in oneDNN's nhwc, which
		// its vectorized batch normalization takes.
		n, w = int64(dims[0]), n/int64(dims[0])
		return dnnl.Tensor{Rank: 4, Dims: [5]int64{n, c, 1, w}, Strides: [5]int64{w * c, 1, w * c, c}}
	}
	if w == 1 {
		return dnnl.Tensor{Rank: 2, Dims: [5]int64{n, c}, Strides: [5]int64{c, 1}}
	}
	return dnnl.Tensor{Rank: 4, Dims: [5]int64{n, c, 1, w}, Strides: [5]int64{c * w, w, w, 1}}
}

// argsKernel runs a primitive whose arguments are the node's inputs, then
// its outputs, in order.
type argsKernel struct {
	lib    *dnnl.Library
	op     *dnnl.Op
	label  string
	shapes []shapes.Shape
}

func (k *argsKernel) name() string { return k.label + " (" + k.op.Impl() + ")" }

func (k *argsKernel) run(x *execution, ins, outs []*slot) error {
	args := make([]any, 0, len(ins)+len(outs))
	for _, in := range ins {
		d, err := in.arg()
		if err != nil {
			return err
		}
		args = append(args, d)
	}
	for i, shape := range k.shapes {
		d, err := x.output(outs[i], shape)
		if err != nil {
			return err
		}
		args = append(args, d)
	}
	return k.lib.Exec(k.op, args...)
}

func (k *argsKernel) layout() (*dnnl.Op, []int, []int) {
	in, out := make([]int, k.op.Args()-len(k.shapes)), make([]int, len(k.shapes))
	for i := range in {
		in[i] = i
	}
	for i := range out {
		out[i] = len(in) + i
	}
	return k.op, in, out
}
