package nn

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/support/exceptions"
)

// MaxPool2D applies non-overlapping size x size max pooling (stride = size,
// "valid": trailing rows/columns that do not fill a window are dropped, like
// torch's MaxPool2d and Keras' default) to x [batch, h, w, c]. It is GoMLX's
// MaxPool; its gradient (SelectAndScatterMax) sends each window's gradient
// to the window's first maximum, as torch does.
func MaxPool2D(x *Node, size int) *Node { return MaxPool2DHW(x, size, size) }

// MaxPool2DHW is MaxPool2D with an h x w window (stride the window): 2 x 1
// pools the height alone, as text readers do to keep their columns.
func MaxPool2DHW(x *Node, h, w int) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.MaxPool2D: want a rank-4 NHWC image batch, got %s", x.Shape())
	}
	if h < 1 || w < 1 {
		exceptions.Panicf("nn.MaxPool2D: window %dx%d must be >= 1", h, w)
	}
	if d := x.Shape().Dimensions; d[1] < h || d[2] < w {
		exceptions.Panicf("nn.MaxPool2D: input %s smaller than window %dx%d", x.Shape(), h, w)
	}
	return MaxPool(x).WindowPerAxis(h, w).StridePerAxis(h, w).NoPadding().Done()
}

// GlobalAvgPool2D averages x [batch, h, w, c] over the spatial axes -> [batch, c].
func GlobalAvgPool2D(x *Node) *Node {
	if x.Rank() != 4 {
		exceptions.Panicf("nn.GlobalAvgPool2D: want x [batch, h, w, c], got %s", x.Shape())
	}
	return ReduceMean(x, 1, 2)
}

// ColumnsAsSteps turns the image batch x [batch, h, w, c] into the sequence
// of its columns, [batch, w, h*c] (channels fastest): a CRNN's feature map
// as the recurrent layers' input.
func ColumnsAsSteps(x *Node) *Node {
	d := x.Shape().Dimensions
	return Reshape(TransposeAllAxes(x, 0, 2, 1, 3), d[0], d[2], d[1]*d[3])
}
