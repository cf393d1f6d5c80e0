package reader

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// CRNN is the CTC reader of both rounds: a stack of conv 3×3 + batch norm
// + relu layers, some followed by a max pool; the feature map's columns
// become time steps; a dense layer, bidirectional GRUs and a dense layer
// over the characters and the CTC blank.
//
// The layers carry their scope names because checkpoints record variables
// by scope: Book and Strip, the two rounds' plans, keep the names their
// jobs' checkpoints were written with.
type CRNN struct {
	Height, Width, Channels int
	Classes                 int // characters; the CTC blank is class Classes
	// MaxLen is the longest text: labels are padded to it and a reading is
	// cut there.
	MaxLen int
	Convs  []Conv
	// L2 is the l2 penalty on the conv kernels.
	L2 float64
	// BNMomentum is the batch-norm moving averages' momentum: with Keras'
	// 0.99 the averages lag ~100 steps behind, which in a short run at
	// learning rate 1e-3..3e-3 made the inference loss 5× the training
	// loss.
	BNMomentum float64
	Dense      Dense
	// Dropout after the dense layer and after the GRUs (0: none).
	Dropout float64
	GRUs    []GRU
	Out     string // scope of the output layer
	// SkipSteps leading time steps are left out of the loss and decoding:
	// the book drops 2 (y_pred[:, 2:, :]) because the first columns only
	// see the image border.
	SkipSteps int
}

// Conv is one conv 3×3 + batch norm (scope Scope/bn) + relu layer and the
// max pool after it (PoolH×PoolW; 0×0: none).
type Conv struct {
	Scope        string
	Filters      int
	PoolH, PoolW int
}

// Dense is the layer the columns go through before the GRUs, with a batch
// norm in scope BN before its relu ("": none).
type Dense struct {
	Scope, BN string
	Units     int
}

// GRU is one bidirectional GRU layer.
type GRU struct {
	Scope  string
	Hidden int
	Merge  nn.MergeMode
}

// Book is the book's captcha reader: 3 blocks of 2 × (conv 3×3, batch
// norm, relu) and a 2×2 max pool (filters, 2×, 4×); columns become time
// steps; dense + batch norm + relu + dropout 0.2; a bidirectional GRU
// merged by sum, another merged by concatenation, dropout 0.2 and a dense
// layer over characters + blank; the first 2 time steps skipped. It reads
// [batch, height, width, 3] RGB images in [0, 1].
func Book(height, width, classes, maxLen, filters, dense, hidden int, bnMomentum float64) CRNN {
	c := CRNN{Height: height, Width: width, Channels: 3, Classes: classes, MaxLen: maxLen, BNMomentum: bnMomentum,
		Dense: Dense{Scope: "dense", BN: "dense_bn", Units: dense}, Dropout: 0.2, Out: "out", SkipSteps: 2,
		GRUs: []GRU{{"gru1", hidden, nn.MergeSum}, {"gru2", hidden, nn.MergeConcat}}}
	for i := range 3 {
		f := filters << i
		c.Convs = append(c.Convs, Conv{fmt.Sprintf("block%d_conv0", i), f, 0, 0}, Conv{fmt.Sprintf("block%d_conv1", i), f, 2, 2})
	}
	return c
}

// Strip is the final round's reader of joined line strips: 3 × (conv 3×3
// + batch norm (momentum 0.9) + relu, l2 on the kernels) with max pools
// 2×2, 2×2 and 2×1, so each time step covers 4 columns of the strip (the
// book's 8 leave too few steps for 40–50 characters on a narrow strip);
// dense (2×hidden) + relu, one bidirectional GRU (concatenated) and a dense
// layer over characters + blank. It reads [batch, height, width, 1] strips,
// ink 1 and paper 0.
//
// Its batch norm uses momentum 0.9: the weights move fast, and with 0.99
// the inference-mode reader lagged far behind the training-mode one (CTC
// loss 7 vs 1.8 on the same strips).
func Strip(height, width, classes, maxLen, filters, hidden int, l2 float64) CRNN {
	c := CRNN{Height: height, Width: width, Channels: 1, Classes: classes, MaxLen: maxLen, L2: l2, BNMomentum: 0.9,
		Dense: Dense{Scope: "dense", Units: 2 * hidden}, Out: "logits",
		GRUs: []GRU{{"bigru", hidden, nn.MergeConcat}}}
	for i, poolW := range []int{2, 2, 1} {
		c.Convs = append(c.Convs, Conv{fmt.Sprintf("conv%d", i), filters << i, 2, poolW})
	}
	return c
}

// Steps is the number of output time steps, before skipping.
func (c CRNN) Steps() int {
	_, w := c.pooled()
	return w
}

// pooled is the feature map's size after the pools (each drops what does
// not fill a window).
func (c CRNN) pooled() (h, w int) {
	h, w = c.Height, c.Width
	for _, cv := range c.Convs {
		if cv.PoolH > 0 {
			h, w = h/cv.PoolH, w/cv.PoolW
		}
	}
	return h, w
}

// Check reports a configuration the network cannot be built with.
func (c CRNN) Check() error {
	if c.Classes < 1 || c.MaxLen < 1 || c.Channels < 1 || len(c.Convs) == 0 {
		return fmt.Errorf("classes %d, max length %d, channels %d and conv layers %d must be >= 1", c.Classes, c.MaxLen, c.Channels, len(c.Convs))
	}
	for _, cv := range c.Convs {
		if cv.Filters < 1 || (cv.PoolH == 0) != (cv.PoolW == 0) || cv.PoolH < 0 || cv.PoolW < 0 {
			return fmt.Errorf("conv %s: filters %d must be >= 1, pool %dx%d both 0 or both >= 1", cv.Scope, cv.Filters, cv.PoolH, cv.PoolW)
		}
	}
	if h, w := c.pooled(); h < 1 || w <= c.SkipSteps {
		return fmt.Errorf("image %dx%d too small for the pools: it leaves a %dx%d feature map and %d time steps to skip",
			c.Width, c.Height, w, h, c.SkipSteps)
	}
	if c.Dense.Units < 1 || len(c.GRUs) == 0 {
		return fmt.Errorf("dense %d and GRU layers %d must be >= 1", c.Dense.Units, len(c.GRUs))
	}
	for _, g := range c.GRUs {
		if g.Hidden < 1 {
			return fmt.Errorf("GRU %s: hidden %d must be >= 1", g.Scope, g.Hidden)
		}
	}
	if c.BNMomentum <= 0 || c.BNMomentum >= 1 || c.L2 < 0 || c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("batch-norm momentum %g must be in (0, 1), l2 %g >= 0, dropout %g in [0, 1)", c.BNMomentum, c.L2, c.Dropout)
	}
	return nil
}

// Logits builds the network on x [batch, Height, Width, Channels]:
// [batch, Steps, Classes+1].
func (c CRNN) Logits(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, c.Height, c.Width, c.Channels)
	for _, cv := range c.Convs {
		s := scope.In("%s", cv.Scope)
		x = nn.Conv2D(s, x, nn.Conv2DConfig{Filters: cv.Filters, Kernel: 3, Padding: nn.PadSame, L2: c.L2, NoBias: true})
		x = nn.Relu(nn.BatchNorm(s.In("bn"), x, c.BNMomentum))
		if cv.PoolH > 0 {
			x = nn.MaxPool2DHW(x, cv.PoolH, cv.PoolW)
		}
	}
	x = nn.ColumnsAsSteps(x) // [b, w, h*c]
	x = layers.Dense(scope.In("%s", c.Dense.Scope), x, true, c.Dense.Units)
	if c.Dense.BN != "" {
		x = nn.BatchNorm(scope.In("%s", c.Dense.BN), x, c.BNMomentum)
	}
	x = nn.Relu(x)
	x = c.dropout(scope, x)
	for _, g := range c.GRUs {
		x = nn.BiGRU(scope.In("%s", g.Scope), x, g.Hidden, g.Merge)
	}
	x = c.dropout(scope, x)
	x = layers.Dense(scope.In("%s", c.Out), x, true, c.Classes+1)
	x.AssertDims(-1, c.Steps(), c.Classes+1)
	return x
}

func (c CRNN) dropout(scope *model.Scope, x *Node) *Node {
	if c.Dropout == 0 {
		return x
	}
	return layers.DropoutStatic(scope, x, c.Dropout)
}

// skip drops the first SkipSteps time steps.
func (c CRNN) skip(logits *Node) *Node {
	if c.SkipSteps == 0 {
		return logits
	}
	return Slice(logits, AxisRange(), AxisRange(c.SkipSteps), AxisRange())
}

// ExampleLoss is the CTC loss per example [batch]; labels are [batch,
// MaxLen] int32 (padded with anything past labelLens [batch] int32).
func (c CRNN) ExampleLoss(logits, labels, labelLens *Node) *Node {
	l := c.skip(logits)
	d := l.Shape().Dimensions
	inLens := BroadcastToDims(Scalar(l.Graph(), dtypes.Int32, d[1]), d[0])
	return nn.CTCLoss(l, labels, inLens, labelLens, c.Classes)
}

// Probs are the per-step probabilities the decoder reads, [batch,
// Steps-SkipSteps, Classes+1].
func (c CRNN) Probs(logits *Node) *Node { return Softmax(c.skip(logits), -1) }

// Decode is greedy CTC decoding of one example's Probs, cut to MaxLen.
func (c CRNN) Decode(probs []float32) ([]int, float64, error) {
	return greedy(probs, c.Classes+1, c.Classes, c.MaxLen)
}

// Input is the image shape the network reads.
func (c CRNN) Input() (height, width, channels int) { return c.Height, c.Width, c.Channels }

// LabelLen is the width of the label tensors.
func (c CRNN) LabelLen() int { return c.MaxLen }
