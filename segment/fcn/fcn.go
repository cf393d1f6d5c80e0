// Package fcn is the fully convolutional network of the segment kind: a
// U-Net-style encoder of 3×3 convolutions and 2× max pooling, a decoder of
// l2-regularized transposed convolutions with skip connections
// (concatenated encoder features, as U-Net; FCN-8s adds them), and one
// per-pixel logit (sigmoid → tumour probability).
package fcn

import (
	"errors"
	"fmt"
	"image"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/loss"

	"github.com/dl4img/dl4img/nn"
)

// Config is the architecture and loss. It is saved next to the checkpoints
// (JSON) so prediction rebuilds the same graph.
type Config struct {
	// Filters is the channel count of the first level, doubled per level.
	Filters int `json:"filters"`
	// Depth is the number of 2× downsamplings; input sides must be
	// multiples of 2^Depth.
	Depth int `json:"depth"`
	// ConvsPerLevel is the number of 3×3 convolutions at each level (1 or 2).
	ConvsPerLevel int `json:"convs_per_level"`
	// L2 is λ of the l2 penalty on the transposed-convolution kernels.
	L2 float64 `json:"l2"`
	// Loss is "bce", "dice" or "bce+dice".
	Loss string `json:"loss"`
}

// DefaultConfig is a small network that trains on CPU in minutes.
func DefaultConfig() Config {
	return Config{Filters: 8, Depth: 2, ConvsPerLevel: 2, L2: 1e-4, Loss: "bce+dice"}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Filters < 1 || c.Filters > 512:
		return fmt.Errorf("filters %d: must be in [1, 512]", c.Filters)
	case c.Depth < 0 || c.Depth > 6:
		return fmt.Errorf("depth %d: must be in [0, 6]", c.Depth)
	case c.ConvsPerLevel < 1 || c.ConvsPerLevel > 3:
		return fmt.Errorf("convs_per_level %d: must be 1, 2 or 3", c.ConvsPerLevel)
	case c.L2 < 0:
		return fmt.Errorf("l2 %g: must be >= 0", c.L2)
	}
	if _, err := lossFn(c.Loss); err != nil {
		return err
	}
	return nil
}

// Multiple is what input sides must be multiples of.
func (c Config) Multiple() int { return 1 << c.Depth }

// Logits returns the model function: x [batch, h, w, 3] (pixels scaled to
// [-1, 1], see Input) → logits [batch, h, w, 1].
func Logits(cfg Config) func(scope *model.Scope, x *Node) *Node {
	return func(scope *model.Scope, x *Node) *Node {
		d := x.Shape().Dimensions
		if m := cfg.Multiple(); d[1]%m != 0 || d[2]%m != 0 {
			panic(fmt.Sprintf("fcn: input %dx%d is not a multiple of %d", d[1], d[2], m))
		}
		block := func(s *model.Scope, h *Node, filters int) *Node {
			for i := range cfg.ConvsPerLevel {
				h = nn.Conv2D(s.In("conv%d", i), h, nn.Conv2DConfig{
					Filters: filters, Kernel: 3, Padding: nn.PadSame})
				h = nn.Relu(h)
			}
			return h
		}
		skips := make([]*Node, 0, cfg.Depth)
		h := x
		f := cfg.Filters
		for lvl := range cfg.Depth {
			h = block(scope.In("enc%d", lvl), h, f)
			skips = append(skips, h)
			h = nn.MaxPool2D(h, 2)
			f *= 2
		}
		h = block(scope.In("bottom"), h, f)
		for lvl := cfg.Depth - 1; lvl >= 0; lvl-- {
			f /= 2
			// Kernel 2, stride 2: every output pixel gets exactly one tap
			// (no checkerboard from overlapping taps).
			up := nn.ConvTranspose2D(scope.In("up%d", lvl), h, nn.ConvTranspose2DConfig{
				Filters: f, Kernel: 2, Stride: 2, L2: cfg.L2})
			up = nn.Relu(up)
			h = Concatenate([]*Node{up, skips[lvl]}, -1)
			h = block(scope.In("dec%d", lvl), h, f)
		}
		return nn.Conv2D(scope.In("logits"), h, nn.Conv2DConfig{Filters: 1, Kernel: 1})
	}
}

// LossFn is the training loss of cfg.Loss on (labels [b,h,w,1] in {0,1},
// logits [b,h,w,1]).
func LossFn(cfg Config) (loss.LossFn, error) { return lossFn(cfg.Loss) }

func lossFn(name string) (loss.LossFn, error) {
	switch name {
	case "bce":
		return loss.BinaryCrossentropyLogits, nil
	case "dice":
		return DiceLoss, nil
	case "bce+dice", "", "both":
		return func(labels, logits []*Node) *Node {
			return Add(loss.BinaryCrossentropyLogits(labels, logits), DiceLoss(labels, logits))
		}, nil
	}
	return nil, fmt.Errorf("loss %q: want bce, dice or bce+dice", name)
}

// DiceLoss is 1 − soft Dice of sigmoid(logits) against labels, over the whole
// batch (a per-image Dice is undefined on all-normal patches, which the
// class-balanced sampler produces half of the time).
func DiceLoss(labels, logits []*Node) *Node {
	p := Sigmoid(logits[0])
	y := ConvertDType(labels[0], p.DType())
	if y.Rank() != p.Rank() {
		y = Reshape(y, p.Shape().Dimensions...)
	}
	inter := ReduceAllSum(Mul(p, y))
	sum := Add(ReduceAllSum(p), ReduceAllSum(y))
	const eps = 1.0
	return OneMinus(Div(AddScalar(MulScalar(inter, 2), eps), AddScalar(sum, eps)))
}

// Input packs same-size images into x [len, h, w, 3] float32 scaled to [-1, 1].
func Input(imgs []*image.NRGBA) (*tensors.Tensor, error) {
	if len(imgs) == 0 {
		return nil, errors.New("fcn: no images")
	}
	sz := imgs[0].Rect.Size()
	buf := make([]float32, len(imgs)*sz.X*sz.Y*3)
	k := 0
	for i, m := range imgs {
		if m.Rect.Size() != sz {
			return nil, fmt.Errorf("fcn: image %d is %v, want %v", i, m.Rect.Size(), sz)
		}
		for y := 0; y < sz.Y; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*sz.X]
			for x := 0; x < 4*sz.X; x += 4 {
				buf[k] = float32(row[x])/127.5 - 1
				buf[k+1] = float32(row[x+1])/127.5 - 1
				buf[k+2] = float32(row[x+2])/127.5 - 1
				k += 3
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(buf, len(imgs), sz.Y, sz.X, 3), nil
}

// Labels packs same-size masks (>0 = tumour) into y [len, h, w, 1] float32.
func Labels(masks []*image.Gray) (*tensors.Tensor, error) {
	if len(masks) == 0 {
		return nil, errors.New("fcn: no masks")
	}
	sz := masks[0].Rect.Size()
	buf := make([]float32, len(masks)*sz.X*sz.Y)
	k := 0
	for i, m := range masks {
		if m.Rect.Size() != sz {
			return nil, fmt.Errorf("fcn: mask %d is %v, want %v", i, m.Rect.Size(), sz)
		}
		for y := 0; y < sz.Y; y++ {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+sz.X] {
				if v != 0 {
					buf[k] = 1
				}
				k++
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(buf, len(masks), sz.Y, sz.X, 1), nil
}

// Predictor runs the network forward with a store's current weights.
type Predictor struct {
	exec *model.Exec
	cfg  Config
}

// NewPredictor compiles (lazily, per input shape) the forward pass
// returning probabilities.
func NewPredictor(backend compute.Backend, st *model.Store, cfg Config) (*Predictor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fn := Logits(cfg)
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x *Node) *Node {
		return Sigmoid(fn(scope, x))
	})
	if err != nil {
		return nil, fmt.Errorf("fcn: %w", err)
	}
	return &Predictor{exec: exec, cfg: cfg}, nil
}

// Predict returns per-image probability maps (h·w values, row-major) of
// same-size images. Graph panics (a bad shape) come back as errors.
func (p *Predictor) Predict(imgs []*image.NRGBA) (probs [][]float32, err error) {
	x, err := Input(imgs)
	if err != nil {
		return nil, err
	}
	sz := imgs[0].Rect.Size()
	if m := p.cfg.Multiple(); sz.X%m != 0 || sz.Y%m != 0 {
		return nil, fmt.Errorf("fcn: window %v is not a multiple of %d", sz, m)
	}
	out, err := p.exec.Call1(x)
	if err != nil {
		return nil, fmt.Errorf("fcn: predict: %w", err)
	}
	flat := tensors.MustCopyFlatData[float32](out)
	out.FinalizeAll()
	n := sz.X * sz.Y
	probs = make([][]float32, len(imgs))
	for i := range probs {
		probs[i] = flat[i*n : (i+1)*n]
	}
	return probs, nil
}
