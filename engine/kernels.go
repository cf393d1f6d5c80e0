//go:build !nodnnl

package engine

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/dnnl"
)

// placeKernels decides which live nodes run on oneDNN. It is the one place
// that matches ops to primitives, as XLA's convolution rewriter does before
// it calls cuDNN: a convolution becomes a forward, backward-data or
// backward-weights primitive by its shape (autodiff's two gradient
// convolutions are ordinary ConvGeneral ops), a ReduceWindow becomes a
// pooling, SelectAndScatterMax (autodiff's max-pool gradient, which the
// Go backend lacks) a pooling backward reading its forward's workspace,
// the three batch-normalization ops oneDNN's batch normalization, a
// DotGeneral large enough to pay for its step oneDNN's matmul, ReLU and
// its gradient oneDNN's ReLU forward and backward, and a per-channel add
// that no convolution took oneDNN's binary add.
func (b *backend) placeKernels(f *function, live []bool) map[*node]*placed {
	kernels := map[*node]*placed{}
	defer func() {
		b.fuse(f, kernels, live)
		b.foldBiasGradients(f, kernels, live)
		b.elementwiseKernels(f, kernels)
	}()
	keep := func(n *node, why string) {
		b.stats.note(func(s *Stats) map[string]int { return s.Kept }, n.op+" kept on Go: "+why)
	}
	// Max pools whose gradient is taken keep their workspace for it.
	grads := map[poolKey]*node{}
	for _, n := range f.nodes {
		if live[n.index] && n.op == "SelectAndScatterMax" {
			grads[poolKeyOf(n.inputs[0], n.args[0].([]int), n.args[1].([]int), n.args[2].([][2]int))] = n
		}
	}
	workspaces := map[*node]*value{} // gradient node -> workspace of its forward
	readers := map[*value]int{}
	for _, n := range f.nodes {
		if live[n.index] {
			for _, in := range n.inputs {
				readers[in]++
			}
		}
	}
	for _, v := range f.outputs {
		readers[v]++
	}
	for _, n := range f.nodes {
		if !live[n.index] {
			continue
		}
		switch n.op {
		case "ConvGeneral":
			pk, why := b.convKernel(n)
			if pk == nil {
				keep(n, why)
				continue
			}
			kernels[n] = pk
		case "ReduceWindow":
			op := n.args[0].(compute.ReduceOpType)
			var grad *node
			if op == compute.ReduceOpMax {
				grad = grads[poolKeyOf(n.inputs[0], n.args[1].([]int), n.args[2].([]int), n.args[5].([][2]int))]
			}
			pk, why := b.poolKernel(n, grad != nil)
			if pk == nil {
				keep(n, why)
				continue
			}
			kernels[n] = pk
			if grad != nil {
				workspaces[grad] = pk.extraOut[0]
			}
		case "SelectAndScatterMax":
			pk, why := b.poolGradKernel(n, workspaces[n])
			if pk == nil {
				keep(n, why)
				continue
			}
			kernels[n] = pk
		case "BatchNormForTraining", "BatchNormForInference", "BatchNormGradient":
			pk, why := b.bnKernel(n)
			if pk == nil {
				keep(n, why)
				continue
			}
			kernels[n] = pk
		case "Where":
			if pk, why := b.reluGradKernel(n, readers); pk != nil {
				kernels[n] = pk
			} else if why != "" {
				keep(n, why)
			}
		case "DotGeneral":
			pk, why := b.dotKernel(n)
			if pk == nil {
				if why != "" {
					keep(n, why)
				}
				continue
			}
			kernels[n] = pk
		}
	}
	return kernels
}

type poolKey struct {
	x               string
	window, strides string
	paddings        string
}

func poolKeyOf(x *value, window, strides []int, paddings [][2]int) poolKey {
	return poolKey{fmt.Sprintf("%p", x), fmt.Sprint(window), fmt.Sprint(strides), fmt.Sprint(paddings)}
}

// rowMajor returns the element strides of a dense row-major tensor.
func rowMajor(dims []int) []int64 {
	s := make([]int64, len(dims))
	acc := int64(1)
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= int64(dims[i])
	}
	return s
}

// tensor4 describes, as oneDNN's (N, C, H, W), the row-major tensor dims
// read along the given axes; spatial holds one axis (then H is a unit
// axis) or two.
func tensor4(dims []int, n, c int, spatial []int) dnnl.Tensor {
	return view4(dims, rowMajor(dims), n, c, spatial)
}

// view4 is tensor4 of a view: dims read with the element strides st.
func view4(dims []int, st []int64, n, c int, spatial []int) dnnl.Tensor {
	t := dnnl.Tensor{Rank: 4}
	t.Dims[0], t.Strides[0] = int64(dims[n]), st[n]
	t.Dims[1], t.Strides[1] = int64(dims[c]), st[c]
	if len(spatial) == 1 {
		w := spatial[0]
		t.Dims[2], t.Strides[2] = 1, st[w]*int64(dims[w])
		t.Dims[3], t.Strides[3] = int64(dims[w]), st[w]
	} else {
		for i, a := range spatial {
			t.Dims[2+i], t.Strides[2+i] = int64(dims[a]), st[a]
		}
	}
	return t
}

// spatial2 widens a per-spatial-axis list to oneDNN's (H, W), a 1-D op
// getting a unit H with value unit.
func spatial2(v []int, i int, unit int64) [2]int64 {
	if len(v) == 0 {
		return [2]int64{unit, unit}
	}
	if len(v) == 1 {
		return [2]int64{unit, int64(v[0])}
	}
	_ = i
	return [2]int64{int64(v[0]), int64(v[1])}
}

func pads2(p [][2]int, side int) [2]int64 {
	switch len(p) {
	case 0:
		return [2]int64{}
	case 1:
		return [2]int64{0, int64(p[0][side])}
	}
	return [2]int64{int64(p[0][side]), int64(p[1][side])}
}

func ones(v []int) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return true
}

// plainLayout is how a convolution's or pool's data reaches its
// primitive: on the caller's layout (true), or in oneDNN's blocked one,
// reordered in and out at the edges of a region (plan.regions). Blocked,
// always: one 3x3 layer of the captcha CNN runs as fast either way
// on channels-last data (BenchmarkConv, engine/dnnl), but whole training
// steps of the book's channels-last nets ran 5-13% faster with every
// convolution blocked than with forward and backward-data on the plain
// layout (captcha-cnn, fcn; crnn the same; AVX2, dl4img bench).
// DL4IMG_ENGINE_LAYOUT=plain overrides it, to measure both.
func plainLayout() bool {
	return os.Getenv("DL4IMG_ENGINE_LAYOUT") == "plain"
}

// convKernel maps a ConvGeneral node to a oneDNN convolution.
func (b *backend) convKernel(n *node) (*placed, string) {
	axes := n.args[0].(compute.ConvolveAxesConfig)
	strides, paddings := n.args[1].([]int), n.args[2].([][2]int)
	inDil, kDil := n.args[3].([]int), n.args[4].([]int)
	groups, batchGroups := n.args[5].(int), n.args[6].(int)
	x, k, y := n.inputs[0].shape, n.inputs[1].shape, n.outs[0].shape
	if x.DType != dtypes.Float32 || k.DType != dtypes.Float32 {
		return nil, "not float32"
	}
	ns := x.Rank() - 2
	if ns < 1 || ns > 2 {
		return nil, fmt.Sprintf("%d spatial axes", ns)
	}
	if batchGroups > 1 {
		return nil, "batch groups"
	}
	groups = max(groups, 1)
	xd, kd, yd := x.Dimensions, k.Dimensions, y.Dimensions
	// Negative padding crops the input: the kernel reads a view of it,
	// offset and shortened, with no padding on that side.
	xd = slices.Clone(xd)
	paddings = slices.Clone(paddings)
	var offset int64
	xStrides := rowMajor(x.Dimensions)
	for i := range min(ns, len(paddings)) {
		a := axes.InputSpatial[i]
		if paddings[i][0] < 0 || paddings[i][1] < 0 {
			if !ones(inDil) {
				return nil, "negative padding of a dilated input"
			}
			if p := paddings[i][0]; p < 0 {
				offset += int64(-p) * xStrides[a]
				xd[a] += p
				paddings[i][0] = 0
			}
			if p := paddings[i][1]; p < 0 {
				xd[a] += p
				paddings[i][1] = 0
			}
		}
	}
	kSpatial, ySpatial := 1, 1
	for i := range ns {
		kSpatial *= kd[axes.KernelSpatial[i]]
		ySpatial *= yd[axes.OutputSpatial[i]]
	}
	var s dnnl.ConvSpec
	s.Strides = spatial2(strides, 0, 1)
	s.PadL, s.PadR = pads2(paddings, 0), pads2(paddings, 1)
	kdil := spatial2(kDil, 0, 1)
	s.Dilates = [2]int64{kdil[0] - 1, kdil[1] - 1}
	pk := &placed{}
	kern := &convKernel{lib: b.lib, shape: y, offset: offset}
	switch {
	case !ones(inDil):
		// An input-dilated convolution (autodiff's input gradient of a
		// strided convolution, or a transposed convolution) is the
		// backward-data pass of the strided convolution whose kernel is
		// this one flipped, input and output channels swapped: see
		// backwardDataSpec.
		if !ones(strides) {
			return nil, "input dilation with strides"
		}
		var why string
		s, kern.tails, why = backwardDataSpec(xd, kd, yd, axes, paddings, inDil, kDil, groups)
		if why != "" {
			return nil, why
		}
		kern.mode = dnnl.ConvBackwardData
		kern.flip = newFlip(kd, axes)
		// autodiff passes Reverse(kernel): flip back by reading the kernel.
		if r := n.inputs[1].node; r.op == "Reverse" && sameAxes(r.args[0].([]int), axes.KernelSpatial) {
			pk.in = []*value{n.inputs[0], r.inputs[0]}
			kern.flip = nil
		}
	case kSpatial > ySpatial && groups == 1:
		// A kernel larger than the output: autodiff's kernel gradient,
		// the backward-weights pass of the convolution it came from.
		var why string
		s, why = backwardWeightsSpec(xd, xStrides, kd, yd, axes, strides, paddings, kDil)
		if why != "" {
			return nil, why
		}
		kern.mode = dnnl.ConvBackwardWeights
	default:
		s.Prop = dnnl.ConvForward
		s.Src = view4(xd, xStrides, axes.InputBatch, axes.InputChannels, axes.InputSpatial)
		s.Dst = tensor4(yd, axes.OutputBatch, axes.OutputChannels, axes.OutputSpatial)
		s.Wei = weights(kd, axes.KernelOutputChannels, axes.KernelInputChannels, axes.KernelSpatial, groups)
		kern.mode = dnnl.ConvForward
	}
	s.Plain = plainLayout()
	op, err := b.lib.Conv(s)
	if err != nil {
		return nil, fmt.Sprintf("oneDNN: %v (%+v)", err, s)
	}
	if why := reference(op); why != "" {
		return nil, why
	}
	kern.op, kern.spec, kern.channels = op, s, yd[axes.OutputChannels]
	pk.k = kern
	return pk, ""
}

// reference says why an op oneDNN would only run with its reference
// implementation (a plain loop, for layouts its kernels do not take) stays
// on the Go backend, whose lowering is faster.
func reference(op *dnnl.Op) string {
	if strings.HasPrefix(op.Impl(), "ref") {
		return "oneDNN has only its reference implementation for this layout"
	}
	return ""
}

func sameAxes(a, b []int) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// weights describes a kernel tensor as oneDNN's [G,] O, I, KH, KW.
func weights(kd []int, o, i int, spatial []int, groups int) dnnl.Tensor {
	t := tensor4(kd, o, i, spatial)
	if groups <= 1 {
		return t
	}
	g := dnnl.Tensor{Rank: 5}
	g.Dims[0], g.Strides[0] = int64(groups), t.Strides[0]*t.Dims[0]/int64(groups)
	g.Dims[1], g.Strides[1] = t.Dims[0]/int64(groups), t.Strides[0]
	for j := 1; j < 4; j++ {
		g.Dims[1+j], g.Strides[1+j] = t.Dims[j], t.Strides[j]
	}
	return g
}

// backwardDataSpec: y = conv(dilate(x, s), K) with kernel dilation d and
// left padding pl equals the input gradient of a forward convolution F of
// stride s, dilation d and left padding (k-1)*d - pl whose output is x,
// whose input is y and whose kernel is K flipped with its channels swapped
// (F's output channels are x's, its input channels y's). Where F would
// need negative right padding (oneDNN takes none), the last positions of y
// along that axis read nothing but padding: F computes y without them and
// they are zeroed (tails).
func backwardDataSpec(xd, kd, yd []int, axes compute.ConvolveAxesConfig, paddings [][2]int,
	inDil, kDil []int, groups int) (dnnl.ConvSpec, []tail, string) {
	var s dnnl.ConvSpec
	var tails []tail
	s.Prop = dnnl.ConvBackwardData
	view := slices.Clone(yd)
	ns := len(axes.InputSpatial)
	for i := range ns {
		j := i + 2 - ns // oneDNN's spatial index
		k := int64(kd[axes.KernelSpatial[i]])
		d := int64(at(kDil, i, 1))
		st := int64(at(inDil, i, 1))
		pl := int64(0)
		if len(paddings) > i {
			pl = int64(paddings[i][0])
		}
		s.Strides[j], s.Dilates[j] = st, d-1
		s.PadL[j] = (k-1)*d - pl
		if s.PadL[j] < 0 {
			return s, nil, "input-dilated convolution with padding wider than its kernel"
		}
		a := axes.OutputSpatial[i]
		in, out := int64(yd[a]), int64(xd[axes.InputSpatial[i]])
		s.PadR[j] = (out-1)*st + (k-1)*d + 1 - in - s.PadL[j]
		if s.PadR[j] < 0 {
			view[a] += int(s.PadR[j])
			tails = append(tails, tail{axis: a, from: view[a]})
			s.PadR[j] = 0
		}
	}
	if ns == 1 {
		s.Strides[0] = 1
	}
	s.Src = view4(view, rowMajor(yd), axes.OutputBatch, axes.OutputChannels, axes.OutputSpatial) // F's input (diff_src)
	s.Dst = tensor4(xd, axes.InputBatch, axes.InputChannels, axes.InputSpatial)                  // F's output (diff_dst)
	// F's kernel: O = x's channels, I = y's channels (per group).
	w := weights(kd, axes.KernelInputChannels, axes.KernelOutputChannels, axes.KernelSpatial, 1)
	if groups > 1 {
		// K is [co (groups × co/G), ci/G, ...]: F's kernel per group g is
		// [ci/G, co/G] = K[g*co/G + co', ci'] transposed.
		w = dnnl.Tensor{Rank: 5, Dims: [5]int64{int64(groups), w.Dims[0], w.Dims[1] / int64(groups), w.Dims[2], w.Dims[3]},
			Strides: [5]int64{w.Strides[1] * w.Dims[1] / int64(groups), w.Strides[0], w.Strides[1], w.Strides[2], w.Strides[3]}}
	}
	s.Wei = w
	return s, tails, ""
}

// tail is the end of an output axis, from index from on, that a kernel
// leaves to be zeroed.
type tail struct{ axis, from int }

// zeroTails zeroes the tails of y, a row-major tensor of dims.
func zeroTails(y []float32, dims []int, tails []tail) {
	for _, t := range tails {
		outer, inner := 1, 1
		for _, d := range dims[:t.axis] {
			outer *= d
		}
		for _, d := range dims[t.axis+1:] {
			inner *= d
		}
		n := dims[t.axis]
		for o := range outer {
			clear(y[(o*n+t.from)*inner : (o+1)*n*inner])
		}
	}
}

// backwardWeightsSpec: y = conv(x, K) whose kernel is larger than its
// output is the kernel gradient of a forward convolution F of stride d
// (this one's kernel dilation), dilation s (this one's stride) and the same
// left padding, with F's batch = x's channels, F's input channels = x's
// batch, F's output gradient = K (batch = K's input channels, channels =
// K's output channels) and F's kernel gradient = y.
func backwardWeightsSpec(xd []int, xStrides []int64, kd, yd []int, axes compute.ConvolveAxesConfig, strides []int,
	paddings [][2]int, kDil []int) (dnnl.ConvSpec, string) {
	var s dnnl.ConvSpec
	s.Prop = dnnl.ConvBackwardWeights
	xd = slices.Clone(xd)
	s.Dst = tensor4(kd, axes.KernelInputChannels, axes.KernelOutputChannels, axes.KernelSpatial)
	s.Wei = tensor4(yd, axes.OutputChannels, axes.OutputBatch, axes.OutputSpatial)
	ns := len(axes.InputSpatial)
	for i := range ns {
		j := i + 2 - ns
		fs := int64(at(kDil, i, 1))    // F's stride
		fd := int64(at(strides, i, 1)) // F's dilation
		pl := int64(0)
		if len(paddings) > i {
			pl = int64(paddings[i][0])
		}
		a := axes.InputSpatial[i]
		in := int64(xd[a])
		fout := int64(kd[axes.KernelSpatial[i]]) // F's output size
		fk := int64(yd[axes.OutputSpatial[i]])   // F's kernel size
		s.Strides[j], s.Dilates[j], s.PadL[j] = fs, fd-1, pl
		s.PadR[j] = (fout-1)*fs + (fk-1)*fd + 1 - in - pl
		if s.PadR[j] < 0 {
			// The input's tail is never read: F sees it cropped.
			xd[a] += int(s.PadR[j])
			s.PadR[j] = 0
		}
	}
	s.Src = view4(xd, xStrides, axes.InputChannels, axes.InputBatch, axes.InputSpatial)
	if ns == 1 {
		s.Strides[0] = 1
	}
	return s, ""
}

func at(v []int, i, def int) int {
	if i < len(v) {
		return v[i]
	}
	return def
}

// convKernel runs one convolution primitive.
type convKernel struct {
	lib      *dnnl.Library
	op       *dnnl.Op
	spec     dnnl.ConvSpec
	channels int // output channels
	mode     dnnl.ConvProp
	shape    shapes.Shape
	offset   int64  // where the input's view starts (a crop by negative padding)
	tails    []tail // ends of the output left to zero
	flip     *flip  // backward data on a kernel not already flipped
}

func (k *convKernel) name() string {
	n := [...]string{"conv forward", "conv backward data", "conv backward weights"}[k.mode]
	for _, p := range []struct {
		on   bool
		name string
	}{{k.spec.Bias, "+bias"}, {k.spec.Sum, "+residual"}, {k.spec.Relu && k.spec.Clip == 0, "+relu"},
		{k.spec.Clip > 0, "+clip"}} {
		if p.on {
			n += p.name
		}
	}
	return n + " (" + k.op.Impl() + ")"
}

func (k *convKernel) run(x *execution, ins, outs []*slot) error {
	// Argument order: forward (src, wei, [bias], dst), backward data
	// (diff_dst, wei, diff_src), backward weights (src, diff_dst,
	// diff_wei, [diff_bias]): in all three, this op's input, kernel, output.
	a, err := ins[0].arg()
	if err != nil {
		return err
	}
	if k.offset > 0 {
		a = a.([]float32)[k.offset:] // a crop is never planned raw (layout)
	}
	w, err := ins[1].arg()
	if err != nil {
		return err
	}
	if k.flip != nil {
		w = k.flip.apply(w.([]float32))
	}
	args := []any{a, w}
	if k.mode == dnnl.ConvForward && k.spec.Bias {
		bias, err := ins[2].data()
		if err != nil {
			return err
		}
		args = append(args, bias)
	}
	var y any
	if k.spec.Sum {
		// The residual is the destination's initial value: its buffer
		// itself where nothing else reads it, else a copy (in either
		// layout: the plan keeps both in the primitive's or neither).
		res := ins[len(ins)-1]
		if res.last && !slices.Contains(ins[:len(ins)-1], res) {
			*outs[0], *res = slot{buf: res.buf, owned: true, raw: res.raw, rawLen: outs[0].rawLen}, slot{}
			y, err = outs[0].arg()
		} else {
			var r any
			if r, err = res.arg(); err == nil {
				if y, err = x.output(outs[0], k.shape); err == nil {
					copyArg(y, r)
				}
			}
		}
	} else {
		y, err = x.output(outs[0], k.shape)
	}
	if err != nil {
		return err
	}
	args = append(args, y)
	if k.mode == dnnl.ConvBackwardWeights && k.spec.Bias {
		// The bias gradient, folded in (foldBiasGradients).
		db, err := x.output(outs[1], shapes.Make(dtypes.Float32, k.channels))
		if err != nil {
			return err
		}
		args = append(args, db)
	}
	if err := k.lib.Exec(k.op, args...); err != nil {
		return err
	}
	if len(k.tails) > 0 {
		zeroTails(y.([]float32), k.shape.Dimensions, k.tails) // tails are never planned raw (layout)
	}
	return nil
}

// layout maps the kernel's inputs and outputs to its primitive's
// arguments, where a value may stay in the primitive's layout: the data
// input (not a crop), the output gradient of a backward-weights, the
// output (not one with tails to zero), and a residual, which is the
// output's initial value.
func (k *convKernel) layout() (*dnnl.Op, []int, []int) {
	in := []int{-1, -1, -1, -1}
	if k.offset == 0 {
		in[0] = 0
	}
	if k.mode == dnnl.ConvBackwardWeights {
		in[1] = 1
	}
	out := []int{-1, -1}
	if len(k.tails) == 0 {
		out[0] = 2
		if k.mode == dnnl.ConvForward && k.spec.Bias {
			out[0] = 3
		}
	}
	if k.spec.Sum {
		in[2+btoi(k.spec.Bias)] = out[0]
	}
	return k.op, in, out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// copyArg copies a kernel argument into another of the same layout.
func copyArg(dst, src any) {
	switch d := dst.(type) {
	case dnnl.Raw:
		copy(d, src.(dnnl.Raw))
	case []float32:
		copy(d, src.([]float32))
	}
}

// flip reverses a kernel's spatial axes (a copy: kernels are small).
type flip struct {
	dims    []int
	spatial []bool
}

func newFlip(kd []int, axes compute.ConvolveAxesConfig) *flip {
	f := &flip{dims: slices.Clone(kd), spatial: make([]bool, len(kd))}
	for _, a := range axes.KernelSpatial {
		f.spatial[a] = true
	}
	return f
}

func (f *flip) apply(w []float32) []float32 {
	out := make([]float32, len(w))
	st := rowMajor(f.dims)
	idx := make([]int, len(f.dims))
	for i := range w {
		// i -> multi-index -> flipped offset
		r := i
		off := int64(0)
		for a := range f.dims {
			idx[a] = r / int(st[a])
			r %= int(st[a])
			j := idx[a]
			if f.spatial[a] {
				j = f.dims[a] - 1 - j
			}
			off += int64(j) * st[a]
		}
		out[off] = w[i]
	}
	return out
}
