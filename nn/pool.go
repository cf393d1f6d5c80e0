package nn

import (
	"slices"

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
	return MaxPool2DIn(x, size, NHWC)
}

// MaxPool2DIn is MaxPool2D for x in layout (NHWC or CBHW [c, batch, h, w]).
func MaxPool2DIn(x *Node, size int, layout Layout) *Node {
	return maxPool2D(x, size, layout, !hasSelectAndScatter(x.Graph()))
}

func hasSelectAndScatter(g *Graph) bool {
	b := g.Backend()
	return b != nil && b.Capabilities().Operations[compute.OpTypeSelectAndScatterMax]
}

func maxPool2D(x *Node, size int, layout Layout, reshape bool) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.MaxPool2D: want a rank-4 %s image batch, got %s", layout, x.Shape())
	}
	if size < 1 {
		exceptions.Panicf("nn.MaxPool2D: size must be >= 1, got %d", size)
	}
	h := 1 // the height axis; width follows it
	if layout == CBHW {
		h = 2
	}
	d := x.Shape().Dimensions
	oh, ow := d[h]/size, d[h+1]/size
	if oh == 0 || ow == 0 {
		exceptions.Panicf("nn.MaxPool2D: input %s smaller than window %d", x.Shape(), size)
	}
	if !reshape {
		nhwc := ToLayout(x, layout, NHWC)
		return ToLayout(MaxPool(nhwc).Window(size).Strides(size).NoPadding().Done(), NHWC, layout)
	}
	if oh*size != d[h] || ow*size != d[h+1] {
		axes := []SliceAxisSpec{AxisRange(), AxisRange(), AxisRange(), AxisRange()}
		axes[h], axes[h+1] = AxisRange(0, oh*size), AxisRange(0, ow*size)
		x = Slice(x, axes...)
	}
	dims := append(append(slices.Clone(d[:h]), oh, size, ow, size), d[h+2:]...)
	return reduceMaxWindows(Reshape(x, dims...), h+1, h+3)
}

// GlobalAvgPool2D averages x [batch, h, w, c] over the spatial axes -> [batch, c].
func GlobalAvgPool2D(x *Node) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.GlobalAvgPool2D: want x [batch, h, w, c], got %s", x.Shape())
	}
	return ReduceMean(x, 1, 2)
}
