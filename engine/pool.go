//go:build !nodnnl

package engine

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/dnnl"
)

// poolAxes picks, for a window over a rank-3 or rank-4 tensor, oneDNN's
// (N, C) axes and its one or two spatial axes: the axes the window moves
// along, completed to two with a unit-window axis where the window moves
// along one only (a height-only pool).
func poolAxes(rank int, window, strides []int, paddings [][2]int) (n, c int, spatial []int, ok bool) {
	var others []int
	for a := range rank {
		moving := at(window, a, 1) > 1 || at(strides, a, 1) > 1 || (len(paddings) > a && paddings[a] != [2]int{})
		if moving {
			spatial = append(spatial, a)
		} else {
			others = append(others, a)
		}
	}
	if len(spatial) > 2 || len(spatial) == 0 {
		return 0, 0, nil, false
	}
	for len(others) > 2 && len(spatial) < 2 {
		// The axis just before the (first) moving one keeps the layout
		// dense: [N, H, W, C] pooled over H takes W as its second axis.
		pick := others[len(others)-2]
		for i, a := range others {
			if a > spatial[0] {
				pick = a
				_ = i
				break
			}
		}
		spatial = append(spatial, pick)
		if spatial[0] > spatial[1] {
			spatial[0], spatial[1] = spatial[1], spatial[0]
		}
		others = deleteValue(others, pick)
	}
	switch len(others) {
	case 2:
		return others[0], others[1], spatial, true
	case 1:
		return -1, others[0], spatial, true // a unit batch
	}
	return 0, 0, nil, false
}

func deleteValue(v []int, x int) []int {
	out := v[:0:0]
	for _, y := range v {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

// poolTensor is tensor4 with n = -1 meaning a unit batch.
func poolTensor(dims []int, n, c int, spatial []int) dnnl.Tensor {
	if n >= 0 {
		return tensor4(dims, n, c, spatial)
	}
	t := tensor4(append(dims[:len(dims):len(dims)], 1), len(dims), c, spatial)
	t.Strides[0] = t.Strides[1] * t.Dims[1] * t.Dims[2] * t.Dims[3]
	return t
}

func pick2(v []int, spatial []int, def int) [2]int64 {
	var out [2]int64
	if len(spatial) == 1 {
		return [2]int64{int64(def), int64(at(v, spatial[0], def))}
	}
	for i, a := range spatial {
		out[i] = int64(at(v, a, def))
	}
	return out
}

func pickPads(p [][2]int, spatial []int, side int) [2]int64 {
	var out [2]int64
	off := 2 - len(spatial)
	for i, a := range spatial {
		if len(p) > a {
			out[off+i] = int64(p[a][side])
		}
	}
	return out
}

// poolSpec maps a window over x (giving y) to oneDNN's pooling.
func poolSpec(x, y shapes.Shape, window, strides []int, paddings [][2]int) (dnnl.PoolSpec, string) {
	var s dnnl.PoolSpec
	if x.DType != dtypes.Float32 {
		return s, "not float32"
	}
	if x.Rank() != 3 && x.Rank() != 4 {
		return s, "not a rank-3 or rank-4 window"
	}
	n, c, sp, ok := poolAxes(x.Rank(), window, strides, paddings)
	if !ok {
		return s, "window over more than two axes"
	}
	s.Src = poolTensor(x.Dimensions, n, c, sp)
	s.Dst = poolTensor(y.Dimensions, n, c, sp)
	s.Kernel, s.Strides = pick2(window, sp, 1), pick2(strides, sp, 1)
	s.PadL, s.PadR = pickPads(paddings, sp, 0), pickPads(paddings, sp, 1)
	// Blocked as the convolutions around it (plainLayout), so that a
	// region runs through the pool. On plain layouts, oneDNN's vectorized
	// pooling takes channels-last data as it is; NCHW it reorders (its
	// plain NCHW pooling is a scalar loop).
	s.Plain = plainLayout() && s.Src.Strides[1] == 1 && s.Dst.Strides[1] == 1
	return s, ""
}

// poolKernel maps a ReduceWindow node to a pooling forward; with training,
// a max pool also writes the workspace its gradient reads.
func (b *backend) poolKernel(n *node, training bool) (*placed, string) {
	op := n.args[0].(compute.ReduceOpType)
	window, strides := n.args[1].([]int), n.args[2].([]int)
	if !ones(n.args[3].([]int)) || !ones(n.args[4].([]int)) {
		return nil, "dilated window"
	}
	s, why := poolSpec(n.inputs[0].shape, n.outs[0].shape, window, strides, n.args[5].([][2]int))
	if why != "" {
		return nil, why
	}
	name := "pool max forward"
	switch op {
	case compute.ReduceOpMax:
		s.Alg = dnnl.PoolMax
		if training {
			s.Prop = dnnl.PoolForwardTraining
		}
	case compute.ReduceOpSum:
		// A sum over the window, zero padding included, is oneDNN's
		// include-padding average times the window's size.
		s.Alg, name = dnnl.PoolAvgIncludePadding, "pool sum forward"
		s.Scale = float32(s.Kernel[0] * s.Kernel[1])
	default:
		return nil, "reduction " + op.String()
	}
	p, err := b.lib.Pool(s)
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	pk := &placed{k: &poolKernel{lib: b.lib, op: p, shape: n.outs[0].shape, name_: name}}
	if training {
		pk.extraOut = []*value{{node: n, out: len(n.outs)}}
	}
	return pk, ""
}

type poolKernel struct {
	lib   *dnnl.Library
	op    *dnnl.Op
	shape shapes.Shape
	name_ string
}

func (k *poolKernel) name() string { return k.name_ + " (" + k.op.Impl() + ")" }

func (k *poolKernel) run(x *execution, ins, outs []*slot) error {
	a, err := ins[0].arg()
	if err != nil {
		return err
	}
	y, err := x.output(outs[0], k.shape)
	if err != nil {
		return err
	}
	bufs := []any{a, y}
	if k.op.Workspace() > 0 {
		ws := make([]byte, k.op.Workspace())
		bufs = append(bufs, ws)
		outs[1].ws = ws
	}
	return k.lib.Exec(k.op, bufs...)
}

func (k *poolKernel) layout() (*dnnl.Op, []int, []int) { return k.op, []int{0}, []int{1, -1} }

// poolGradKernel maps SelectAndScatterMax(x, dy) to a max pooling
// backward, reading the workspace of the forward pool over the same x
// (ws), or computing one itself when that forward is not offloaded.
func (b *backend) poolGradKernel(n *node, ws *value) (*placed, string) {
	window, strides, paddings := n.args[0].([]int), n.args[1].([]int), n.args[2].([][2]int)
	x, dy := n.inputs[0].shape, n.inputs[1].shape
	s, why := poolSpec(x, dy, window, strides, paddings)
	if why != "" {
		return nil, why
	}
	s.Alg, s.Prop = dnnl.PoolMax, dnnl.PoolBackward
	bwd, err := b.lib.Pool(s)
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	k := &poolGradKernel{lib: b.lib, bwd: bwd, shape: n.outs[0].shape, dyShape: dy}
	if ws != nil {
		// The forward's workspace says where the maxima are: x is not read
		// (nor kept alive for this kernel).
		return &placed{k: k, in: []*value{n.inputs[1], ws}}, ""
	}
	pk := &placed{k: k}
	s.Prop = dnnl.PoolForwardTraining
	if k.fwd, err = b.lib.Pool(s); err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	return pk, ""
}

type poolGradKernel struct {
	lib      *dnnl.Library
	fwd, bwd *dnnl.Op
	shape    shapes.Shape
	dyShape  shapes.Shape
}

func (k *poolGradKernel) name() string { return "pool max backward (" + k.bwd.Impl() + ")" }

// run reads (dy, the forward's workspace), or (x, dy) when it computes the
// workspace itself.
func (k *poolGradKernel) run(x *execution, ins, outs []*slot) error {
	dyIn := k.dyInput()
	dy, err := ins[dyIn].arg()
	if err != nil {
		return err
	}
	var ws []byte
	if k.fwd == nil {
		ws = ins[1].ws
	} else {
		a, err := ins[0].data()
		if err != nil {
			return err
		}
		ws = make([]byte, k.fwd.Workspace())
		if err := k.lib.Exec(k.fwd, a, make([]float32, k.dyShape.Size()), ws); err != nil {
			return err
		}
	}
	dx, err := x.output(outs[0], k.shape)
	if err != nil {
		return err
	}
	return k.lib.Exec(k.bwd, dy, dx, ws)
}

// dyInput is the position of dy among the kernel's inputs.
func (k *poolGradKernel) dyInput() int {
	if k.fwd == nil {
		return 0
	}
	return 1
}

func (k *poolGradKernel) layout() (*dnnl.Op, []int, []int) {
	in := []int{-1, -1}
	in[k.dyInput()] = 0
	return k.bwd, in, []int{1}
}
