package formula

import (
	"fmt"
	"image"
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// charsetRunes are the reader's classes; the CTC blank is class
// len(charsetRunes).
var charsetRunes = []rune(Charset)

// MaxLabelLen bounds the joined text the reader is trained on: two
// assignments of at most 7 characters, 5 operands of at most 5 digits, 4
// operators and brackets stay well below it.
const MaxLabelLen = 64

// ReaderConfig is the CRNN that reads a joined strip.
//
// The network is 3 blocks of conv 3×3 + batch norm + relu (Filters, 2×, 4×
// channels, l2 on the kernels) with max pools 2×2, 2×2 and 2×1, so each time step
// covers 4 columns of the strip: ocr.NetConfig's reader pools 2×2 three
// times (8 columns a step), which leaves too few steps for 40–50
// characters on a narrow strip. Columns become time steps, then a dense
// layer, a bidirectional GRU (concatenated) and a dense layer over the
// characters and the blank.
type ReaderConfig struct {
	Height, Width int
	Filters       int
	Hidden        int
	L2            float64
}

// Classes is the number of output classes, the blank included.
func (c ReaderConfig) Classes() int { return len(charsetRunes) + 1 }

// Blank is the CTC blank class.
func (c ReaderConfig) Blank() int { return len(charsetRunes) }

// Steps is the number of output time steps.
func (c ReaderConfig) Steps() int { return c.Width / 4 }

// Check reports a configuration the network cannot be built with.
func (c ReaderConfig) Check() error {
	switch {
	case c.Height < 16 || c.Height%8 != 0:
		return fmt.Errorf("strip height %d: must be a multiple of 8, >= 16", c.Height)
	case c.Width < 64 || c.Width%4 != 0:
		return fmt.Errorf("strip width %d: must be a multiple of 4, >= 64", c.Width)
	case c.Filters < 1 || c.Hidden < 1:
		return fmt.Errorf("filters %d and rnn_hidden %d: must be >= 1", c.Filters, c.Hidden)
	case c.L2 < 0:
		return fmt.Errorf("l2 %g: must be >= 0", c.L2)
	}
	return nil
}

// Logits maps strips x [batch, Height, Width, 1] (ink 1, paper 0) to
// [batch, Steps, Classes].
func (c ReaderConfig) Logits(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, c.Height, c.Width, 1)
	f := c.Filters
	for i, pool := range []int{2, 2, 1} {
		s := scope.In("conv%d", i)
		x = nn.Conv2D(s, x, nn.Conv2DConfig{Filters: f, Kernel: 3, Padding: nn.PadSame, L2: c.L2, NoBias: true})
		// Batch norm trains the reader several times faster. Its moving
		// averages use momentum 0.9, not GoMLX's 0.99: the weights move
		// fast, and with 0.99 the inference-mode reader lagged far behind
		// the training-mode one (CTC loss 7 vs 1.8 on the same strips).
		x = nn.BatchNorm(s.In("bn"), x, 0.9)
		x = nn.Relu(x)
		x = nn.MaxPool2DHW(x, 2, pool) // the last pools the height alone
		f *= 2
	}
	x = nn.ColumnsAsSteps(x) // [b, w, h*c]
	x = nn.Relu(layers.Dense(scope.In("dense"), x, true, 2*c.Hidden))
	x = nn.BiGRU(scope.In("bigru"), x, c.Hidden, nn.MergeConcat)
	x = layers.Dense(scope.In("logits"), x, true, c.Classes())
	x.AssertDims(-1, c.Steps(), c.Classes())
	return x
}

// Loss is the train.LossFn: the mean CTC loss; labels are [labels
// [batch, MaxLabelLen] int32, labelLens [batch] int32].
func (c ReaderConfig) Loss(labels, logits []*Node) *Node {
	return ReduceAllMean(c.exampleLoss(logits[0], labels[0], labels[1]))
}

func (c ReaderConfig) exampleLoss(logits, labels, labelLens *Node) *Node {
	b := logits.Shape().Dimensions[0]
	inLens := BroadcastToDims(Scalar(logits.Graph(), dtypes.Int32, c.Steps()), b)
	return nn.CTCLoss(logits, labels, inLens, labelLens, c.Blank())
}

// EncodeText turns a joined formula into class ids; it fails on
// characters outside Charset or text longer than MaxLabelLen.
func EncodeText(text string) ([]int32, error) {
	ids := make([]int32, 0, len(text))
	for _, r := range text {
		k := strings.IndexRune(Charset, r)
		if k < 0 {
			return nil, fmt.Errorf("text %q: character %q is not in the charset", text, r)
		}
		ids = append(ids, int32(len([]rune(Charset[:k]))))
	}
	if len(ids) > MaxLabelLen {
		return nil, fmt.Errorf("text %q: %d characters, more than %d", text, len(ids), MaxLabelLen)
	}
	return ids, nil
}

// stripTensor converts strips (each Height×Width) to [n, H, W, 1] with ink
// 1 and paper 0.
func stripTensor(strips []*image.Gray, h, w int) *tensors.Tensor {
	data := make([]float32, len(strips)*h*w)
	for i, s := range strips {
		o := data[i*h*w:]
		for y := range h {
			row := s.Pix[y*s.Stride:]
			for x := range w {
				o[y*w+x] = 1 - float32(row[x])/255
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(data, len(strips), h, w, 1)
}

// labelTensors pads encoded labels to [n, MaxLabelLen] and their lengths.
func labelTensors(labels [][]int32) (*tensors.Tensor, *tensors.Tensor) {
	flat := make([]int32, len(labels)*MaxLabelLen)
	lens := make([]int32, len(labels))
	for i, l := range labels {
		copy(flat[i*MaxLabelLen:], l)
		lens[i] = int32(len(l))
	}
	return tensors.FromFlatDataAndDimensions(flat, len(labels), MaxLabelLen), tensors.FromValue(lens)
}

// decodeReading is greedy CTC decoding of one example's probabilities
// [Steps, Classes]; the confidence is the probability of the best path.
func decodeReading(probs []float32, c ReaderConfig) (string, float64, error) {
	classes, steps := c.Classes(), c.Steps()
	ids, err := nn.CTCGreedyDecode(probs, classes, steps, c.Blank())
	if err != nil {
		return "", 0, err
	}
	logConf := 0.0
	for t := range steps {
		row := probs[t*classes : (t+1)*classes]
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		logConf += math.Log(math.Max(float64(m), 1e-30))
	}
	out := make([]rune, len(ids))
	for i, id := range ids {
		out[i] = charsetRunes[id]
	}
	return string(out), math.Exp(logConf), nil
}
