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
	tg := newTransposeGeom(xd[1], xd[2], k, s, p, outputPadding)
	nD, dmax, mH, mW, outH, outW := tg.nD, tg.dmax, tg.mH, tg.mW, tg.outH, tg.outW

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

	big := Reshape(tg.subPixelKernel(kernel), nD*nD*kd[2], s*s*kd[3])
	y := patchMatMul(patches, big) // [b, mH, mW, s*s*cOut]
	if s > 1 {
		y = Reshape(y, xd[0], mH, mW, s, s, kd[3])
		y = TransposeAllAxes(y, 0, 1, 3, 2, 4, 5)
		y = Reshape(y, xd[0], mH*s, mW*s, kd[3])
	}
	if mH*s != outH || mW*s != outW {
		y = Slice(y, AxisRange(), AxisRange(0, outH), AxisRange(0, outW), AxisRange())
	}
	return y
}

// transposeGeom is the sub-pixel geometry of a transposed convolution of an
// h x w input with kernel k, stride s, padding p, output padding op: output
// pixel o = s*m + a (phase a) sees input pixels m - d for offsets
// d in [dmin, dmax] (nD of them); mH x mW output blocks cover outH x outW.
type transposeGeom struct {
	k, s, p            int
	dmin, dmax, nD     int
	outH, outW, mH, mW int
}

func newTransposeGeom(h, w, k, s, p, op int) transposeGeom {
	tg := transposeGeom{k: k, s: s, p: p, dmin: 1 << 30, dmax: -(1 << 30)}
	// Offsets d (input pixel m-d feeds output block m) used by any phase.
	for a := range s {
		for kk := range k {
			if (kk-a-p)%s == 0 {
				d := floorDiv(kk-a-p, s)
				tg.dmin, tg.dmax = min(tg.dmin, d), max(tg.dmax, d)
			}
		}
	}
	tg.nD = tg.dmax - tg.dmin + 1
	tg.outH = (h-1)*s - 2*p + k + op
	tg.outW = (w-1)*s - 2*p + k + op
	if tg.outH <= 0 || tg.outW <= 0 {
		exceptions.Panicf("nn.ConvTranspose2DOp: empty output for a %dx%d input, k=%d s=%d p=%d", h, w, k, s, p)
	}
	tg.mH, tg.mW = (tg.outH+s-1)/s, (tg.outW+s-1)/s
	return tg
}

// subPixelKernel gathers kernel [k, k, cIn, cOut] into the HWIO kernel
// [nD, nD, cIn, s*s*cOut] of the equivalent stride-1 convolution whose
// output channels are (phase y, phase x, cOut): tap j (input pixel
// m - dmax + j) of phase a uses kernel tap kk = s*(dmax-j) + a + p.
func (tg transposeGeom) subPixelKernel(kernel *Node) *Node {
	nD, s, k := tg.nD, tg.s, tg.k
	kd := kernel.Shape().Dimensions
	// sel[j, a, kk] = 1 iff kernel tap kk feeds phase a from offset j.
	selData := make([]float64, nD*s*k)
	for j := range nD {
		d := tg.dmax - j
		for a := range s {
			kk := s*d + a + tg.p
			if kk >= 0 && kk < k {
				selData[(j*s+a)*k+kk] = 1
			}
		}
	}
	sel := ConvertDType(Reshape(Const(kernel.Graph(), selData), nD, s, k), kernel.DType())
	// [nD(y), s(y), k(x), cIn, cOut]
	t1 := Dot(sel, kernel).General([]int{2}, nil, []int{0}, nil)
	// [nD(x), s(x), nD(y), s(y), cIn, cOut]
	t2 := Dot(sel, t1).General([]int{2}, nil, []int{2}, nil)
	// -> [nD(y), nD(x), cIn, s(y), s(x), cOut]
	return Reshape(TransposeAllAxes(t2, 2, 0, 4, 3, 1, 5), nD, nD, kd[2], s*s*kd[3])
}

// ConvTranspose2DIn is ConvTranspose2DOp for x in layout (NHWC or CBHW
// [c, batch, h, w]). On the pure-Go backend, in CBHW, when the sub-pixel
// convolution is a "same" one (odd nD centred on the input pixel, as for
// k4 s2 p1 and k3 s2 p1 op1) it runs as Conv2DSameCBHW plus one
// depth-to-space transpose; otherwise it transposes to NHWC and back.
func ConvTranspose2DIn(x, kernel *Node, stride, padding, outputPadding int, layout Layout) *Node {
	if layout == NHWC {
		return ConvTranspose2DOp(x, kernel, stride, padding, outputPadding)
	}
	kd, xd := kernel.Shape().Dimensions, x.Shape().Dimensions
	if x.Rank() == 4 && kernel.Rank() == 4 && kd[0] == kd[1] && xd[0] == kd[2] && stride >= 1 && padding >= 0 &&
		outputPadding >= 0 && outputPadding < stride && resolveImpl(x.Graph(), ConvAuto) == ConvIm2Col {
		tg := newTransposeGeom(xd[2], xd[3], kd[0], stride, padding, outputPadding)
		s := stride
		if tg.nD%2 == 1 && tg.dmin == -tg.dmax && tg.mH == xd[2] && tg.mW == xd[3] &&
			tg.outH == tg.mH*s && tg.outW == tg.mW*s {
			y := Conv2DSameCBHW(x, tg.subPixelKernel(kernel)) // [(s, s, cOut), b, h, w]
			if s == 1 {
				return y
			}
			y = Reshape(y, s, s, kd[3], xd[1], xd[2], xd[3])
			y = TransposeAllAxes(y, 2, 3, 4, 0, 5, 1) // [cOut, b, h, s, w, s]
			return Reshape(y, kd[3], xd[1], xd[2]*s, xd[3]*s)
		}
	}
	return ToLayout(ConvTranspose2DOp(ToLayout(x, CBHW, NHWC), kernel, stride, padding, outputPadding), NHWC, CBHW)
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
	// Layout of x and of the result (see ConvTranspose2DIn).
	Layout Layout
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
	cIn := x.Shape().Dimensions[channelsAxis(cfg.Layout)]
	wVar := scope.VariableWithShape("weights", shapes.Make(x.DType(), cfg.Kernel, cfg.Kernel, cIn, cfg.Filters))
	applyRegularizer(scope, g, cfg.L2, wVar)
	y := ConvTranspose2DIn(x, wVar.NodeValue(g), cfg.Stride, cfg.Padding, cfg.OutputPadding, cfg.Layout)
	if !cfg.NoBias {
		bVar := scope.VariableWithShape("biases", shapes.Make(x.DType(), cfg.Filters))
		y = Add(y, channelVector(bVar.NodeValue(g), cfg.Layout))
	}
	return y
}
