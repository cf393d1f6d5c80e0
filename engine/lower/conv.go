package lower

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
)

// How a convolution becomes a matmul here ("shifted frames").
//
// The input is brought to [batch, channels, h, w] (a no-op for NCHW, the
// layout of ONNX models; see form for the channels-major variant), zero-padded (and input-dilated) explicitly, and
// each image channel is flattened to one row, its "frame" of h*w pixels.
// A kernel tap (ty, tx) then reads the frame shifted by ty*w + tx, and the
// patch matrix of the convolution is the k*k shifted copies of every frame
// stacked as rows: row (c, ty, tx) of image n. All of them come from ONE
// Concatenate of whole frames and zero gaps along the flat axis, reshaped
// into rows of a length R chosen so that copy t starts t*R - shift_t into
// the stream; the head of each copy that the shift skips lands, unused, at
// the end of the previous row. Output pixels are computed at every frame
// position, and the w - outW columns that wrap around the frame's edge are
// cropped with one Slice of the (small) output. This replaces the k*k
// element-by-element Slices of textbook im2col with memmove, and lets the
// matmul take its fast operand layout: kernel [out, c*k*k] times patches
// [c*k*k, R] per image, giving [batch, out, pixels] with no transpose.
//
// Strides are handled by splitting the input into its stride phases
// (space-to-depth): with stride s, tap t reads phase (t*d mod s) of the
// input shifted by floor(t*d / s), so every strided convolution becomes the
// stride-1 case over at most s*s phase frames (one strided Slice each).
//
// The kernel gradient that autodiff emits is a convolution with a huge
// "kernel" (the output gradient, one tap per output pixel) and a handful of
// outputs (one per kernel tap). There the roles swap (columns): one shifted
// copy of the input per output position, and the contraction runs over
// channels and pixels at once, so the patch matrix is again k*k copies of
// the input, never one copy per output pixel.

// ConvGeneral implements compute.Function: every 1-D and 2-D convolution in
// float32 or float64 is lowered as described above; anything else (3-D,
// batch groups, other dtypes) runs on the inner backend.
func (f *function) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (compute.Value, error) {
	native := func() (compute.Value, error) {
		return f.Function.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount)
	}
	xs, err := f.Function.Shape(input)
	if err != nil {
		return nil, err
	}
	ks, err := f.Function.Shape(kernel)
	if err != nil {
		return nil, err
	}
	// Validates everything and gives the output shape.
	outShape, err := shapeinference.ConvGeneral(xs, ks, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
	if err != nil {
		return native() // the inner backend words the error
	}
	spatial := xs.Rank() - 2
	if spatial < 1 || spatial > 2 || batchGroupCount > 1 || (xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64) ||
		xs.DType != ks.DType {
		return native()
	}
	p := newConvPlan(xs.Dimensions, ks.Dimensions, outShape.Dimensions, axes, strides, paddings,
		inputDilations, kernelDilations, channelGroupCount)
	return lower(f.Function, xs.DType, func(e *emitter) compute.Value { return p.emit(e, input, kernel) })
}

// axisPlan is one spatial axis of a convolution in canonical form: an input
// of in pixels (after dilation and padding) read by a kernel of k taps d
// apart, with stride s, giving out outputs.
type axisPlan struct {
	in, k, s, d, out int
	pad              [2]int // may be negative (a crop)
	inDilation       int
}

// convPlan is a convolution brought to canonical form: x [n, c, h, w],
// kernel [o, c/groups, kh, kw], output [n, o, oh, ow]. 1-D convolutions get
// a unit height.
type convPlan struct {
	n, c, o, groups int
	y, x            axisPlan
	// Permutations to the canonical forms, and the caller's output axes of
	// batch, channels and spatial.
	inPerm, kernelPerm, outAxes []int
	oneD                        bool
	kernelDims                  []int // canonical, before the 1-D reshape
}

func newConvPlan(xd, kd, od []int, axes compute.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int, groups int) *convPlan {
	spatial := len(xd) - 2
	p := &convPlan{groups: max(groups, 1), oneD: spatial == 1}
	p.inPerm = append([]int{axes.InputBatch, axes.InputChannels}, axes.InputSpatial...)
	p.kernelPerm = append([]int{axes.KernelOutputChannels, axes.KernelInputChannels}, axes.KernelSpatial...)
	p.outAxes = append([]int{axes.OutputBatch, axes.OutputChannels}, axes.OutputSpatial...)
	inDims := permute(xd, p.inPerm)
	p.kernelDims = permute(kd, p.kernelPerm)
	p.n, p.c, p.o = inDims[0], inDims[1], p.kernelDims[0]
	var plans []axisPlan
	for i := range spatial {
		a := axisPlan{
			k: p.kernelDims[2+i], s: at(strides, i, 1), d: at(kernelDilations, i, 1),
			inDilation: at(inputDilations, i, 1), out: od[axes.OutputSpatial[i]],
		}
		if len(paddings) > i {
			a.pad = paddings[i]
		}
		a.in = (inDims[2+i]-1)*a.inDilation + 1 + a.pad[0] + a.pad[1]
		plans = append(plans, a)
	}
	if p.oneD {
		p.y = axisPlan{in: 1, k: 1, s: 1, d: 1, out: 1, inDilation: 1}
		p.x = plans[0]
	} else {
		p.y, p.x = plans[0], plans[1]
	}
	return p
}

func permute(d, perm []int) []int {
	out := make([]int, len(perm))
	for i, p := range perm {
		out[i] = d[p]
	}
	return out
}

// form is how a convolution is lowered.
type form int

const (
	batchMajor   form = iota // taps, x as [n, c, h, w]
	channelMajor             // taps, x as [c, n, h, w]
	columnsForm              // columns, x as [n, c, h, w]
)

// form picks the lowering. Columns where there are more taps than outputs
// (the kernel gradient). Otherwise batch-major needs no transposes for
// NCHW, but its matmul is batched over images, so the kernel is repeated
// and packed once per image; where that costs more than moving the data,
// as in the late, small-image layers of a backbone with 2k x 4.6k kernels,
// the convolution runs channel-major: the images' frames lie one after
// another on one flat axis and the convolution is one unbatched matmul.
func (p *convPlan) form() form {
	taps := p.y.k * p.x.k
	if taps > p.y.out*p.x.out && p.groups == 1 {
		return columnsForm
	}
	kernelSize := p.o * p.c / p.groups * taps
	dataSize := p.n * (p.c*p.y.in*p.x.in + p.o*p.y.out*p.x.out)
	if p.groups == 1 && p.n > 1 && p.n*kernelSize > dataSize {
		return channelMajor
	}
	return batchMajor
}

func (p *convPlan) emit(e *emitter, input, kernel compute.Value) compute.Value {
	f := p.form()
	// The canonical order of x and of the result: batch first, or channels
	// first for channel-major (then an input already in that order, like
	// a channels-major (CBHW) tensor, needs no transpose at all).
	inPerm, outOrder := p.inPerm, []int{p.outAxes[0], p.outAxes[1]}
	if f == channelMajor {
		inPerm = append([]int{inPerm[1], inPerm[0]}, inPerm[2:]...)
		outOrder = []int{outOrder[1], outOrder[0]}
	}
	x := e.transpose(input, inPerm...)
	k := e.transpose(kernel, p.kernelPerm...)
	if p.oneD {
		d := e.dims(x)
		x = e.reshape(x, d[0], d[1], 1, d[2])
		k = e.reshape(k, p.o, p.c/p.groups, 1, p.kernelDims[2])
	}
	x = p.padInput(e, x)
	var y compute.Value // in the canonical order
	switch f {
	case columnsForm:
		y = p.columns(e, x, k)
	default:
		y = p.taps(e, x, k, f == channelMajor)
	}
	if p.oneD {
		d := e.dims(y)
		y = e.reshape(y, d[0], d[1], p.x.out)
	}
	return e.transpose(y, inverse(append(outOrder, p.outAxes[2:]...))...)
}

// padInput applies input dilation and padding: Pad for the positive parts
// (interior padding is the dilation), then a Slice for negative ones.
func (p *convPlan) padInput(e *emitter, x compute.Value) compute.Value {
	cfg := []compute.PadAxis{{}, {}}
	crop := false
	for _, a := range []axisPlan{p.y, p.x} {
		cfg = append(cfg, compute.PadAxis{Start: max(a.pad[0], 0), End: max(a.pad[1], 0), Interior: a.inDilation - 1})
		crop = crop || a.pad[0] < 0 || a.pad[1] < 0
	}
	x = e.pad(x, cfg...)
	if crop {
		d := e.dims(x)
		starts := []int{0, 0, max(-p.y.pad[0], 0), max(-p.x.pad[0], 0)}
		limits := []int{d[0], d[1], d[2] - max(-p.y.pad[1], 0), d[3] - max(-p.x.pad[1], 0)}
		x = e.slice(x, starts, limits, nil)
	}
	return x
}

// phaseTap is where one step along an axis reads: stride phase and shift
// within that phase.
type phaseTap struct{ phase, shift int }

// stepTaps maps positions i*step (i < count) on an axis that is split into
// phases of period s to (phase, shift): i*step = shift*s + phase.
func stepTaps(count, step, s int) []phaseTap {
	t := make([]phaseTap, count)
	for i := range t {
		t[i] = phaseTap{phase: i * step % s, shift: i * step / s}
	}
	return t
}

// phaseFrames cuts x [n, c, H, W] into the stride phases that the taps use,
// each [n, c, fh, fw] (zero-extended where x ends early), keyed by
// phase y*s + phase x.
func phaseFrames(e *emitter, x compute.Value, sy, sx, fh, fw int, ty, tx []phaseTap) map[int]compute.Value {
	d := e.dims(x)
	// Zero-extend so that every phase has fh x fw pixels.
	needH, needW := fh*sy, fw*sx
	if needH > d[2] || needW > d[3] {
		x = e.pad(x, compute.PadAxis{}, compute.PadAxis{}, compute.PadAxis{End: max(needH-d[2], 0)},
			compute.PadAxis{End: max(needW-d[3], 0)})
		d = e.dims(x)
	}
	frames := map[int]compute.Value{}
	for _, py := range ty {
		for _, px := range tx {
			key := py.phase*sx + px.phase
			if _, ok := frames[key]; ok {
				continue
			}
			frames[key] = e.slice(x,
				[]int{0, 0, py.phase, px.phase},
				[]int{d[0], d[1], py.phase + (fh-1)*sy + 1, px.phase + (fw-1)*sx + 1},
				[]int{1, 1, sy, sx})
		}
	}
	return frames
}

// shiftedRows builds rows of length r from frames [outer, length] (rank 2
// or more; the flat axis is the last): row i is frames[i] read from offset
// shifts[i] on. It is one Concatenate of the frames and zero gaps along the
// last axis, reshaped to [outer..., len(frames), r]. r must be at least the
// frame length plus the largest increase of shift from one row to the next,
// and shifts[0] must be 0 (shiftedRowLength gives r).
func shiftedRows(e *emitter, frames []compute.Value, shifts []int, r int) compute.Value {
	d := e.dims(frames[0])
	outer, length := d[:len(d)-1], d[len(d)-1]
	gap := func(n int) compute.Value { return e.zeros(append(append([]int(nil), outer...), n)...) }
	var parts []compute.Value
	end := 0
	for i, f := range frames {
		start := i*r - shifts[i]
		if start > end {
			parts = append(parts, gap(start-end))
		}
		parts = append(parts, f)
		end = start + length
	}
	if total := len(frames) * r; total > end {
		parts = append(parts, gap(total-end))
	}
	stream := e.concat(len(d)-1, parts...)
	return e.reshape(stream, append(append([]int(nil), outer...), len(frames), r)...)
}

// shiftedRowLength is the smallest row length for shiftedRows that is at
// least min and a multiple of unit.
func shiftedRowLength(length int, shifts []int, least, unit int) int {
	r := length
	for i := 1; i < len(shifts); i++ {
		r = max(r, length+shifts[i]-shifts[i-1])
	}
	r = max(r, least)
	return (r + unit - 1) / unit * unit
}

// taps is the forward form: one shifted copy of every frame per kernel tap.
// x is [n, c, h, w], or [c, n, h, w] channel-major (see form); the result
// is [n, o, oh, ow], or [o, n, oh, ow].
func (p *convPlan) taps(e *emitter, x, k compute.Value, channelMajor bool) compute.Value {
	ty := stepTaps(p.y.k, p.y.d, p.y.s)
	tx := stepTaps(p.x.k, p.x.d, p.x.s)
	// A phase frame has room for every output plus the largest shift.
	fh, fw := p.y.out+ty[len(ty)-1].shift, p.x.out+tx[len(tx)-1].shift
	n, c, g := p.n, p.c, p.groups
	cg, og := c/g, p.o/g
	taps := len(ty) * len(tx)
	length := fh * fw
	frames := phaseFrames(e, x, p.y.s, p.x.s, fh, fw, ty, tx)
	var rows []compute.Value
	var shifts []int
	for _, a := range ty {
		for _, b := range tx {
			f := frames[a.phase*p.x.s+b.phase]
			if channelMajor {
				f = e.reshape(f, c, n*length)
			} else {
				f = e.reshape(f, n, c, length)
			}
			rows = append(rows, f)
			shifts = append(shifts, a.shift*fw+b.shift)
		}
	}
	if channelMajor {
		// Rows hold whole frames so that the crop is a 4-D Slice.
		r := shiftedRowLength(n*length, shifts, n*length, length)
		patches := e.reshape(shiftedRows(e, rows, shifts, r), c*taps, r)
		y := e.dot(e.reshape(k, p.o, c*taps), []int{1}, nil, patches, []int{0}, nil) // [o, r]
		y = e.reshape(y, p.o, r/length, fh, fw)
		return e.slice(y, []int{0, 0, 0, 0}, []int{p.o, n, p.y.out, p.x.out}, nil)
	}
	var patches compute.Value // [n*g, cg*taps, r]
	var r int
	if taps == 1 && shifts[0] == 0 {
		r = length
		patches = e.reshape(rows[0], n*g, cg, r)
	} else {
		// Rows hold whole frame lines so that the crop is a 4-D Slice.
		r = shiftedRowLength(length, shifts, p.y.out*fw, fw)
		patches = e.reshape(shiftedRows(e, rows, shifts, r), n*g, cg*taps, r)
	}
	km := e.reshape(k, g, og, cg*taps) // rows (c, ty, tx), as the patches
	if n > 1 {
		km = e.repeat(km, n)
	}
	km = e.reshape(km, n*g, og, cg*taps)
	y := e.dot(km, []int{2}, []int{0}, patches, []int{1}, []int{0}) // [n*g, og, r]
	y = e.reshape(y, n, p.o, r/fw, fw)
	return e.slice(y, []int{0, 0, 0, 0}, []int{n, p.o, p.y.out, p.x.out}, nil)
}

// columns is the transposed form, for convolutions with more taps than
// outputs (the kernel gradient): one shifted copy of the input per output
// position, contracted with the kernel laid into a frame of the same size
// over channels and pixels at once. Reads that run past a channel's frame
// into the next one meet zeros of the framed kernel.
func (p *convPlan) columns(e *emitter, x, k compute.Value) compute.Value {
	// Output position q reads q*s + t*d: taps are the running index (phase
	// period d), outputs the shifts.
	qy := stepTaps(p.y.out, p.y.s, p.y.d)
	qx := stepTaps(p.x.out, p.x.s, p.x.d)
	fh, fw := p.y.k+qy[len(qy)-1].shift, p.x.k+qx[len(qx)-1].shift
	frames := phaseFrames(e, x, p.y.d, p.x.d, fh, fw, qy, qx)
	n, c := p.n, p.c
	length := c * fh * fw
	var rows []compute.Value
	var shifts []int
	for _, a := range qy {
		for _, b := range qx {
			rows = append(rows, e.reshape(frames[a.phase*p.x.d+b.phase], n, length))
			shifts = append(shifts, a.shift*fw+b.shift)
		}
	}
	r := shiftedRowLength(length, shifts, length, 1)
	patches := shiftedRows(e, rows, shifts, r) // [n, outputs, r]
	// The kernel [o, c, kh, kw] in frames [o, c, fh, fw], then padded to r.
	kf := e.pad(k, compute.PadAxis{}, compute.PadAxis{}, compute.PadAxis{End: fh - p.y.k}, compute.PadAxis{End: fw - p.x.k})
	kf = e.pad(e.reshape(kf, p.o, length), compute.PadAxis{}, compute.PadAxis{End: r - length})
	y := e.dot(patches, []int{2}, nil, kf, []int{1}, nil) // [n, outputs, o]
	y = e.reshape(y, n, p.y.out, p.x.out, p.o)
	return e.transpose(y, 0, 3, 1, 2)
}
