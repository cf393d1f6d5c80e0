package nn

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// Relu is max(x, 0). On the pure-Go backend its gradient is attached by hand
// as one comparison and one select (dy where x >= 0, else 0, the same values
// as GoMLX's Max gradient), instead of the six element-wise passes of the
// generic Max gradient (two Subs, two Signs, an Add and a Mul). Elsewhere it
// is activation.Relu, so XLA graphs do not change.
func Relu(x *Node) *Node {
	if b := x.Graph().Backend(); b == nil || !isGoBackend(b) {
		return activation.Relu(x)
	}
	zero := ScalarZero(x.Graph(), x.DType())
	var dy *Node
	xIn := IdentityWithCustomGradient(x, func(x, v *Node) *Node {
		if dy == nil {
			return v
		}
		return Where(GreaterOrEqual(x, zero), dy, zero)
	})
	return IdentityWithCustomGradient(Max(xIn, zero), func(_, v *Node) *Node {
		dy = v
		return v
	})
}

// reduceMaxWindows is ReduceMax(x, axes...) for the non-overlapping pooling
// windows of maxPool2D, with a gradient of three passes (a comparison with the
// broadcast maxima, a broadcast of dy and a select) instead of the generic
// ReduceMax gradient's eight. Like the generic one, it sends dy to every
// element equal to its window's maximum.
func reduceMaxWindows(x *Node, axes ...int) *Node {
	var dy *Node
	var y *Node
	xIn := IdentityWithCustomGradient(x, func(x, v *Node) *Node {
		if dy == nil {
			return v
		}
		kept := x.Shape().Clone()
		for _, a := range axes {
			kept.Dimensions[a] = 1
		}
		isMax := Equal(x, BroadcastToShape(ReshapeWithShape(y, kept), x.Shape()))
		return Where(isMax, BroadcastToShape(ReshapeWithShape(dy, kept), x.Shape()), ScalarZero(x.Graph(), x.DType()))
	})
	y = ReduceMax(xIn, axes...)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
}
