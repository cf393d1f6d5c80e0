package nn

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style: graph code dot-imports graph.
	"github.com/gomlx/gomlx/ml/layers/regularizer"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// ConvImpl selects how a convolution is computed.
type ConvImpl int

const (
	// ConvAuto uses im2col on the pure-Go backend (whose native convolution is a
	// single-threaded direct loop, ~100x slower than its matmul) and the native
	// convolution everywhere else (XLA fuses and tunes it).
	ConvAuto ConvImpl = iota
	// ConvIm2Col extracts patches (pad + strided slices concatenated on the
	// channel axis) and multiplies them with the kernel via DotGeneral. Its
	// gradient comes from autodiff of those ops.
	ConvIm2Col
	// ConvNative uses graph.Convolve.
	ConvNative
)

// String implements fmt.Stringer.
func (c ConvImpl) String() string {
	switch c {
	case ConvAuto:
		return "auto"
	case ConvIm2Col:
		return "im2col"
	case ConvNative:
		return "native"
	}
	return fmt.Sprintf("ConvImpl(%d)", int(c))
}

// Padding is the spatial padding mode of a convolution.
type Padding int

const (
	// PadValid uses no padding: output = floor((in-k)/s)+1.
	PadValid Padding = iota
	// PadSame follows Keras/TensorFlow "same": output = ceil(in/s), with the
	// extra pixel of an odd total padding at the end. With stride 1 it equals
	// torch's padding=(k-1)/2 for odd k.
	PadSame
)

// ParamConvImpl is the scope hyperparameter (a string: "auto", "im2col",
// "native") that overrides Conv2DConfig.Impl when the latter is ConvAuto, so a
// run can switch implementation without code changes.
const ParamConvImpl = "nn_conv_impl"

// resolveImpl picks the concrete implementation for graph g.
func resolveImpl(g *Graph, impl ConvImpl) ConvImpl {
	if impl != ConvAuto {
		return impl
	}
	if g.Backend() != nil && isGoBackend(g.Backend()) {
		return ConvIm2Col
	}
	return ConvNative
}

// isGoBackend reports whether b is the pure-Go backend (registered as "go",
// whose Name() is "Go Backend").
func isGoBackend(b compute.Backend) bool {
	return strings.HasPrefix(strings.ToLower(b.Name()), "go")
}

// samePadding returns the (before, after) padding of TF "same" for one axis.
func samePadding(in, k, s int) (int, int) {
	out := (in + s - 1) / s
	total := max((out-1)*s+k-in, 0)
	return total / 2, total - total/2
}

// convPaddings returns per-axis (before, after) paddings for the spatial axes.
func convPaddings(spatial, kernel []int, stride int, pad Padding) [][2]int {
	p := make([][2]int, len(spatial))
	if pad == PadSame {
		for i := range spatial {
			p[i][0], p[i][1] = samePadding(spatial[i], kernel[i], stride)
		}
	}
	return p
}

// Conv2DOp convolves x [batch, height, width, cIn] with kernel
// [kh, kw, cIn, cOut] (GoMLX/TensorFlow layout) and returns
// [batch, outH, outW, cOut]. Dilation is 1, no bias. It is the functional core
// of Conv2D, exposed so tests and custom layers can pass their own kernels.
func Conv2DOp(x, kernel *Node, stride int, pad Padding, impl ConvImpl) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		exceptions.Panicf("nn.Conv2DOp: want x rank 4 (NHWC) and kernel rank 4 (HWIO), got %s and %s",
			x.Shape(), kernel.Shape())
	}
	if stride < 1 {
		exceptions.Panicf("nn.Conv2DOp: stride must be >= 1, got %d", stride)
	}
	kd := kernel.Shape().Dimensions
	if x.Shape().Dimensions[3] != kd[2] {
		exceptions.Panicf("nn.Conv2DOp: x channels %d != kernel input channels %d (x=%s, kernel=%s)",
			x.Shape().Dimensions[3], kd[2], x.Shape(), kernel.Shape())
	}
	spatial := x.Shape().Dimensions[1:3]
	paddings := convPaddings(spatial, kd[:2], stride, pad)
	for i := range 2 {
		if spatial[i]+paddings[i][0]+paddings[i][1] < kd[i] {
			exceptions.Panicf("nn.Conv2DOp: input %v too small for kernel %v with padding %v", spatial, kd[:2], paddings)
		}
	}
	switch resolveImpl(x.Graph(), impl) {
	case ConvNative:
		// GoMLX v0.28's Convolve gives a wrong x-gradient for even-sized
		// kernels (k2s2valid and k4s1same in testdata/nn/conv2d.json fail
		// without this), so those are extended by one zero tap (and x by one
		// zero row/column) to an odd size. Padding and cropping are done
		// explicitly so Convolve always sees an exactly fitting "valid" input.
		x = fitConvInput(x, kd[:2], stride, paddings)
		for i := range 2 {
			if kd[i]%2 == 0 {
				kernel = PadZeros(kernel, i, 0, 1)
				x = PadZeros(x, i+1, 0, 1)
			}
		}
		return Convolve(x, kernel).Strides(stride).NoPadding().Done()
	default:
		return conv2DIm2Col(fitConvInput(x, kd[:2], stride, paddings), kernel, stride)
	}
}

// fitConvInput zero-pads the spatial axes of x and crops the trailing rows and
// columns that no output position reads.
func fitConvInput(x *Node, kernel []int, stride int, paddings [][2]int) *Node {
	for i := range 2 {
		axis := i + 1
		x = PadZeros(x, axis, paddings[i][0], paddings[i][1])
		n := x.Shape().Dimensions[axis]
		used := (n-kernel[i])/stride*stride + kernel[i]
		if used < n {
			x = PadZeros(x, axis, 0, used-n)
		}
	}
	return x
}

// PadZeros zero-pads (or, with negative amounts, crops) one axis of x. GoMLX
// v0.28 defines no gradient for the Pad op, so padding is a Concatenate with
// zeros, which is differentiable.
func PadZeros(x *Node, axis, before, after int) *Node {
	if before < 0 || after < 0 {
		dim := x.Shape().Dimensions[axis]
		specs := make([]SliceAxisSpec, x.Rank())
		for i := range specs {
			specs[i] = AxisRange()
		}
		specs[axis] = AxisRange(max(0, -before), dim-max(0, -after))
		x = Slice(x, specs...)
		before, after = max(0, before), max(0, after)
	}
	if before == 0 && after == 0 {
		return x
	}
	parts := make([]*Node, 0, 3)
	zeros := func(n int) *Node {
		sh := x.Shape().Clone()
		sh.Dimensions[axis] = n
		return Zeros(x.Graph(), sh)
	}
	if before > 0 {
		parts = append(parts, zeros(before))
	}
	parts = append(parts, x)
	if after > 0 {
		parts = append(parts, zeros(after))
	}
	return Concatenate(parts, axis)
}

// conv2DIm2Col builds the patches [batch, outH, outW, kh*kw*cIn] ordered
// (ky, kx, c), which is the row-major flattening of the HWIO kernel's first
// three axes, so the convolution is one matmul with kernel reshaped to
// [kh*kw*cIn, cOut].
func conv2DIm2Col(x, kernel *Node, stride int) *Node {
	kd := kernel.Shape().Dimensions
	kh, kw, cIn, cOut := kd[0], kd[1], kd[2], kd[3]
	dims := x.Shape().Dimensions
	outH := (dims[1]-kh)/stride + 1
	outW := (dims[2]-kw)/stride + 1
	var patches *Node
	if kh == 1 && kw == 1 && stride == 1 {
		patches = x
	} else {
		parts := make([]*Node, 0, kh*kw)
		for ky := range kh {
			for kx := range kw {
				parts = append(parts, Slice(x, AxisRange(),
					AxisRange(ky, ky+(outH-1)*stride+1).Stride(stride),
					AxisRange(kx, kx+(outW-1)*stride+1).Stride(stride),
					AxisRange()))
			}
		}
		if len(parts) == 1 {
			patches = parts[0]
		} else {
			patches = Concatenate(parts, -1)
		}
	}
	return patchMatMul(patches, Reshape(kernel, kh*kw*cIn, cOut))
}

// patchMatMul returns patches [b, h, w, k] x kernel [k, f] -> [b, h, w, f]
// with hand-written gradients laid out for the pure-Go backend's matmul,
// which wants lhs [cross, contracting] and rhs [contracting, cross] or
// [cross, contracting] and otherwise transposes its operands with a slow
// generic loop. GoMLX's generic DotGeneral VJP contracts over the leading
// (batch, h, w) axes for the kernel gradient, which made the backend transpose
// the whole patch matrix each step, and adds an identity transpose of the patch
// gradient. Here:
//
//	dPatches = dY · kernelᵀ                (rhs [f, k]: contracting last)
//	dKernelᵀ = dYᵀ [f, m] · patches [m, k] (only dY, f/k times smaller, is transposed)
//
// The custom gradients are attached with IdentityWithCustomGradient: the
// output's identity captures dY (autodiff visits it first), and the inputs'
// identities ignore the generic VJP's result, which is then dead code that the
// backends eliminate.
func patchMatMul(patches, kernel *Node) *Node {
	d := patches.Shape().Dimensions
	m := d[0] * d[1] * d[2]
	k, f := kernel.Shape().Dimensions[0], kernel.Shape().Dimensions[1]
	// Work on [m, k] matrices: the Go backend copies a buffer on Reshape or
	// Identity unless it is the buffer's last use, so the big patch matrix is
	// reshaped once, while it is still single-use.
	p2 := Reshape(patches, m, k)
	var dy *Node
	pIn := IdentityWithCustomGradient(p2, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		return Dot(dy, kernel).General([]int{1}, nil, []int{1}, nil)
	})
	kIn := IdentityWithCustomGradient(kernel, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		dkT := Dot(TransposeAllAxes(dy, 1, 0), pIn).General([]int{1}, nil, []int{0}, nil) // [f, k]
		return TransposeAllAxes(dkT, 1, 0)
	})
	y := Dot(pIn, kIn).General([]int{1}, nil, []int{0}, nil)
	y = IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
	return Reshape(y, d[0], d[1], d[2], f)
}

// Conv2DConfig configures Conv2D.
type Conv2DConfig struct {
	Filters int     // output channels (required)
	Kernel  int     // square kernel size (required)
	Stride  int     // default 1
	Padding Padding // default PadValid
	NoBias  bool
	Impl    ConvImpl
	// Layout of x and of the result: NHWC (default) or CBHW. On the pure-Go
	// backend CBHW runs stride-1 "same" convolutions with odd kernels (and
	// 1x1 ones) through Conv2DSameCBHW, 1.2-2.5x faster than NHWC im2col;
	// elsewhere, and for other configurations, a CBHW convolution transposes
	// to NHWC and back.
	Layout Layout
	// L2 adds L2*sum(kernel^2) to the train loss (GoMLX regularizer). When 0 the
	// scope's regularizer.ParamL2 / ParamL1 hyperparameters apply, like
	// layers.Convolution.
	L2 float64
}

// Conv2D is a trainable 2D convolution on NHWC input. Variables "weights"
// [k, k, cIn, filters] and "biases" [filters] are created in scope (callers
// name the layer with scope.In("conv1")).
func Conv2D(scope *model.Scope, x *Node, cfg Conv2DConfig) *Node {
	if cfg.Filters <= 0 || cfg.Kernel <= 0 {
		exceptions.Panicf("nn.Conv2D: Filters and Kernel must be > 0, got %+v", cfg)
	}
	if cfg.Stride == 0 {
		cfg.Stride = 1
	}
	if cfg.Impl == ConvAuto {
		cfg.Impl = implFromScope(scope)
	}
	g := x.Graph()
	cIn := x.Shape().Dimensions[channelsAxis(cfg.Layout)]
	wVar := scope.VariableWithShape("weights", shapes.Make(x.DType(), cfg.Kernel, cfg.Kernel, cIn, cfg.Filters))
	applyRegularizer(scope, g, cfg.L2, wVar)
	y := conv2DLayout(x, wVar.NodeValue(g), cfg.Stride, cfg.Padding, cfg.Impl, cfg.Layout)
	if !cfg.NoBias {
		bVar := scope.VariableWithShape("biases", shapes.Make(x.DType(), cfg.Filters))
		y = Add(y, channelVector(bVar.NodeValue(g), cfg.Layout))
	}
	return y
}

// conv2DLayout is Conv2DOp for x in layout.
func conv2DLayout(x, kernel *Node, stride int, pad Padding, impl ConvImpl, layout Layout) *Node {
	if layout == NHWC {
		return Conv2DOp(x, kernel, stride, pad, impl)
	}
	kd := kernel.Shape().Dimensions
	odd := kd[0]%2 == 1 && kd[1]%2 == 1
	same := pad == PadSame || (kd[0] == 1 && kd[1] == 1)
	if resolveImpl(x.Graph(), impl) == ConvIm2Col && stride == 1 && odd && same {
		return Conv2DSameCBHW(x, kernel)
	}
	return ToLayout(Conv2DOp(ToLayout(x, CBHW, NHWC), kernel, stride, pad, impl), NHWC, CBHW)
}

func implFromScope(scope *model.Scope) ConvImpl {
	switch model.GetParamOr(scope, ParamConvImpl, "auto") {
	case "im2col":
		return ConvIm2Col
	case "native":
		return ConvNative
	}
	return ConvAuto
}

// applyRegularizer adds an explicit L2 penalty, or the scope-configured one.
func applyRegularizer(scope *model.Scope, g *Graph, l2 float64, vars ...*model.Variable) {
	reg := regularizer.FromScope(scope)
	if l2 > 0 {
		reg = regularizer.L2(l2)
	}
	if reg != nil {
		reg(g, vars...)
	}
}
