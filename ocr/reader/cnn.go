package reader

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// cnnBlocks is the book's number of conv+pool blocks.
const cnnBlocks = 4

// CNN is the book's captcha classifier: 4 blocks of 2 × (conv 3×3 + relu)
// and a 2×2 max pool (Filters, doubling per block), flatten, dropout 0.25
// and one dense softmax head per character. It reads [batch, Height,
// Width, 3] RGB images in [0, 1] holding exactly Length characters.
type CNN struct {
	Height, Width int
	Classes       int // characters
	Length        int // heads
	Filters       int
}

// Check reports a configuration the network cannot be built with.
func (c CNN) Check() error {
	if c.Classes < 1 || c.Length < 1 || c.Filters < 1 {
		return fmt.Errorf("classes %d, length %d and filters %d must be >= 1", c.Classes, c.Length, c.Filters)
	}
	if m := 1 << cnnBlocks; c.Height < m || c.Width < m {
		return fmt.Errorf("image %dx%d too small for %d conv+pool blocks: width and height must be >= %d", c.Width, c.Height, cnnBlocks, m)
	}
	return nil
}

// Logits builds the network on x: [batch, Length, Classes].
func (c CNN) Logits(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, c.Height, c.Width, 3)
	f := c.Filters
	for i := range cnnBlocks {
		for j := range 2 {
			x = nn.Conv2D(scope.In("block%d_conv%d", i, j), x, nn.Conv2DConfig{Filters: f, Kernel: 3, Padding: nn.PadSame})
			x = nn.Relu(x)
		}
		x = nn.MaxPool2D(x, 2)
		f *= 2
	}
	batch := x.Shape().Dimensions[0]
	x = Reshape(x, batch, -1)
	x = layers.DropoutStatic(scope, x, 0.25)
	heads := make([]*Node, c.Length)
	for i := range heads {
		heads[i] = layers.Dense(scope.In("head%d", i), x, true, c.Classes)
	}
	return Stack(heads, 1)
}

// ExampleLoss is the cross-entropy per example [batch], averaged over the
// heads; labels are [batch, Length] int32 (labelLens is not used).
func (c CNN) ExampleLoss(logits, labels, labelLens *Node) *Node {
	logp := LogSoftmax(logits, -1)
	oh := OneHot(ConvertDType(labels, dtypes.Int32), c.Classes, logp.DType())
	return Neg(ReduceMean(ReduceSum(Mul(oh, logp), -1), -1))
}

// Probs are the heads' probabilities, [batch, Length, Classes].
func (c CNN) Probs(logits *Node) *Node { return Softmax(logits, -1) }

// Decode is the arg-max class of each head.
func (c CNN) Decode(probs []float32) ([]int, float64, error) {
	return greedy(probs, c.Classes, -1, c.Length)
}

// Input is the image shape the network reads.
func (c CNN) Input() (height, width, channels int) { return c.Height, c.Width, 3 }

// LabelLen is the width of the label tensors.
func (c CNN) LabelLen() int { return c.Length }
