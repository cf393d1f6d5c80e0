package onnxlegal

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Convolutions and pooling: the ops with a sliding window. The import
// takes explicit pads, strides and dilations only; it refuses auto_pad,
// ceil_mode, count_include_pad=1 and pooling dilations, and it reads a
// missing pooling stride as the kernel size where ONNX means 1.

func init() {
	rewrites["MaxPool"] = maxPool
	rewrites["AveragePool"] = averagePool
	rewrites["Conv"] = conv
	rewrites["ConvTranspose"] = convTranspose
	rewrites["GlobalMaxPool"] = globalMaxPool
}

// window is a node's window geometry, per spatial axis.
type window struct {
	kernel, strides, dilations, padBegin, padEnd []int64
	// extra is ceil_mode's additional end padding (pools only).
	extra []int64
}

// effective kernel extent (k-1)·d+1.
func (w *window) extent(i int) int64 { return (w.kernel[i]-1)*w.dilations[i] + 1 }

// geometry resolves kernel, strides, dilations, pads, auto_pad and
// ceil_mode (ONNX Conv-11, MaxPool-12, AveragePool-19 attributes). in are
// the spatial dims, nil if unknown: auto_pad SAME_* and ceil_mode need
// them.
func geometry(n *Node, kernel, in []int64) (window, error) {
	r := len(kernel)
	w := window{kernel: kernel, strides: ones(r), dilations: ones(r), padBegin: make([]int64, r), padEnd: make([]int64, r), extra: make([]int64, r)}
	if s := n.Ints("strides"); s != nil {
		w.strides = s
	}
	if d := n.Ints("dilations"); d != nil {
		w.dilations = d
	}
	if len(w.strides) != r || len(w.dilations) != r {
		return w, fmt.Errorf("strides %v or dilations %v do not match the %d-D kernel", w.strides, w.dilations, r)
	}
	switch ap := n.String("auto_pad", "NOTSET"); ap {
	case "NOTSET", "":
		if p := n.Ints("pads"); p != nil {
			if len(p) != 2*r {
				return w, fmt.Errorf("pads %v do not match the %d-D kernel", p, r)
			}
			w.padBegin, w.padEnd = slices.Clone(p[:r]), slices.Clone(p[r:])
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		if in == nil {
			return w, errSpatial{"attribute auto_pad=" + ap}
		}
		for i := range r {
			// Output ceil(in/stride); the odd padding goes at the end for
			// SAME_UPPER, at the start for SAME_LOWER.
			out := (in[i] + w.strides[i] - 1) / w.strides[i]
			total := max(0, (out-1)*w.strides[i]+w.extent(i)-in[i])
			small := total / 2
			if ap == "SAME_UPPER" {
				w.padBegin[i], w.padEnd[i] = small, total-small
			} else {
				w.padBegin[i], w.padEnd[i] = total-small, small
			}
		}
	default:
		return w, fmt.Errorf("attribute auto_pad=%s is not supported", ap)
	}
	if n.Int("ceil_mode", 0) != 0 {
		if in == nil {
			return w, errSpatial{"attribute ceil_mode=1"}
		}
		for i := range r {
			span := in[i] + w.padBegin[i] + w.padEnd[i] - w.extent(i)
			out := ceilDiv(span, w.strides[i]) + 1
			// PyTorch's rule (its MaxPool docs: "sliding windows that would
			// start in the right padded region are ignored"), which its
			// exports carry: a last window starting in the end padding is
			// dropped.
			if (out-1)*w.strides[i] >= in[i]+w.padBegin[i] {
				out--
			}
			w.extra[i] = max(0, (out-1)*w.strides[i]+w.extent(i)-(in[i]+w.padBegin[i]+w.padEnd[i]))
		}
	}
	return w, nil
}

// errSpatial is a geometry that needs the unknown spatial dims.
type errSpatial struct{ what string }

func (e errSpatial) Error() string {
	return e.what + " needs the input's spatial size, which is unknown here"
}

func ones(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

func ceilDiv(a, b int64) int64 {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -((-a) / b)
}

func allOnes(v []int64) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return true
}

// kernelOf is the node's kernel_shape, or for Conv/ConvTranspose the
// spatial dims of the weights.
func (l *legalizer) kernelOf(n *Node) []int64 {
	if k := n.Ints("kernel_shape"); k != nil {
		return k
	}
	if (n.Op == "Conv" || n.Op == "ConvTranspose") && len(n.Inputs) > 1 {
		if w := l.shapes[n.Inputs[1]]; len(w) > 2 {
			return w[2:]
		}
	}
	return nil
}

// windowShape infers the output shape of Conv, ConvTranspose and pools.
func (l *legalizer) windowShape(n *Node) []int64 {
	x := l.inShape(n, 0)
	k := l.kernelOf(n)
	if len(x) < 3 || k == nil || len(x) != len(k)+2 {
		return nil
	}
	var in []int64
	if known(x[2:]) {
		in = x[2:]
	}
	out := slices.Clone(x)
	switch n.Op {
	case "Conv":
		if w := l.inShape(n, 1); w != nil {
			out[1] = w[0]
		} else {
			out[1] = -1
		}
	case "ConvTranspose":
		out[1] = -1
		if w := l.inShape(n, 1); w != nil {
			out[1] = w[1] * n.Int("group", 1)
		}
		t, err := transposeGeometry(n, k, in)
		if err != nil {
			return nil
		}
		for i := range k {
			out[i+2] = t.out[i]
		}
		return out
	}
	w, err := geometry(n, k, in)
	if err != nil {
		return nil
	}
	for i := range k {
		if x[i+2] < 0 {
			out[i+2] = -1
			continue
		}
		span := x[i+2] + w.padBegin[i] + w.padEnd[i] + w.extra[i] - w.extent(i)
		out[i+2] = span/w.strides[i] + 1
	}
	return out
}

// explicitAttrs are the attributes of a window op made explicit.
func (w window) explicitAttrs(withExtra bool) []*Attr {
	pads := append(slices.Clone(w.padBegin), w.padEnd...)
	if withExtra {
		for i, x := range w.extra {
			pads[len(w.kernel)+i] += x
		}
	}
	return []*Attr{intsAttr("kernel_shape", w.kernel...), intsAttr("strides", w.strides...), intsAttr("pads", pads...)}
}

// change is one reason for a rewrite, reported when it applies.
type change struct {
	applies bool
	what    string
}

// poolChanges lists what a pooling rewrite changes: the attributes every
// pool shares, then more.
func poolChanges(n *Node, more ...change) []string {
	var out []string
	for _, c := range append([]change{
		{n.Attr("strides") == nil, "strides missing → 1"},
		{n.String("auto_pad", "NOTSET") != "NOTSET", "auto_pad → explicit pads"},
		{n.Int("ceil_mode", 0) != 0, "ceil_mode=1 → explicit end pads"},
	}, more...) {
		if c.applies {
			out = append(out, c.what)
		}
	}
	return out
}

// spatialOrNil is the input's spatial dims when known.
func (e *emit) spatialOrNil() []int64 {
	x := e.l.shapes[e.n.Inputs[0]]
	if len(x) < 3 || !known(x[2:]) {
		return nil
	}
	return x[2:]
}

// geometryErr turns a geometry error into the node's one-line error.
func (e *emit) geometryErr(err error) error {
	if es, ok := err.(errSpatial); ok {
		x := e.l.shapes[e.n.Inputs[0]]
		return e.unsupported("%s (input %s)", es.Error(), dimsString(x))
	}
	return e.unsupported("%s", err.Error())
}

// maxPool implements MaxPool-12 (and -1, -8, -10, -11, whose attributes
// are subsets), ceil_mode by PyTorch's rule (see geometry). Max pooling
// pads with -inf, so ceil_mode's extra end padding is exact.
func maxPool(e *emit) (string, error) {
	n := e.n
	if e.usesOutput(1) {
		return "", e.unsupported("output Indices is not supported")
	}
	k := n.Ints("kernel_shape")
	if k == nil {
		return "", e.unsupported("attribute kernel_shape is missing")
	}
	w, err := geometry(n, k, e.spatialOrNil())
	if err != nil {
		return "", e.geometryErr(err)
	}
	what := poolChanges(n,
		change{n.Attr("storage_order") != nil, "storage_order dropped (no Indices output)"},
		change{n.Attr("dilations") != nil && allOnes(w.dilations), "dilations of 1 dropped"})
	if !allOnes(w.dilations) {
		if err := e.dilatedMaxPool(w); err != nil {
			return "", err
		}
		return "dilations → Max of strided Slices", nil
	}
	if what == nil {
		return "", nil
	}
	e.final("MaxPool", n.Inputs[:1], w.explicitAttrs(true)...)
	return strings.Join(what, ", "), nil
}

// dilatedMaxPool computes a dilated max pool as the maximum of one
// strided Slice per kernel tap over the input padded with -inf.
func (e *emit) dilatedMaxPool(w window) error {
	in, err := e.spatial("attribute dilations")
	if err != nil {
		return err
	}
	r := len(w.kernel)
	pads := make([]int64, 2*(r+2))
	for i := range r {
		pads[i+2], pads[r+2+i+2] = w.padBegin[i], w.padEnd[i]+w.extra[i]
	}
	x, err := e.pad(e.n.Inputs[0], pads, math.Inf(-1))
	if err != nil {
		return err
	}
	out := make([]int64, r)
	axes := make([]int64, r)
	for i := range r {
		out[i] = (in[i]+w.padBegin[i]+w.padEnd[i]+w.extra[i]-w.extent(i))/w.strides[i] + 1
		axes[i] = int64(i + 2)
	}
	taps := []string{}
	tap := make([]int64, r)
	for {
		starts, ends := make([]int64, r), make([]int64, r)
		for i := range r {
			starts[i] = tap[i] * w.dilations[i]
			ends[i] = starts[i] + (out[i]-1)*w.strides[i] + 1
		}
		taps = append(taps, e.slice(x, starts, ends, axes, w.strides))
		i := r - 1
		for ; i >= 0; i-- {
			if tap[i]++; tap[i] < w.kernel[i] {
				break
			}
			tap[i] = 0
		}
		if i < 0 {
			break
		}
	}
	acc := taps[0]
	for _, t := range taps[1:] {
		acc = e.op("Max", []string{acc, t})
	}
	e.finish(acc)
	return nil
}

// averagePool implements AveragePool-11 (and -1, -7, -10; -19 added
// dilations, refused here unless all 1). A pool with padding is the mean
// of the zero-padded input times K/count, count being how many elements
// of each window ONNX counts: those inside the input (count_include_pad=0)
// or inside the input and its explicit pads (count_include_pad=1), never
// ceil_mode's extra end padding (PyTorch's and onnxruntime's rule). The
// counts depend only on the position, so K/count is a constant. The
// import's own mean pool excludes padding too, but the Go backend cannot
// differentiate a padded pooling (an index panic), so the padding is
// always made explicit.
func averagePool(e *emit) (string, error) {
	n := e.n
	k := n.Ints("kernel_shape")
	if k == nil {
		return "", e.unsupported("attribute kernel_shape is missing")
	}
	w, err := geometry(n, k, e.spatialOrNil())
	if err != nil {
		return "", e.geometryErr(err)
	}
	if !allOnes(w.dilations) {
		return "", e.unsupported("attribute dilations=%v is not supported", w.dilations)
	}
	include := n.Int("count_include_pad", 0) != 0
	padded := slices.ContainsFunc(append(append(slices.Clone(w.padBegin), w.padEnd...), w.extra...), func(p int64) bool { return p != 0 })
	what := poolChanges(n,
		change{padded, "padding → zero blocks, mean, times K/count"},
		change{n.Attr("dilations") != nil, "dilations of 1 dropped"})
	if what == nil {
		return "", nil
	}
	r := len(k)
	plain := window{kernel: k, strides: w.strides, padBegin: make([]int64, r), padEnd: make([]int64, r), extra: make([]int64, r)}
	if !padded {
		e.final("AveragePool", n.Inputs[:1], plain.explicitAttrs(false)...)
		return strings.Join(what, ", "), nil
	}
	in, err := e.spatial("an average pool with padding")
	if err != nil {
		return "", err
	}
	pads := make([]int64, 2*(r+2))
	for i := range r {
		pads[i+2], pads[r+2+i+2] = w.padBegin[i], w.padEnd[i]+w.extra[i]
	}
	zeroed, err := e.pad(n.Inputs[0], pads, 0)
	if err != nil {
		return "", err
	}
	mean := e.op("AveragePool", []string{zeroed}, plain.explicitAttrs(false)...)
	// factor[o] = K / Π_axes count_axis(o_axis).
	counts := make([][]int64, r)
	outDims := []int64{1, 1}
	for i := range r {
		lo, hi := int64(0), in[i]
		if include {
			lo, hi = -w.padBegin[i], in[i]+w.padEnd[i]
		}
		out := (in[i]+w.padBegin[i]+w.padEnd[i]+w.extra[i]-k[i])/w.strides[i] + 1
		for o := range out {
			start := o*w.strides[i] - w.padBegin[i]
			c := min(start+k[i], hi) - max(start, lo)
			if c <= 0 {
				return "", e.unsupported("a window with no element to average (pads %v, kernel %v)", append(w.padBegin, w.padEnd...), k)
			}
			counts[i] = append(counts[i], c)
		}
		outDims = append(outDims, out)
	}
	K := float64(Size(k))
	var factor []float64
	idx := make([]int64, r)
	for range Size(outDims) {
		c := int64(1)
		for i := range r {
			c *= counts[i][idx[i]]
		}
		factor = append(factor, K/float64(c))
		for i := r - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < outDims[i+2] {
				break
			}
			idx[i] = 0
		}
	}
	if slices.ContainsFunc(factor, func(f float64) bool { return f != 1 }) {
		e.final("Mul", []string{mean, e.floats(outDims, factor...)})
	} else {
		e.finish(mean)
	}
	return strings.Join(what, ", "), nil
}

// conv implements Conv-11's auto_pad as explicit pads (Conv-1 is the
// same).
func conv(e *emit) (string, error) {
	n := e.n
	if n.String("auto_pad", "NOTSET") == "NOTSET" {
		return "", nil
	}
	k := e.l.kernelOf(n)
	if k == nil {
		return "", e.unsupported("the kernel size is unknown")
	}
	w, err := geometry(n, k, e.spatialOrNil())
	if err != nil {
		return "", e.geometryErr(err)
	}
	e.copyNode([]string{"auto_pad"}, intsAttr("pads", append(slices.Clone(w.padBegin), w.padEnd...)...))
	return "auto_pad → explicit pads", nil
}

// globalMaxPool implements GlobalMaxPool-1 as ReduceMax over the spatial
// axes, keeping them.
func globalMaxPool(e *emit) (string, error) {
	x := e.l.shapes[e.n.Inputs[0]]
	if len(x) < 3 {
		return "", e.unsupported("the input's rank is unknown")
	}
	var axes []int64
	for i := 2; i < len(x); i++ {
		axes = append(axes, int64(i))
	}
	e.final("ReduceMax", e.n.Inputs[:1], intsAttr("axes", axes...), intAttr("keepdims", 1))
	return "→ ReduceMax over the spatial axes", nil
}

// transposed is a ConvTranspose's geometry: pads resolved and output
// spatial dims.
type transposed struct {
	window
	outPad []int64
	out    []int64
}

// transposeGeometry resolves ConvTranspose-11's attributes: pads from
// pads, auto_pad or output_shape (the spec's total_padding equations),
// output_padding, and the output size
// stride·(in−1) + output_padding + (k−1)·d + 1 − pad_begin − pad_end.
func transposeGeometry(n *Node, kernel, in []int64) (transposed, error) {
	r := len(kernel)
	t := transposed{window: window{kernel: kernel, strides: ones(r), dilations: ones(r), padBegin: make([]int64, r), padEnd: make([]int64, r)},
		outPad: make([]int64, r)}
	if s := n.Ints("strides"); s != nil {
		t.strides = s
	}
	if d := n.Ints("dilations"); d != nil {
		t.dilations = d
	}
	if op := n.Ints("output_padding"); op != nil {
		t.outPad = op
	}
	if len(t.strides) != r || len(t.dilations) != r || len(t.outPad) != r {
		return t, fmt.Errorf("strides %v, dilations %v or output_padding %v do not match the %d-D kernel", t.strides, t.dilations, t.outPad, r)
	}
	if in == nil {
		return t, errSpatial{"ConvTranspose"}
	}
	full := func(i int) int64 { return t.strides[i]*(in[i]-1) + t.outPad[i] + t.extent(i) }
	ap := n.String("auto_pad", "NOTSET")
	target := n.Ints("output_shape")
	if target == nil && (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
		for i := range r {
			target = append(target, in[i]*t.strides[i])
		}
	}
	switch {
	case target != nil:
		if len(target) > r {
			target = target[len(target)-r:] // the full output shape, as some writers give it
		}
		if len(target) != r {
			return t, fmt.Errorf("output_shape %v does not match the %d-D kernel", target, r)
		}
		for i := range r {
			total := full(i) - target[i]
			if ap == "SAME_UPPER" {
				t.padBegin[i], t.padEnd[i] = total/2, total-total/2
			} else {
				t.padBegin[i], t.padEnd[i] = total-total/2, total/2
			}
		}
	case ap == "NOTSET" || ap == "" || ap == "VALID":
		if p := n.Ints("pads"); p != nil && ap != "VALID" {
			if len(p) != 2*r {
				return t, fmt.Errorf("pads %v do not match the %d-D kernel", p, r)
			}
			t.padBegin, t.padEnd = slices.Clone(p[:r]), slices.Clone(p[r:])
		}
	default:
		return t, fmt.Errorf("attribute auto_pad=%s is not supported", ap)
	}
	t.out = make([]int64, r)
	for i := range r {
		t.out[i] = full(i) - t.padBegin[i] - t.padEnd[i]
	}
	return t, nil
}

// convTranspose implements ConvTranspose-11 (and -1, the same
// attributes) as a Conv: the input with stride−1 zeros between its
// elements, padded by (k−1)·d − pad on each side (plus output_padding at
// the end; negative amounts crop), convolved with stride 1, the same
// dilations and groups, and the kernel flipped in space and with its
// channel axes swapped per group: a new initializer, computed here once,
// so fine-tuning trains it.
func convTranspose(e *emit) (string, error) {
	n := e.n
	in, err := e.spatial("ConvTranspose")
	if err != nil {
		return "", err
	}
	x := e.l.shapes[n.Inputs[0]]
	wt := e.l.inits[n.Inputs[1]]
	if wt == nil {
		return "", e.unsupported("weights %q are not an initializer", n.Inputs[1])
	}
	if len(wt.Dims) != len(x) {
		return "", e.unsupported("weights of shape %v for an input of rank %d", wt.Dims, len(x))
	}
	r := len(in)
	k := wt.Dims[2:]
	if ks := n.Ints("kernel_shape"); ks != nil && !slices.Equal(ks, k) {
		return "", e.unsupported("kernel_shape %v differs from the weights' %v", ks, k)
	}
	t, err := transposeGeometry(n, k, in)
	if err != nil {
		return "", e.geometryErr(err)
	}
	group := n.Int("group", 1)
	cin, coutG := wt.Dims[0], wt.Dims[1]
	if x[1] >= 0 && x[1] != cin || cin%group != 0 {
		return "", e.unsupported("weights %v do not fit %d input channels in %d groups", wt.Dims, x[1], group)
	}
	dt := wt.DType
	if !isFloat(dt) {
		return "", e.unsupported("weights of data type %d", dt)
	}
	src, err := wt.Float64s()
	if err != nil {
		return "", e.unsupported("%v", err)
	}
	// W[ci, co, k…] (ci = g·cinG + i, co within the group) becomes
	// W'[g·coutG + co, i, flipped k…].
	cinG := cin / group
	taps := Size(k)
	dst := make([]float64, len(src))
	for g := range group {
		for i := range cinG {
			for co := range coutG {
				from := ((g*cinG+i)*coutG + co) * taps
				to := ((g*coutG+co)*cinG + i) * taps
				for p := range taps {
					dst[to+taps-1-p] = src[from+p]
				}
			}
		}
	}
	kernel, err := e.initializer(n.Inputs[1], dt, append([]int64{group * coutG, cinG}, k...), dst)
	if err != nil {
		return "", e.unsupported("%v", err)
	}
	// Zero-interleave: [N, C, d1, …] → [N, C, d1, 1, d2, 1, …], expanded
	// to the strides and multiplied by a one-hot mask that keeps x at the
	// start of each stride block → [N, C, d1·s1, d2·s2, …]: the textbook
	// interleave (x at multiples of s) and s−1 trailing zeros, taken off
	// the end padding below. (A Pad would do, but GoMLX cannot
	// differentiate Pad.)
	h := n.Inputs[0]
	if !allOnes(t.strides) {
		split, grow, merged := []int64{0, 0}, []int64{1, 1}, []int64{0, 0}
		for i := range r {
			split, grow, merged = append(split, in[i], 1), append(grow, 1, t.strides[i]), append(merged, in[i]*t.strides[i])
		}
		one := make([]float64, Size(grow))
		one[0] = 1
		h = e.op("Expand", []string{e.reshape(h, split...), e.ints64(grow...)})
		h = e.reshape(e.op("Mul", []string{h, e.floats(grow, one...)}), merged...)
	}
	// GoMLX v0.28 computes the gradient of a Conv with respect to its
	// input wrongly for an even kernel (checked against central
	// differences), so an even kernel axis gets a zero tap at its end,
	// in the graph (so the tap stays zero while the kernel trains), and
	// the input one dilation more end padding for it to read.
	odd := slices.Clone(k)
	kpads := make([]int64, 2*(r+2))
	for i := range r {
		if k[i]%2 == 0 {
			odd[i]++
			kpads[r+2+i+2] = 1
		}
	}
	if !slices.Equal(odd, k) {
		if kernel, err = e.pad(kernel, kpads, 0); err != nil {
			return "", err
		}
	}
	// Padding (k−1)·d − pad at the start and (k−1)·d − pad + output_padding
	// at the end of the interleaved input; what is negative is cropped and
	// what exceeds (k'−1)·d (GoMLX's gradient needs it within the
	// kernel's extent) goes into the data as zero blocks.
	begin, end := make([]int64, r), make([]int64, r)
	data := make([]int64, 2*(r+2))
	for i := range r {
		ke := t.extent(i)
		begin[i] = ke - 1 - t.padBegin[i]
		end[i] = ke - 1 - t.padEnd[i] + t.outPad[i] - (t.strides[i] - 1) + (odd[i]-k[i])*t.dilations[i]
		limit := (odd[i] - 1) * t.dilations[i]
		for _, p := range []struct {
			conv *int64
			at   int
		}{{&begin[i], i + 2}, {&end[i], r + 2 + i + 2}} {
			c := max(0, min(*p.conv, limit))
			data[p.at], *p.conv = *p.conv-c, c
		}
	}
	if slices.ContainsFunc(data, func(p int64) bool { return p != 0 }) {
		if h, err = e.pad(h, data, 0); err != nil {
			return "", err
		}
	}
	ins := []string{h, kernel}
	if len(n.Inputs) > 2 && n.Inputs[2] != "" {
		ins = append(ins, n.Inputs[2])
	}
	e.final("Conv", ins, intsAttr("kernel_shape", odd...), intsAttr("strides", ones(r)...),
		intsAttr("dilations", t.dilations...), intsAttr("pads", append(begin, end...)...), intAttr("group", group))
	return "→ zero-interleaved input and Conv with the flipped kernel", nil
}
