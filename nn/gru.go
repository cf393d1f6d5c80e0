package nn

import (
	"fmt"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/support/exceptions"
)

// GRUWeights holds the parameters of one GRU direction. Gate order along the
// 3*hidden axis is (r, z, n), as in torch.nn.GRU; the matrices are torch's
// weight_ih_l0 / weight_hh_l0 transposed.
type GRUWeights struct {
	Input     *Node // [inputDim, 3*hidden]
	Recurrent *Node // [hidden, 3*hidden]
	BiasInput *Node // [3*hidden]
	BiasRec   *Node // [3*hidden]
}

// GRUCell advances one step. xw is the already projected input x·Input +
// BiasInput [batch, 3*hidden]; h is [batch, hidden]. It uses torch's (and
// Keras reset_after=True) formulation:
//
//	r = σ(xr + h·Wr + br), z = σ(xz + h·Wz + bz)
//	n = tanh(xn + r*(h·Wn + bn)),  h' = (1-z)*n + z*h
func GRUCell(xw, h *Node, w GRUWeights) *Node {
	hidden := h.Shape().Dimensions[1]
	hw := Add(Dot(h, w.Recurrent).Product(), Reshape(w.BiasRec, 1, -1))
	gate := func(v *Node, i int) *Node {
		return Slice(v, AxisRange(), AxisRange(i*hidden, (i+1)*hidden))
	}
	rz := Sigmoid(Add(gate2(xw, hidden), gate2(hw, hidden)))
	r := Slice(rz, AxisRange(), AxisRange(0, hidden))
	z := Slice(rz, AxisRange(), AxisRange(hidden, 2*hidden))
	n := Tanh(Add(gate(xw, 2), Mul(r, gate(hw, 2))))
	return Add(n, Mul(z, Sub(h, n)))
}

// gate2 returns the r and z gate pre-activations together (first 2*hidden).
func gate2(v *Node, hidden int) *Node {
	return Slice(v, AxisRange(), AxisRange(0, 2*hidden))
}

// GRUOp runs a GRU over x [batch, time, inputDim] and returns the outputs
// [batch, time, hidden] and the final state [batch, hidden]. h0 may be nil
// (zeros).
//
// With backwards=true the sequence is processed from the last step to the
// first (Keras go_backwards=True), and the outputs are returned re-aligned to
// the input time axis (out[t] is the state after consuming x[T-1..t]), which is
// what Keras' Bidirectional and torch's bidirectional GRU emit.
//
// The graph is unrolled over time: the input projection for all steps is one
// matmul, each step is one [batch, hidden]x[hidden, 3*hidden] matmul.
func GRUOp(x, h0 *Node, w GRUWeights, backwards bool) (outputs, final *Node) {
	if x.Rank() != 3 {
		exceptions.Panicf("nn.GRUOp: want x [batch, time, features], got %s", x.Shape())
	}
	d := x.Shape().Dimensions
	batch, steps := d[0], d[1]
	hidden := w.Recurrent.Shape().Dimensions[0]
	if w.Input.Shape().Dimensions[0] != d[2] || w.Input.Shape().Dimensions[1] != 3*hidden {
		exceptions.Panicf("nn.GRUOp: input kernel %s does not match x %s and hidden %d", w.Input.Shape(), x.Shape(), hidden)
	}
	xw := Add(Dot(x, w.Input).General([]int{2}, nil, []int{0}, nil), Reshape(w.BiasInput, 1, 1, -1)) // [b, t, 3h]
	h := h0
	if h == nil {
		h = Zeros(x.Graph(), shapes.Make(x.DType(), batch, hidden))
	}
	xts := stepInputs(xw)
	outs := make([]*Node, steps)
	for i := range steps {
		t := i
		if backwards {
			t = steps - 1 - i
		}
		h = GRUCell(xts[t], h, w)
		outs[t] = h
	}
	return Stack(outs, 1), h
}

// stepInputs returns xw[:, t, :] for each step t, [batch, 3*hidden]. Their
// gradients go back into xw's as one Stack: Slice's own gradient pads each
// step's gradient to the whole [batch, time, 3*hidden] and adds them up,
// 2*time passes over it that the Go backend runs on one core (about 9% of
// a CRNN training step). As in ConvTranspose2DOp, the slices are taken
// from a StopGradient copy and autodiff reaches xw through a zero added to
// the first step; it visits xw after every step (created before them), so
// each step's gradient is known by then.
func stepInputs(xw *Node) []*Node {
	d := xw.Shape().Dimensions
	batch, steps := d[0], d[1]
	grads := make([]*Node, steps)
	xwIn := IdentityWithCustomGradient(xw, func(_, _ *Node) *Node {
		for t, g := range grads {
			if g == nil {
				grads[t] = Zeros(xw.Graph(), shapes.Make(xw.DType(), batch, d[2]))
			}
		}
		return Stack(grads, 1)
	})
	zero := MulScalar(ReduceAllSum(Slice(xwIn, AxisElem(0), AxisElem(0), AxisElem(0))), 0)
	fixed := StopGradient(xw)
	xts := make([]*Node, steps)
	for t := range steps {
		xt := Reshape(Slice(fixed, AxisRange(), AxisElem(t), AxisRange()), batch, d[2])
		if t == 0 {
			xt = Add(xt, zero)
		}
		xts[t] = IdentityWithCustomGradient(xt, func(_, v *Node) *Node {
			grads[t] = v
			return v
		})
	}
	return xts
}

// MergeMode combines the two directions of BiGRU.
type MergeMode int

const (
	// MergeConcat concatenates [forward, backward] on the feature axis (2*hidden).
	MergeConcat MergeMode = iota
	// MergeSum adds the two directions (hidden).
	MergeSum
)

func (m MergeMode) String() string {
	switch m {
	case MergeConcat:
		return "concat"
	case MergeSum:
		return "sum"
	}
	return fmt.Sprintf("MergeMode(%d)", int(m))
}

// gruVariables creates (or reuses) one direction's variables in scope.
// Kernels are Glorot-uniform (Keras' default), biases zero.
func gruVariables(scope *model.Scope, g *Graph, inputDim, hidden int, dtypeShape shapes.Shape) GRUWeights {
	scope = scope.WithInitializer(initializer.GlorotUniformFn(scope))
	dt := dtypeShape.DType
	return GRUWeights{
		Input:     scope.VariableWithShape("kernel", shapes.Make(dt, inputDim, 3*hidden)).NodeValue(g),
		Recurrent: scope.VariableWithShape("recurrent_kernel", shapes.Make(dt, hidden, 3*hidden)).NodeValue(g),
		BiasInput: scope.VariableWithShape("bias_input", shapes.Make(dt, 3*hidden)).NodeValue(g),
		BiasRec:   scope.VariableWithShape("bias_recurrent", shapes.Make(dt, 3*hidden)).NodeValue(g),
	}
}

// GRU is a trainable GRU layer (sequence in, sequence out) over
// x [batch, time, features], returning [batch, time, hidden].
func GRU(scope *model.Scope, x *Node, hidden int, backwards bool) *Node {
	if x.Rank() != 3 || hidden <= 0 {
		exceptions.Panicf("nn.GRU: want x [batch, time, features] and hidden > 0, got %s, %d", x.Shape(), hidden)
	}
	w := gruVariables(scope, x.Graph(), x.Shape().Dimensions[2], hidden, x.Shape())
	out, _ := GRUOp(x, nil, w, backwards)
	return out
}

// BiGRU is a bidirectional GRU layer (Keras Bidirectional(GRU(hidden,
// return_sequences=True), merge_mode=...)): a forward GRU in scope "forward"
// and a go_backwards GRU in scope "backward", outputs aligned in time and
// merged. Returns [batch, time, 2*hidden] for MergeConcat, [batch, time,
// hidden] for MergeSum.
func BiGRU(scope *model.Scope, x *Node, hidden int, merge MergeMode) *Node {
	fwd := GRU(scope.In("forward"), x, hidden, false)
	bwd := GRU(scope.In("backward"), x, hidden, true)
	if merge == MergeSum {
		return Add(fwd, bwd)
	}
	return Concatenate([]*Node{fwd, bwd}, -1)
}
