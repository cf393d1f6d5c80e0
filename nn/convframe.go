package nn

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style: graph code dot-imports graph.
	"github.com/gomlx/gomlx/support/exceptions"
)

// This file implements stride-1 "same" convolutions with odd kernels for the
// pure-Go backend in the channels-major layout [c, batch, h, w] ("CBHW"), as
// one matmul per pass whose patch matrix is built by a single Concatenate.
//
// Why: the pinned backend copies Slice, Transpose and Gather element by
// element (5-15 ns per element) but Concatenate and Reshape with memmove, and
// its matmul is 3-4x faster when the big operand is the right-hand side in
// [contracting, cross] layout ([9c, pixels] here) than when it is the
// left-hand side ([pixels, 9c], the NHWC im2col form, whose packing transposes
// every element).
//
// The trick ("frame layout"): each image is stored with p zero columns on the
// left and p zero rows at the bottom, [h+p, w+p], and the images of the batch
// are laid out one after another on one flat axis. A zero column then also
// serves as the right padding of the previous row, and the zero rows as the
// top padding of the next image, so a tap (dy, dx) of the kernel reads the
// flat frame shifted by s = dy*(w+p) + dx, and every read of a data pixel that
// falls outside the image lands on a zero. Shifting is a Concatenate with zero
// blocks, and all k*k shifted copies come from one Concatenate (patch rows
// ordered (channel, tap)). Outputs are computed at every frame position (the
// padding positions give garbage) and the data positions are cropped with one
// Slice. One extra zero frame before and after the batch makes that crop a
// plain 4-D slice.
//
// Gradients are attached by hand: dx is the same frame convolution of dy with
// the flipped, transposed kernel, and dW is one matmul of the forward patch
// matrix with dy in frame layout. Generic autodiff would instead slice the
// patch gradient k*k times and pad and sum the pieces.

// frameGeom is the frame layout of a batch of images.
type frameGeom struct {
	b, h, w, ph, pw int
}

func (g frameGeom) frameH() int    { return g.h + g.ph }
func (g frameGeom) frameW() int    { return g.w + g.pw }
func (g frameGeom) frameSize() int { return g.frameH() * g.frameW() }

// flat is the length of the batch's frames on the flat axis.
func (g frameGeom) flat() int { return g.b * g.frameSize() }

// toFrame pads x [c, b, h, w] into frames [c, b*(h+ph)*(w+pw)].
func (g frameGeom) toFrame(x *Node) *Node {
	c := x.Shape().Dimensions[0]
	x = PadZeros(x, 3, g.pw, 0)
	x = PadZeros(x, 2, 0, g.ph)
	return Reshape(x, c, g.flat())
}

// patches returns the patch matrix [c*kh*kw, (b+2)*frameSize] of frames
// f [c, flat]: row (ch, ky, kx) is f[ch] shifted by tap (ky, kx), with one zero
// frame of margin before and after the batch.
func (g frameGeom) patches(f *Node, kh, kw int) *Node {
	c := f.Shape().Dimensions[0]
	margin := g.frameSize()
	parts := make([]*Node, 0, 2*kh*kw+1)
	pending := 0 // zeros to emit before the next copy of f
	zeros := func(n int) *Node { return Zeros(f.Graph(), shapesLike(f, c, n)) }
	for ky := range kh {
		for kx := range kw {
			s := (ky-g.ph)*g.frameW() + (kx - g.pw)
			pending += margin - s
			parts = append(parts, zeros(pending), f)
			pending = margin + s
		}
	}
	parts = append(parts, zeros(pending))
	all := Concatenate(parts, 1) // [c, kh*kw*(flat+2*margin)]
	return Reshape(all, c*kh*kw, g.flat()+2*margin)
}

// crop extracts the data positions [c, b, h, w] of y [c, (b+2)*frameSize],
// the output of a matmul with patches.
func (g frameGeom) crop(y *Node) *Node {
	c := y.Shape().Dimensions[0]
	y = Reshape(y, c, g.b+2, g.frameH(), g.frameW())
	return Slice(y, AxisRange(), AxisRange(1, g.b+1), AxisRange(0, g.h), AxisRange(g.pw, g.pw+g.w))
}

// frameConv is the forward pass on frames f [c, flat] with the kernel as a
// matrix km [f, c*kh*kw]: returns the patches and the cropped output.
func (g frameGeom) frameConv(f, km *Node, kh, kw int) (p, y *Node) {
	p = g.patches(f, kh, kw)
	y = Dot(km, p).General([]int{1}, nil, []int{0}, nil)
	return p, g.crop(y)
}

func shapesLike(x *Node, dims ...int) shapes.Shape {
	sh := x.Shape().Clone()
	sh.Dimensions = dims
	return sh
}

// kernelRows returns kernel [kh, kw, cIn, cOut] as the matrix
// [cOut, cIn*kh*kw] whose column order matches patches' rows.
func kernelRows(kernel *Node) *Node {
	kd := kernel.Shape().Dimensions
	return Reshape(TransposeAllAxes(kernel, 3, 2, 0, 1), kd[3], kd[2]*kd[0]*kd[1])
}

// flippedKernelRows returns the matrix [cIn, cOut*kh*kw] of the kernel rotated
// by 180 degrees with its channel axes swapped: the kernel of the gradient
// with respect to the input.
func flippedKernelRows(kernel *Node) *Node {
	kd := kernel.Shape().Dimensions
	return Reshape(TransposeAllAxes(Reverse(kernel, 0, 1), 2, 3, 0, 1), kd[2], kd[3]*kd[0]*kd[1])
}

// Conv2DSameCBHW convolves x [cIn, batch, h, w] (channels-major layout) with
// kernel [kh, kw, cIn, cOut] (odd sizes), stride 1 and "same" padding, and
// returns [cOut, batch, h, w]. It is the fast path of Conv2D on the pure-Go
// backend; its gradients are hand-written (see the file comment).
func Conv2DSameCBHW(x, kernel *Node) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		exceptions.Panicf("nn.Conv2DSameCBHW: want x rank 4 (CBHW) and kernel rank 4 (HWIO), got %s and %s",
			x.Shape(), kernel.Shape())
	}
	kd, xd := kernel.Shape().Dimensions, x.Shape().Dimensions
	if kd[0]%2 == 0 || kd[1]%2 == 0 {
		exceptions.Panicf("nn.Conv2DSameCBHW: kernel sizes must be odd, got %s", kernel.Shape())
	}
	if xd[0] != kd[2] {
		exceptions.Panicf("nn.Conv2DSameCBHW: x channels %d != kernel input channels %d (x=%s, kernel=%s)",
			xd[0], kd[2], x.Shape(), kernel.Shape())
	}
	kh, kw := kd[0], kd[1]
	g := frameGeom{b: xd[1], h: xd[2], w: xd[3], ph: (kh - 1) / 2, pw: (kw - 1) / 2}
	if kh == 1 && kw == 1 {
		// A 1x1 convolution is a plain matmul in this layout; autodiff's
		// gradients need no transposes of the big operands either.
		y := Dot(kernelRows(kernel), Reshape(x, xd[0], -1)).General([]int{1}, nil, []int{0}, nil)
		return Reshape(y, kd[3], xd[1], xd[2], xd[3])
	}

	var dy *Node
	var p *Node
	xIn := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		_, dx := g.frameConv(g.toFrame(dy), flippedKernelRows(kernel), kh, kw)
		return dx
	})
	kIn := IdentityWithCustomGradient(kernel, func(_, v *Node) *Node {
		if dy == nil {
			return v
		}
		// dy in the layout of the forward output before the crop.
		f := kd[3]
		dyFrames := Reshape(g.toFrame(dy), f, g.b, g.frameSize())
		dyFrames = Reshape(PadZeros(dyFrames, 1, 1, 1), f, -1)
		dkm := Dot(dyFrames, p).General([]int{1}, nil, []int{1}, nil) // [cOut, cIn*kh*kw]
		return TransposeAllAxes(Reshape(dkm, kd[3], kd[2], kh, kw), 2, 3, 1, 0)
	})
	var y *Node
	p, y = g.frameConv(g.toFrame(xIn), kernelRows(kIn), kh, kw)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
}
