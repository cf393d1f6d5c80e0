package nn

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/support/exceptions"
)

// Layout is the axis order of a batch of images.
type Layout int

const (
	// NHWC is [batch, height, width, channels], the layout of every nn block
	// by default and of GoMLX's layers.
	NHWC Layout = iota
	// CBHW is [channels, batch, height, width] ("channels-major"). On the
	// pure-Go backend a network kept in this layout between its first and
	// last convolution trains faster (the netbench nets: about a quarter less
	// CPU per step; single 3x3 conv layers: 1.2-2.5x): the convolutions need
	// no Slice copies, and their matmuls take the fast [contracting, pixels]
	// operand layout (see Conv2DSameCBHW).
	CBHW
)

// String implements fmt.Stringer.
func (l Layout) String() string {
	switch l {
	case NHWC:
		return "NHWC"
	case CBHW:
		return "CBHW"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// PreferredLayout is the layout a convolutional network on g's backend should
// keep its activations in: CBHW on the pure-Go backend, NHWC elsewhere (XLA
// picks its own convolution layouts, so its graphs stay as they were).
func PreferredLayout(g *Graph) Layout {
	if g.Backend() != nil && isGoBackend(g.Backend()) {
		return CBHW
	}
	return NHWC
}

// ToLayout transposes the rank-4 image batch x from layout from to layout to.
func ToLayout(x *Node, from, to Layout) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.ToLayout: want a rank-4 image batch, got %s", x.Shape())
	}
	switch {
	case from == to:
		return x
	case from == NHWC && to == CBHW:
		return TransposeAllAxes(x, 3, 0, 1, 2)
	case from == CBHW && to == NHWC:
		return TransposeAllAxes(x, 1, 2, 3, 0)
	}
	exceptions.Panicf("nn.ToLayout: unknown layouts %s -> %s", from, to)
	return nil
}

// channelsAxis is the channels axis of a rank-4 batch in layout l.
func channelsAxis(l Layout) int {
	if l == CBHW {
		return 0
	}
	return 3
}

// channelVector reshapes a per-channel vector [c] to broadcast over a rank-4
// batch in layout l.
func channelVector(v *Node, l Layout) *Node {
	c := v.Shape().Dimensions[0]
	if l == CBHW {
		return Reshape(v, c, 1, 1, 1)
	}
	return Reshape(v, 1, 1, 1, c)
}

// ColumnsAsSteps turns the image batch x in layout into the sequence of its
// columns, [batch, w, h*c] (channels fastest): a CRNN's feature map as the
// recurrent layers' input. From CBHW it is one transpose.
func ColumnsAsSteps(x *Node, layout Layout) *Node {
	var d []int // [b, h, w, c]
	if layout == CBHW {
		cd := x.Shape().Dimensions
		d = []int{cd[1], cd[2], cd[3], cd[0]}
		x = TransposeAllAxes(x, 1, 3, 2, 0)
	} else {
		d = x.Shape().Dimensions
		x = TransposeAllAxes(x, 0, 2, 1, 3)
	}
	return Reshape(x, d[0], d[2], d[1]*d[3])
}
