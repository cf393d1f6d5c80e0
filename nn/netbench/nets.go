package netbench

import (
	"github.com/dl4img/dl4img/nn"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/loss"
)

// Shapes of the three benchmark networks. bench/torch_ref.py mirrors them.
const (
	CaptchaHeight, CaptchaWidth, CaptchaChars, CaptchaClasses = 80, 170, 4, 36

	CRNNHeight, CRNNWidth, CRNNClasses, CRNNMaxLabel = 50, 200, 37, 8 // class 36 is the CTC blank
	CRNNSteps                                        = CRNNWidth / 8

	FCNSize, FCNClasses = 256, 2
	// FCNL2 is the l2 regularization of the transposed-conv kernels.
	FCNL2 = 1e-4
)

func convRelu(scope *model.Scope, x *Node, filters int) *Node {
	return nn.Relu(nn.Conv2D(scope, x, nn.Conv2DConfig{Filters: filters, Kernel: 3, Padding: nn.PadSame}))
}

// CaptchaCNN is the book's captcha classifier: 4 blocks of 2 conv3x3+relu and
// a 2x2 max pool (32/64/128/256 filters), flatten, dropout 0.25, and 4 dense
// heads of 36 classes. x [b, 80, 170, 3] -> logits [b, 4, 36].
func CaptchaCNN(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, CaptchaHeight, CaptchaWidth, 3)
	for i, f := range []int{32, 64, 128, 256} {
		x = convRelu(scope.In("block%d_conv1", i), x, f)
		x = convRelu(scope.In("block%d_conv2", i), x, f)
		x = nn.MaxPool2D(x, 2)
	}
	x.AssertDims(-1, 5, 10, 256)
	batch := x.Shape().Dimensions[0]
	x = Reshape(x, batch, -1)
	x = layers.DropoutStatic(scope, x, 0.25)
	heads := make([]*Node, CaptchaChars)
	for i := range heads {
		heads[i] = layers.Dense(scope.In("head%d", i), x, true, CaptchaClasses)
	}
	return Stack(heads, 1)
}

// CaptchaLoss is the mean sparse cross-entropy over the 4 heads; labels
// [b, 4] int32.
func CaptchaLoss(labels, logits []*Node) *Node {
	return loss.SparseCategoricalCrossEntropyLogits(labels[:1], logits)
}

func convBnRelu(scope *model.Scope, x *Node, filters int) *Node {
	x = nn.Conv2D(scope, x, nn.Conv2DConfig{Filters: filters, Kernel: 3, Padding: nn.PadSame, NoBias: true})
	return nn.Relu(nn.BatchNorm(scope, x, 0))
}

// CRNN is the book's text-line reader: 3 blocks of 2 x [conv3x3, batchnorm,
// relu] + 2x2 max pool (32/64/128), columns as time steps, dense 128 + relu,
// two bidirectional GRU(128) layers (concat), dense 37 (blank = 36).
// x [b, 50, 200, 1] -> logits [b, 25, 37].
func CRNN(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, CRNNHeight, CRNNWidth, 1)
	for i, f := range []int{32, 64, 128} {
		x = convBnRelu(scope.In("block%d_conv1", i), x, f)
		x = convBnRelu(scope.In("block%d_conv2", i), x, f)
		x = nn.MaxPool2D(x, 2)
	}
	x = nn.ColumnsAsSteps(x) // [b, 25, 6*128]
	x = activation.Relu(layers.Dense(scope.In("dense1"), x, true, 128))
	x = nn.BiGRU(scope.In("bigru1"), x, 128, nn.MergeConcat)
	x = nn.BiGRU(scope.In("bigru2"), x, 128, nn.MergeConcat)
	return layers.Dense(scope.In("logits"), x, true, CRNNClasses)
}

// CRNNLoss is the mean CTC loss; labels are [labels [b, maxLabel] int32,
// labelLens [b] int32]; every example uses all time steps.
func CRNNLoss(labels, logits []*Node) *Node {
	l := logits[0]
	b := l.Shape().Dimensions[0]
	inLens := BroadcastToDims(Scalar(l.Graph(), dtypes.Int32, l.Shape().Dimensions[1]), b)
	return ReduceAllMean(nn.CTCLoss(l, labels[0], inLens, labels[1], CRNNClasses-1))
}

// FCN is a small fully convolutional segmenter: encoder [2 x conv3x3 32,
// pool, 2 x conv3x3 64, pool, conv3x3 128] and two transposed-conv (k4 s2 p1,
// l2-regularized) upsampling stages back to full resolution, then a 1x1 conv.
// x [b, 256, 256, 3] -> logits [b, 256, 256, 2].
func FCN(scope *model.Scope, x *Node) *Node {
	x.AssertDims(-1, FCNSize, FCNSize, 3)
	x = convRelu(scope.In("enc1a"), x, 32)
	x = convRelu(scope.In("enc1b"), x, 32)
	x = nn.MaxPool2D(x, 2)
	x = convRelu(scope.In("enc2a"), x, 64)
	x = convRelu(scope.In("enc2b"), x, 64)
	x = nn.MaxPool2D(x, 2)
	x = convRelu(scope.In("enc3"), x, 128)
	x = nn.Relu(nn.ConvTranspose2D(scope.In("up1"), x,
		nn.ConvTranspose2DConfig{Filters: 64, Kernel: 4, Stride: 2, Padding: 1, L2: FCNL2}))
	x = nn.Relu(nn.ConvTranspose2D(scope.In("up2"), x,
		nn.ConvTranspose2DConfig{Filters: 32, Kernel: 4, Stride: 2, Padding: 1, L2: FCNL2}))
	x = nn.Conv2D(scope.In("classifier"), x, nn.Conv2DConfig{Filters: FCNClasses, Kernel: 1})
	x.AssertDims(-1, FCNSize, FCNSize, FCNClasses)
	return x
}

// FCNLoss is the mean per-pixel sparse cross-entropy; labels [b, 256, 256] int32.
func FCNLoss(labels, logits []*Node) *Node {
	return loss.SparseCategoricalCrossEntropyLogits(labels[:1], logits)
}

// trainFLOPs returns the multiply-add FLOPs (2 per MAC) of one training step
// (forward + backward ~= 3x forward) of the convolutions, dense layers and
// GRU matmuls, counting transposed convs at their true k*k taps per input
// pixel. Elementwise ops are not counted.
func trainFLOPs(net string, batch int) float64 {
	conv := func(h, w, k, cin, cout int) float64 { return 2 * float64(h*w*k*k*cin*cout) }
	var f float64
	switch net {
	case "captcha-cnn":
		h, w, cin := CaptchaHeight, CaptchaWidth, 3
		for _, c := range []int{32, 64, 128, 256} {
			f += conv(h, w, 3, cin, c) + conv(h, w, 3, c, c)
			h, w, cin = h/2, w/2, c
		}
		f += float64(CaptchaChars) * 2 * float64(h*w*cin*CaptchaClasses)
	case "crnn":
		h, w, cin := CRNNHeight, CRNNWidth, 1
		for _, c := range []int{32, 64, 128} {
			f += conv(h, w, 3, cin, c) + conv(h, w, 3, c, c)
			h, w, cin = h/2, w/2, c
		}
		t := float64(w)
		f += 2 * t * float64(h*cin*128)
		gru := func(in int) float64 { return 2 * 2 * t * float64((in+128)*3*128) } // 2 directions
		f += gru(128) + gru(256)
		f += 2 * t * float64(256*CRNNClasses)
	case "fcn":
		s := FCNSize
		f += conv(s, s, 3, 3, 32) + conv(s, s, 3, 32, 32)
		f += conv(s/2, s/2, 3, 32, 64) + conv(s/2, s/2, 3, 64, 64)
		f += conv(s/4, s/4, 3, 64, 128)
		f += conv(s/4, s/4, 4, 128, 64) + conv(s/2, s/2, 4, 64, 32)
		f += conv(s, s, 1, 32, FCNClasses)
	}
	return 3 * f * float64(batch)
}
