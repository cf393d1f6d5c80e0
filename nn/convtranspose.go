package nn

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// ConvTranspose2DOp is the transposed convolution ("deconvolution") of
// x [batch, h, w, cIn] with kernel [k, k, cIn, cOut], with the semantics of
// torch.nn.ConvTranspose2d(stride=s, padding=p, output_padding=op):
//
//	y[s*i + ky - p, s*j + kx - p, f] += x[i, j, c] * kernel[ky, kx, c, f]
//
// and output size (in-1)*s - 2p + k + op. (torch stores the weight as
// [cIn, cOut, k, k]; permute it with (2, 3, 0, 1) to get this layout.)
//
// It is the convolution of x dilated by s (s-1 zeros between pixels),
// padded by k-1-p (and op more at the end), with the kernel flipped: the
// input gradient of a strided convolution, which the engine runs as
// oneDNN's backward-data primitive. GoMLX defines no gradient for an
// input-dilated convolution, so its gradients are attached here: dx is the
// strided convolution of dy with the kernel, and dkernel the kernel
// gradient of that same convolution (see transposeGradients).
func ConvTranspose2DOp(x, kernel, bias *Node, stride, padding, outputPadding int) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		exceptions.Panicf("nn.ConvTranspose2DOp: want x rank 4 (NHWC) and kernel rank 4 [k,k,cIn,cOut], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	kd, xd := kernel.Shape().Dimensions, x.Shape().Dimensions
	if kd[0] != kd[1] {
		exceptions.Panicf("nn.ConvTranspose2DOp: only square kernels supported, got %s", kernel.Shape())
	}
	if xd[3] != kd[2] {
		exceptions.Panicf("nn.ConvTranspose2DOp: x channels %d != kernel input channels %d", xd[3], kd[2])
	}
	k, s, p, op := kd[0], stride, padding, outputPadding
	if s < 1 || p < 0 || op < 0 || op >= s || p > k-1 {
		exceptions.Panicf("nn.ConvTranspose2DOp: invalid stride=%d padding=%d outputPadding=%d for kernel %d", s, p, op, k)
	}
	if (xd[1]-1)*s-2*p+k+op <= 0 || (xd[2]-1)*s-2*p+k+op <= 0 {
		exceptions.Panicf("nn.ConvTranspose2DOp: empty output for a %dx%d input, k=%d s=%d p=%d", xd[1], xd[2], k, s, p)
	}
	g := transposeGradients{stride: s, padding: p, outputPadding: op}
	xIn := IdentityWithCustomGradient(x, func(_, v *Node) *Node { return g.dx(v, kernel) })
	kIn := IdentityWithCustomGradient(kernel, func(_, v *Node) *Node { return g.dKernel(v, x) })
	// The convolution itself is hidden from autodiff (it would panic on
	// the input dilation); the gradients reach xIn and kIn through a
	// zero that depends on both, added to the bias: no extra pass over
	// the output.
	y := StopGradient(ConvGeneral(x, Reverse(kernel, 0, 1), transposeAxes(),
		nil, [][2]int{{k - 1 - p, k - 1 - p + op}, {k - 1 - p, k - 1 - p + op}}, []int{s, s}, nil, 1, 1))
	zero := MulScalar(Add(ReduceAllSum(Slice(xIn, AxisElem(0), AxisElem(0), AxisElem(0), AxisElem(0))),
		ReduceAllSum(Slice(kIn, AxisElem(0), AxisElem(0), AxisElem(0), AxisElem(0)))), 0)
	if bias == nil {
		bias = Zeros(x.Graph(), shapes.Make(x.DType(), kd[3]))
	}
	y = Add(y, Reshape(Add(bias, zero), 1, 1, 1, kd[3]))
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		g.dy = v
		return v
	})
}

// transposeAxes: x NHWC, kernel [k, k, cIn, cOut] read with input and
// output channels swapped (the kernel of the strided convolution whose
// input gradient this is maps cOut to cIn).
func transposeAxes() ConvolveAxesConfig {
	return ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
}

// transposeGradients are the gradients of ConvTranspose2DOp. The
// transposed convolution T(x) is the adjoint of the strided convolution
// C(z) = conv(z, kernel; stride s, padding (p, p-op)) with the kernel's
// channels read as [cOut -> cIn], so <T(x), dy> = <x, C(dy)>: dx = C(dy),
// and dkernel is C's kernel gradient at input dy for output gradient x.
type transposeGradients struct {
	stride, padding, outputPadding int
	dy                             *Node // the output gradient, set by the output's identity
}

func (g *transposeGradients) pads() [][2]int {
	p, op := g.padding, g.outputPadding
	return [][2]int{{p, p - op}, {p, p - op}}
}

func (g *transposeGradients) dx(v, kernel *Node) *Node {
	if g.dy == nil {
		return v
	}
	// C: input dy NHWC, kernel [k, k, cIn, cOut] as [.., out=cIn, in=cOut].
	axes := ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 3, KernelOutputChannels: 2, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	return ConvGeneral(g.dy, kernel, axes, []int{g.stride, g.stride}, g.pads(), nil, nil, 1, 1)
}

func (g *transposeGradients) dKernel(v, x *Node) *Node {
	if g.dy == nil {
		return v
	}
	// C's kernel gradient: a convolution of dy (its batch and channels
	// swapped) with x as the kernel (x's batch contracted, its channels the
	// outputs), dilated by the stride: the result is [k, k, cIn, cOut].
	axes := ConvolveAxesConfig{InputBatch: 3, InputChannels: 0, InputSpatial: []int{1, 2},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 3, OutputChannels: 2, OutputSpatial: []int{0, 1}}
	return ConvGeneral(g.dy, x, axes, nil, g.pads(), nil, []int{g.stride, g.stride}, 1, 1)
}

// ConvTranspose2DConfig configures ConvTranspose2D. Kernel/Stride/Padding/
// OutputPadding follow torch.nn.ConvTranspose2d; Keras Conv2DTranspose with
// padding="same", kernel 4, strides 2 is Kernel 4, Stride 2, Padding 1.
type ConvTranspose2DConfig struct {
	Filters       int // output channels (required)
	Kernel        int // required
	Stride        int // default 2
	Padding       int
	OutputPadding int
	NoBias        bool
	// L2 adds L2*sum(kernel^2) to the train loss through GoMLX's regularizer
	// (train.AddRegularizationLoss). When 0 the scope's regularizer params apply.
	L2 float64
}

// ConvTranspose2D is a trainable transposed convolution on NHWC input with
// variables "weights" [k, k, cIn, filters] and "biases" [filters].
func ConvTranspose2D(scope *model.Scope, x *Node, cfg ConvTranspose2DConfig) *Node {
	if cfg.Filters <= 0 || cfg.Kernel <= 0 {
		exceptions.Panicf("nn.ConvTranspose2D: Filters and Kernel must be > 0, got %+v", cfg)
	}
	if cfg.Stride == 0 {
		cfg.Stride = 2
	}
	g := x.Graph()
	cIn := x.Shape().Dimensions[3]
	wVar := scope.VariableWithShape("weights", shapes.Make(x.DType(), cfg.Kernel, cfg.Kernel, cIn, cfg.Filters))
	applyRegularizer(scope, g, cfg.L2, wVar)
	var bias *Node
	if !cfg.NoBias {
		bias = scope.VariableWithShape("biases", shapes.Make(x.DType(), cfg.Filters)).NodeValue(g)
	}
	return ConvTranspose2DOp(x, wVar.NodeValue(g), bias, cfg.Stride, cfg.Padding, cfg.OutputPadding)
}
