package nn

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
)

// Relu is max(x, 0), with its gradient attached by hand as one comparison
// and one select, dy where the output is > 0 (as torch's ReLU backward),
// instead of the six element-wise passes of the generic Max gradient (two
// Subs, two Signs, an Add and a Mul), which the pure-Go backend runs one
// by one (XLA fuses either). Reading the output, not x, leaves x to the
// Max alone: the engine then folds the ReLU into the convolution before it.
func Relu(x *Node) *Node {
	zero := ScalarZero(x.Graph(), x.DType())
	var dy, y *Node
	xIn := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		return Where(GreaterThan(y, zero), dy, zero)
	})
	y = IdentityWithCustomGradient(Max(xIn, zero), func(_, v *Node) *Node {
		dy = v
		return v
	})
	return y
}
