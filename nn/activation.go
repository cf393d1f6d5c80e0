package nn

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
)

// Relu is max(x, 0), with its gradient attached by hand as one comparison
// and one select (dy where x >= 0, else 0, the same values as GoMLX's Max
// gradient) instead of the six element-wise passes of the generic Max
// gradient (two Subs, two Signs, an Add and a Mul), which the pure-Go
// backend runs one by one (XLA fuses either).
func Relu(x *Node) *Node {
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
