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
// GoMLX's input-dilated Convolve has no gradient, so this is built from
// differentiable ops as a sub-pixel convolution: output pixel o = s*m + a
// (phase a) only sees input pixels m - d for the few offsets d with
// k = s*d + a + p in range. Patches over those offsets (pad + slices +
// concatenate) are multiplied by a [offsets*cIn, s*s*cOut] kernel gathered from
// the real one by constant 0/1 selection matrices, and the s*s phases are
// interleaved back (depth-to-space). For k == s, p == 0 this is a single
// matmul plus a reshape.
func ConvTranspose2DOp(x, kernel *Node, stride, padding, outputPadding int) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		exceptions.Panicf("nn.ConvTranspose2DOp: want x rank 4 (NHWC) and kernel rank 4 [k,k,cIn,cOut], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	kd := kernel.Shape().Dimensions
	if kd[0] != kd[1] {
		exceptions.Panicf("nn.ConvTranspose2DOp: only square kernels supported, got %s", kernel.Shape())
	}
	xd := x.Shape().Dimensions
	if xd[3] != kd[2] {
		exceptions.Panicf("nn.ConvTranspose2DOp: x channels %d != kernel input channels %d", xd[3], kd[2])
	}
	k, s, p := kd[0], stride, padding
	if s < 1 || p < 0 || outputPadding < 0 || outputPadding >= s {
		exceptions.Panicf("nn.ConvTranspose2DOp: invalid stride=%d padding=%d outputPadding=%d", s, p, outputPadding)
	}
	cIn, cOut := kd[2], kd[3]
	g := x.Graph()

	// Offsets d (input pixel m-d feeds output block m) used by any phase.
	dmin, dmax := 1<<30, -(1 << 30)
	for a := range s {
		for kk := range k {
			if (kk-a-p)%s == 0 {
				d := floorDiv(kk-a-p, s)
				dmin, dmax = min(dmin, d), max(dmax, d)
			}
		}
	}
	nD := dmax - dmin + 1
	outH := (xd[1]-1)*s - 2*p + k + outputPadding
	outW := (xd[2]-1)*s - 2*p + k + outputPadding
	if outH <= 0 || outW <= 0 {
		exceptions.Panicf("nn.ConvTranspose2DOp: empty output for x %s, k=%d s=%d p=%d", x.Shape(), k, s, p)
	}
	mH, mW := (outH+s-1)/s, (outW+s-1)/s

	// Pad (or crop) x so that padded index m+j == input index m - dmax + j.
	x = PadZeros(x, 1, dmax, mH+nD-1-xd[1]-dmax)
	x = PadZeros(x, 2, dmax, mW+nD-1-xd[2]-dmax)
	var patches *Node
	if nD == 1 {
		patches = x
	} else {
		parts := make([]*Node, 0, nD*nD)
		for jy := range nD {
			for jx := range nD {
				parts = append(parts, Slice(x, AxisRange(), AxisRange(jy, jy+mH), AxisRange(jx, jx+mW), AxisRange()))
			}
		}
		patches = Concatenate(parts, -1)
	}

	// sel[j, a, kk] = 1 iff kernel tap kk feeds phase a from offset j.
	selData := make([]float64, nD*s*k)
	for j := range nD {
		d := dmax - j
		for a := range s {
			kk := s*d + a + p
			if kk >= 0 && kk < k {
				selData[(j*s+a)*k+kk] = 1
			}
		}
	}
	sel := ConvertDType(Reshape(Const(g, selData), nD, s, k), kernel.DType())
	// [nD(y), s(y), k(x), cIn, cOut]
	t1 := Dot(sel, kernel).General([]int{2}, nil, []int{0}, nil)
	// [nD(x), s(x), nD(y), s(y), cIn, cOut]
	t2 := Dot(sel, t1).General([]int{2}, nil, []int{2}, nil)
	// -> [nD(y), nD(x), cIn, s(y), s(x), cOut]
	big := Reshape(TransposeAllAxes(t2, 2, 0, 4, 3, 1, 5), nD*nD*cIn, s*s*cOut)

	y := patchMatMul(patches, big) // [b, mH, mW, s*s*cOut]
	if s > 1 {
		y = Reshape(y, xd[0], mH, mW, s, s, cOut)
		y = TransposeAllAxes(y, 0, 1, 3, 2, 4, 5)
		y = Reshape(y, xd[0], mH*s, mW*s, cOut)
	}
	if mH*s != outH || mW*s != outW {
		y = Slice(y, AxisRange(), AxisRange(0, outH), AxisRange(0, outW), AxisRange())
	}
	return y
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
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
	cIn := x.Shape().Dimensions[x.Rank()-1]
	wVar := scope.VariableWithShape("weights", shapes.Make(x.DType(), cfg.Kernel, cfg.Kernel, cIn, cfg.Filters))
	applyRegularizer(scope, g, cfg.L2, wVar)
	y := ConvTranspose2DOp(x, wVar.NodeValue(g), cfg.Stride, cfg.Padding, cfg.OutputPadding)
	if !cfg.NoBias {
		bVar := scope.VariableWithShape("biases", shapes.Make(x.DType(), cfg.Filters))
		y = Add(y, Reshape(bVar.NodeValue(g), 1, 1, 1, cfg.Filters))
	}
	return y
}
