package ocr

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// Architectures.
const (
	ArchCNN  = "cnn"  // the book's 4-head classifier
	ArchCRNN = "crnn" // the book's CNN + BiGRU + CTC reader
)

// CTCSkipSteps is how many leading time steps the CTC reader ignores in
// its loss and decoding: the book drops them (y_pred[:, 2:, :]) because the
// first columns only see the image border and produce garbage.
const CTCSkipSteps = 2

// NetConfig is the shape of a reader network.
type NetConfig struct {
	Arch          string
	Height, Width int
	Classes       int // characters; the CTC blank is class Classes
	Length        int // CNN: heads; CRNN: longest label (decoding cuts there)
	Filters       int // first conv block; doubles per block (book: 32)
	Dense         int // CRNN dense units (book: 128)
	RNNHidden     int // CRNN GRU units per direction (book: 128)
	// BNMomentum of the batch-norm moving averages (0: 0.99, Keras').
	BNMomentum float64
}

// cnnBlocks and crnnBlocks are the book's numbers of conv+pool blocks.
const (
	cnnBlocks  = 4
	crnnBlocks = 3
)

// Steps is the CRNN's number of output time steps before skipping.
func (c NetConfig) Steps() int { return c.Width >> crnnBlocks }

// Check reports a configuration the network cannot be built with.
func (c NetConfig) Check() error {
	if c.Classes < 1 || c.Length < 1 || c.Filters < 1 {
		return fmt.Errorf("classes %d, length %d and filters %d must be >= 1", c.Classes, c.Length, c.Filters)
	}
	switch c.Arch {
	case ArchCNN:
		if m := 1 << cnnBlocks; c.Height < m || c.Width < m {
			return fmt.Errorf("image %dx%d too small for %d conv+pool blocks: width and height must be >= %d", c.Width, c.Height, cnnBlocks, m)
		}
	case ArchCRNN:
		if m := 1 << crnnBlocks; c.Height < m {
			return fmt.Errorf("height %d too small for %d conv+pool blocks: must be >= %d", c.Height, crnnBlocks, m)
		}
		if c.Dense < 1 || c.RNNHidden < 1 {
			return fmt.Errorf("dense %d and rnn_hidden %d must be >= 1", c.Dense, c.RNNHidden)
		}
		// CTC needs a step per character plus a blank between repeated
		// characters: 2*length-1 steps in the worst case.
		if t := c.Steps() - CTCSkipSteps; t < 2*c.Length-1 {
			return fmt.Errorf("width %d gives %d time steps (width/8 - %d), fewer than the %d a %d-character label may need; use width >= %d",
				c.Width, max(t, 0), CTCSkipSteps, 2*c.Length-1, c.Length, (2*c.Length-1+CTCSkipSteps)<<crnnBlocks)
		}
	default:
		return fmt.Errorf("unknown architecture %q", c.Arch)
	}
	return nil
}

// Logits builds the network on x [batch, height, width, 3]: CNN logits
// [batch, length, classes], CRNN logits [batch, steps, classes+1].
func (c NetConfig) Logits(scope *model.Scope, x *Node) *Node {
	if c.Arch == ArchCNN {
		return c.cnn(scope, x)
	}
	return c.crnn(scope, x)
}

// cnn is the book's captcha classifier: 4 blocks of 2 × (conv 3×3 + relu)
// and a 2×2 max pool, flatten, dropout 0.25 and one dense softmax head per
// character.
func (c NetConfig) cnn(scope *model.Scope, x *Node) *Node {
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

// crnn is the book's CTC reader: 3 blocks of 2 × (conv 3×3, batch norm,
// relu) and a 2×2 max pool; columns become time steps; dense + batch norm +
// relu + dropout 0.2; a bidirectional GRU merged by sum, another merged by
// concatenation, dropout 0.2 and a dense layer over characters + blank.
func (c NetConfig) crnn(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, c.Height, c.Width, 3)
	f := c.Filters
	for i := range crnnBlocks {
		for j := range 2 {
			s := scope.In("block%d_conv%d", i, j)
			x = nn.Conv2D(s, x, nn.Conv2DConfig{Filters: f, Kernel: 3, Padding: nn.PadSame, NoBias: true})
			x = nn.Relu(nn.BatchNorm(s.In("bn"), x, c.bnMomentum()))
		}
		x = nn.MaxPool2D(x, 2)
		f *= 2
	}
	x = nn.ColumnsAsSteps(x) // [b, w, h*c]
	x = layers.Dense(scope.In("dense"), x, true, c.Dense)
	x = nn.Relu(nn.BatchNorm(scope.In("dense_bn"), x, c.bnMomentum()))
	x = layers.DropoutStatic(scope, x, 0.2)
	x = nn.BiGRU(scope.In("gru1"), x, c.RNNHidden, nn.MergeSum)
	x = nn.BiGRU(scope.In("gru2"), x, c.RNNHidden, nn.MergeConcat)
	x = layers.DropoutStatic(scope, x, 0.2)
	x = layers.Dense(scope.In("out"), x, true, c.Classes+1)
	x.AssertDims(-1, c.Steps(), c.Classes+1)
	return x
}

// bnMomentum is the batch-norm moving averages' momentum: configurable
// because with Keras' 0.99 the averages lag ~100 steps behind, which in a
// short run at learning rate 1e-3..3e-3 made inference loss 5x the training
// loss. 0 means 0.99.
func (c NetConfig) bnMomentum() float64 {
	if c.BNMomentum == 0 {
		return 0.99
	}
	return c.BNMomentum
}

// skipSteps drops the CRNN's first CTCSkipSteps time steps.
func skipSteps(logits *Node) *Node {
	return Slice(logits, AxisRange(), AxisRange(CTCSkipSteps), AxisRange())
}

// ExampleLoss is the per-example loss [batch]. labels is [batch, length]
// int32 (padded with anything past labelLens); labelLens [batch] int32 is
// used by the CTC loss only.
func (c NetConfig) ExampleLoss(logits, labels, labelLens *Node) *Node {
	if c.Arch == ArchCNN {
		logp := LogSoftmax(logits, -1)
		oh := OneHot(ConvertDType(labels, dtypes.Int32), c.Classes, logp.DType())
		return Neg(ReduceMean(ReduceSum(Mul(oh, logp), -1), -1))
	}
	l := skipSteps(logits)
	d := l.Shape().Dimensions
	inLens := BroadcastToDims(Scalar(l.Graph(), dtypes.Int32, d[1]), d[0])
	return nn.CTCLoss(l, labels, inLens, labelLens, c.Classes)
}

// Loss is the train.LossFn: the mean ExampleLoss. labels are [labels,
// labelLens].
func (c NetConfig) Loss(labels, logits []*Node) *Node {
	return ReduceAllMean(c.ExampleLoss(logits[0], labels[0], labels[1]))
}

// Probs turns logits into the per-position probabilities the decoder reads:
// CNN [batch, length, classes], CRNN [batch, steps-skip, classes+1].
func (c NetConfig) Probs(logits *Node) *Node {
	if c.Arch == ArchCRNN {
		logits = skipSteps(logits)
	}
	return Softmax(logits, -1)
}

// Decode reads one example's probabilities (one row of Probs, row-major):
// arg-max per head for the CNN; greedy CTC decoding cut to Length for the
// CRNN. The confidence is the probability of the chosen path. A CTC reading
// may be shorter than the label: it then counts as wrong.
func (c NetConfig) Decode(probs []float32, alphabet []rune) (string, float64, error) {
	classes := c.Classes
	if c.Arch == ArchCRNN {
		classes++
	}
	steps := len(probs) / classes
	logConf := 0.0
	best := make([]int, steps)
	for t := range steps {
		row := probs[t*classes : (t+1)*classes]
		b := 0
		for k := 1; k < classes; k++ {
			if row[k] > row[b] {
				b = k
			}
		}
		best[t] = b
		logConf += math.Log(math.Max(float64(row[b]), 1e-30))
	}
	var ids []int
	if c.Arch == ArchCNN {
		ids = best
	} else {
		var err error
		if ids, err = nn.CTCGreedyDecode(probs, classes, steps, c.Classes); err != nil {
			return "", 0, err
		}
		if len(ids) > c.Length {
			ids = ids[:c.Length]
		}
	}
	out := make([]rune, len(ids))
	for i, id := range ids {
		if id < 0 || id >= len(alphabet) {
			return "", 0, fmt.Errorf("decode: class %d outside the alphabet of %d", id, len(alphabet))
		}
		out[i] = alphabet[id]
	}
	return string(out), math.Exp(logConf), nil
}
