package nn

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/support/exceptions"
)

// MaxPool2D applies non-overlapping size x size max pooling (stride = size,
// "valid": trailing rows/columns that do not fill a window are dropped, like
// torch's MaxPool2d and Keras' default) to x [batch, h, w, c].
//
// GoMLX's MaxPool gradient needs the SelectAndScatterMax op, which the pure-Go
// backend lacks, so there (or when forced with reshape=true) it is computed as
// reshape + ReduceMax, which is exact and differentiable for non-overlapping
// windows. Ties inside a window all receive the gradient (torch picks one);
// with continuous inputs ties do not occur, and the all-zero windows after a
// ReLU get zero gradient from the ReLU anyway.
func MaxPool2D(x *Node, size int) *Node {
	return maxPool2D(x, size, !hasSelectAndScatter(x.Graph()))
}

// MaxPool2DIn is MaxPool2D for x in layout (NHWC or CBHW [c, batch, h, w]).
func MaxPool2DIn(x *Node, size int, layout Layout) *Node {
	if layout == NHWC {
		return MaxPool2D(x, size)
	}
	if x.Rank() != 4 {
		exceptions.Panicf("nn.MaxPool2DIn: want x [c, batch, h, w], got %s", x.Shape())
	}
	if size < 1 {
		exceptions.Panicf("nn.MaxPool2DIn: size must be >= 1, got %d", size)
	}
	d := x.Shape().Dimensions
	oh, ow := d[2]/size, d[3]/size
	if oh == 0 || ow == 0 {
		exceptions.Panicf("nn.MaxPool2DIn: input %s smaller than window %d", x.Shape(), size)
	}
	if hasSelectAndScatter(x.Graph()) {
		return ToLayout(MaxPool2D(ToLayout(x, CBHW, NHWC), size), NHWC, CBHW)
	}
	if oh*size != d[2] || ow*size != d[3] {
		x = Slice(x, AxisRange(), AxisRange(), AxisRange(0, oh*size), AxisRange(0, ow*size))
	}
	return reduceMaxWindows(Reshape(x, d[0], d[1], oh, size, ow, size), 3, 5)
}

func hasSelectAndScatter(g *Graph) bool {
	b := g.Backend()
	return b != nil && b.Capabilities().Operations[compute.OpTypeSelectAndScatterMax]
}

func maxPool2D(x *Node, size int, reshape bool) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.MaxPool2D: want x [batch, h, w, c], got %s", x.Shape())
	}
	if size < 1 {
		exceptions.Panicf("nn.MaxPool2D: size must be >= 1, got %d", size)
	}
	d := x.Shape().Dimensions
	oh, ow := d[1]/size, d[2]/size
	if oh == 0 || ow == 0 {
		exceptions.Panicf("nn.MaxPool2D: input %s smaller than window %d", x.Shape(), size)
	}
	if !reshape {
		return MaxPool(x).Window(size).Strides(size).NoPadding().Done()
	}
	if oh*size != d[1] || ow*size != d[2] {
		x = Slice(x, AxisRange(), AxisRange(0, oh*size), AxisRange(0, ow*size), AxisRange())
	}
	x = Reshape(x, d[0], oh, size, ow, size, d[3])
	return reduceMaxWindows(x, 2, 4)
}

// GlobalAvgPool2D averages x [batch, h, w, c] over the spatial axes -> [batch, c].
func GlobalAvgPool2D(x *Node) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.GlobalAvgPool2D: want x [batch, h, w, c], got %s", x.Shape())
	}
	return ReduceMean(x, 1, 2)
}
