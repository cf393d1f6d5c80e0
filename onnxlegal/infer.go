package onnxlegal

import (
	"math"
	"slices"
)

// Shape inference and constant folding over the graph as it is rewritten.
// Rewrites that depend on sizes (ceil_mode, auto_pad, ConvTranspose,
// DepthToSpace, Resize) need the spatial dims of their input; the
// exporters do not reliably write value_info, so the dims are propagated
// here from the graph inputs (batch left unknown). Small integer tensors
// are folded too, for the shape arithmetic that exporters emit (torch's
// F.pad computes its pads with ConstantOfShape, Concat, Reshape, a
// reversing Slice and Transpose). An op missing here leaves its outputs
// unknown, and only a rewrite that needs them fails.

// value is a tensor known while legalizing: a constant, or one folded.
// Integer values may hold unknownDim where they come from an unknown
// dimension (the batch, in a Shape): shape arithmetic moves such entries
// around (Gather, Concat, Reshape…) and the known ones stay usable.
type value struct {
	dt   int32
	dims []int64
	i    []int64   // integer and bool types
	f    []float64 // floating-point types
}

// unknownDim marks an integer that folding could not know.
const unknownDim = math.MinInt64

// complete reports whether every entry is known.
func (v *value) complete() bool {
	return v != nil && !slices.Contains(v.i, unknownDim)
}

func (v *value) ints() []int64 {
	if v.i != nil || v.f == nil {
		return v.i
	}
	out := make([]int64, len(v.f))
	for k, x := range v.f {
		out[k] = int64(x)
	}
	return out
}

func (v *value) floats() []float64 {
	if v.f != nil || v.i == nil {
		return v.f
	}
	out := make([]float64, len(v.i))
	for k, x := range v.i {
		out[k] = float64(x)
	}
	return out
}

// valueOf decodes a tensor's values, or only its type and dims when it
// is too large to fold.
func valueOf(t *Tensor) *value {
	v := &value{dt: t.DType, dims: t.Dims}
	if Size(t.Dims) > foldLimit {
		return v
	}
	var err error
	if isFloat(t.DType) {
		v.f, err = t.Float64s()
	} else {
		v.i, err = t.Int64s()
	}
	if err != nil {
		return nil
	}
	return v
}

// foldLimit bounds the tensors folded: shape arithmetic, not weights.
const foldLimit = 4096

// dimsOf reads a value as dims, unknown entries as -1.
func dimsOf(v *value) []int64 {
	out := slices.Clone(v.ints())
	for i, d := range out {
		if d == unknownDim {
			out[i] = -1
		}
	}
	return out
}

func known(dims []int64) bool {
	if dims == nil {
		return false
	}
	for _, d := range dims {
		if d < 0 {
			return false
		}
	}
	return true
}

// normAxis maps a negative axis to its positive equivalent.
func normAxis(a int64, rank int) int64 {
	if a < 0 {
		a += int64(rank)
	}
	return a
}

func broadcast(shapes ...[]int64) []int64 {
	rank := 0
	for _, s := range shapes {
		if s == nil {
			return nil
		}
		rank = max(rank, len(s))
	}
	out := make([]int64, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			switch o := out[off+i]; {
			case d == 1:
			case o == 1:
				out[off+i] = d
			case o < 0 && d > 1:
				out[off+i] = d
			}
		}
	}
	return out
}

// input i's shape, dtype and value (nil where unknown or absent).
func (l *legalizer) inShape(n *Node, i int) []int64 {
	if i >= len(n.Inputs) || n.Inputs[i] == "" {
		return nil
	}
	return l.shapes[n.Inputs[i]]
}

func (l *legalizer) inValue(n *Node, i int) *value {
	if i >= len(n.Inputs) || n.Inputs[i] == "" {
		return nil
	}
	return l.value(n.Inputs[i])
}

// value returns the known value of a tensor: a folded one, or a small
// initializer decoded on first use.
func (l *legalizer) value(name string) *value {
	if v, ok := l.vals[name]; ok {
		return v
	}
	if t := l.inits[name]; t != nil && Size(t.Dims) <= foldLimit {
		v := valueOf(t)
		l.vals[name] = v
		return v
	}
	return nil
}

// axesOf reads a Squeeze/Unsqueeze/Reduce axes attribute (older opsets)
// or input (newer).
func (l *legalizer) axesOf(n *Node, input int) ([]int64, bool) {
	if a := n.Attr("axes"); a != nil {
		return a.Ints, true
	}
	if input < len(n.Inputs) && n.Inputs[input] != "" {
		v := l.inValue(n, input)
		if !v.complete() {
			return nil, false
		}
		return v.ints(), true
	}
	return nil, true
}

// infer records the shapes, types and (when folding applies) values of
// n's outputs.
func (l *legalizer) infer(n *Node) {
	if len(n.Outputs) == 0 {
		return
	}
	x := l.inShape(n, 0)
	dt := int32(0)
	if len(n.Inputs) > 0 {
		dt = l.dtypes[n.Inputs[0]]
	}
	var out []int64
	var val *value
	switch n.Op {
	case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf", "Clip", "Identity",
		"Dropout", "HardSigmoid", "HardSwish", "LeakyRelu", "Softmax", "LogSoftmax", "BatchNormalization",
		"InstanceNormalization", "LRN", "LayerNormalization", "Floor", "Ceil", "Reciprocal", "Sin", "Cos",
		"Gelu", "Elu", "Selu", "Softplus", "Sign", "Round", "PRelu", "CumSum":
		out = x
		if v := l.inValue(n, 0); v != nil && (n.Op == "Identity" || n.Op == "Floor" || n.Op == "Ceil" || n.Op == "Neg") {
			val = unary(n.Op, v)
		}
	case "Cast":
		out, dt = x, int32(n.Int("to", 0))
		if v := l.inValue(n, 0); v != nil && (v.complete() || !isFloat(dt)) {
			c := *v
			c.dt, c.i, c.f = dt, nil, nil
			if isFloat(dt) {
				c.f = v.floats()
			} else {
				c.i = v.ints()
			}
			val = &c
		}
	case "Not", "IsNaN":
		out, dt = x, Bool
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean":
		var ins [][]int64
		for i := range n.Inputs {
			ins = append(ins, l.inShape(n, i))
		}
		out = broadcast(ins...)
		if len(n.Inputs) == 2 {
			val = foldBinary(n.Op, l.inValue(n, 0), l.inValue(n, 1), out)
		}
	case "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor":
		out, dt = broadcast(x, l.inShape(n, 1)), Bool
	case "Where":
		out, dt = broadcast(x, l.inShape(n, 1), l.inShape(n, 2)), l.dtypes[n.Inputs[1]]
	case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool":
		out = l.windowShape(n)
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		if x != nil {
			out = slices.Clone(x)
			for i := 2; i < len(out); i++ {
				out[i] = 1
			}
		}
	case "Gemm":
		a, b := x, l.inShape(n, 1)
		if len(a) == 2 && len(b) == 2 {
			m, k := a[0], b[1]
			if n.Int("transA", 0) != 0 {
				m = a[1]
			}
			if n.Int("transB", 0) != 0 {
				k = b[0]
			}
			out = []int64{m, k}
		}
	case "MatMul":
		out = matmulShape(x, l.inShape(n, 1))
	case "Flatten":
		if x != nil {
			axis := normAxis(n.Int("axis", 1), len(x))
			out = []int64{prodOrUnknown(x[:axis]), prodOrUnknown(x[axis:])}
		}
	case "Reshape":
		if v := l.inValue(n, 1); v != nil {
			out = reshapeDims(x, v.ints(), n.Int("allowzero", 0) != 0)
			if in := l.inValue(n, 0); in != nil && known(out) {
				val = &value{dt: in.dt, dims: out, i: in.i, f: in.f}
			}
		}
	case "Transpose":
		if x != nil {
			perm := n.Ints("perm")
			if perm == nil {
				for i := len(x) - 1; i >= 0; i-- {
					perm = append(perm, int64(i))
				}
			}
			out = make([]int64, len(perm))
			for i, p := range perm {
				out[i] = x[p]
			}
			if v := l.inValue(n, 0); v != nil {
				val = transposeValue(v, perm)
			}
		}
	case "Concat":
		out, val = l.concat(n)
	case "Split":
		l.split(n, x)
		return
	case "Slice":
		out, val = l.sliceShape(n)
	case "Pad":
		out = l.padShape(n, x)
	case "Squeeze", "Unsqueeze":
		out, val = l.squeeze(n, x)
	case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL2", "ReduceL1",
		"ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin":
		out = l.reduceShape(n, x)
		if n.Op == "ArgMax" || n.Op == "ArgMin" {
			dt = Int64
		}
	case "Shape":
		if x != nil {
			start, end := n.Int("start", 0), n.Int("end", int64(len(x)))
			start, end = clampIndex(normAxis(start, len(x)), len(x)), clampIndex(normAxis(end, len(x)), len(x))
			out, dt = []int64{max(0, end-start)}, Int64
			if end >= start {
				val = &value{dt: Int64, dims: out}
				for _, d := range x[start:end] {
					if d < 0 {
						d = unknownDim
					}
					val.i = append(val.i, d)
				}
			}
		}
	case "Size":
		out, dt = []int64{}, Int64
		if known(x) {
			val = &value{dt: Int64, dims: out, i: []int64{Size(x)}}
		}
	case "Gather":
		out, val = l.gather(n, x)
	case "Constant":
		val = constantValue(n)
		if val != nil {
			out, dt = val.dims, val.dt
		}
	case "ConstantOfShape":
		if v := l.inValue(n, 0); v != nil {
			out, dt = dimsOf(v), Float32
			fill := &value{dt: Float32, f: []float64{0}}
			if a := n.Attr("value"); a != nil && a.T != nil {
				if fv := valueOf(a.T); fv != nil {
					fill = fv
				}
			}
			dt = fill.dt
			if known(out) && Size(out) <= foldLimit {
				val = &value{dt: dt, dims: out}
				for range Size(out) {
					if isFloat(dt) {
						val.f = append(val.f, fill.floats()[0])
					} else {
						val.i = append(val.i, fill.ints()[0])
					}
				}
			}
		}
	case "Expand":
		if v := l.inValue(n, 1); v != nil {
			out = broadcast(x, dimsOf(v))
		}
	case "Tile":
		if v := l.inValue(n, 1); v.complete() && x != nil {
			out = slices.Clone(x)
			for i, r := range v.ints() {
				if out[i] >= 0 {
					out[i] *= r
				}
			}
		}
	case "Range":
		s, e, d := l.inValue(n, 0), l.inValue(n, 1), l.inValue(n, 2)
		if s.complete() && e.complete() && d.complete() && d.floats()[0] != 0 {
			cnt := int64(max(0, math.Ceil((e.floats()[0]-s.floats()[0])/d.floats()[0])))
			out, dt = []int64{cnt}, s.dt
			if cnt <= foldLimit && !isFloat(dt) {
				val = &value{dt: dt, dims: out}
				for k := range cnt {
					val.i = append(val.i, s.ints()[0]+k*d.ints()[0])
				}
			}
		}
	case "DepthToSpace", "SpaceToDepth":
		if len(x) == 4 {
			b := n.Int("blocksize", 1)
			out = slices.Clone(x)
			if n.Op == "DepthToSpace" {
				out[1], out[2], out[3] = divUnknown(x[1], b*b), mulUnknown(x[2], b), mulUnknown(x[3], b)
			} else {
				out[1], out[2], out[3] = mulUnknown(x[1], b*b), divUnknown(x[2], b), divUnknown(x[3], b)
			}
		}
	case "Resize", "Upsample":
		if r, err := l.resizePlan(n); err == nil {
			out = r.out
		}
	}
	if out == nil {
		out = l.valueInfo[n.Outputs[0]]
	}
	if val != nil && (int64(len(val.i)+len(val.f)) != Size(val.dims) || Size(val.dims) > foldLimit) {
		val = nil
	}
	if dt == 0 {
		dt = Float32
	}
	l.setOut(n.Outputs[0], out, dt, val)
	for _, o := range n.Outputs[1:] {
		if o != "" {
			l.setOut(o, l.valueInfo[o], 0, nil)
		}
	}
}

func (l *legalizer) setOut(name string, shape []int64, dt int32, val *value) {
	if shape != nil {
		l.shapes[name] = shape
	}
	if dt != 0 {
		l.dtypes[name] = dt
	}
	if val != nil {
		l.vals[name] = val
	}
}

func clampIndex(i int64, n int) int64 { return max(0, min(i, int64(n))) }

func prodOrUnknown(d []int64) int64 {
	if !known(d) {
		return -1
	}
	return Size(d)
}

func mulUnknown(d, k int64) int64 {
	if d < 0 {
		return -1
	}
	return d * k
}

func divUnknown(d, k int64) int64 {
	if d < 0 {
		return -1
	}
	return d / k
}

func matmulShape(a, b []int64) []int64 {
	if len(a) < 1 || len(b) < 1 {
		return nil
	}
	a2, b2 := a, b
	if len(a) == 1 {
		a2 = []int64{1, a[0]}
	}
	if len(b) == 1 {
		b2 = []int64{b[0], 1}
	}
	batch := broadcast(a2[:len(a2)-2], b2[:len(b2)-2])
	out := append(batch, a2[len(a2)-2], b2[len(b2)-1])
	if len(a) == 1 {
		out = append(out[:len(out)-2], out[len(out)-1])
	}
	if len(b) == 1 {
		out = out[:len(out)-1]
	}
	return out
}

func reshapeDims(x, shape []int64, allowZero bool) []int64 {
	out := slices.Clone(shape)
	neg := -1
	for i, d := range out {
		switch {
		case d == unknownDim:
			out[i] = -1
		case d == 0 && !allowZero:
			if x == nil || i >= len(x) {
				return nil
			}
			out[i] = x[i]
		case d == -1:
			neg = i
		}
	}
	if neg >= 0 {
		out[neg] = -1
		if known(x) {
			rest := int64(1)
			for i, d := range out {
				if i != neg {
					if d < 0 {
						return out
					}
					rest *= d
				}
			}
			if rest > 0 {
				out[neg] = Size(x) / rest
			}
		}
	}
	return out
}

func unary(op string, v *value) *value {
	out := &value{dt: v.dt, dims: v.dims}
	if v.f == nil {
		out.i = v.i
		if op == "Neg" {
			out.i = make([]int64, len(v.i))
			for k, x := range v.i {
				if x != unknownDim {
					x = -x
				}
				out.i[k] = x
			}
		}
		return out
	}
	out.f = make([]float64, len(v.f))
	for k, x := range v.f {
		switch op {
		case "Floor":
			x = math.Floor(x)
		case "Ceil":
			x = math.Ceil(x)
		case "Neg":
			x = -x
		}
		out.f[k] = x
	}
	return out
}

// foldBinary folds element-wise arithmetic on two known tensors.
func foldBinary(op string, a, b *value, dims []int64) *value {
	if a == nil || b == nil || !known(dims) || Size(dims) > foldLimit {
		return nil
	}
	switch op {
	case "Add", "Sub", "Mul", "Div", "Mod":
	default:
		return nil
	}
	n := Size(dims)
	at := func(v *value, k int64) int64 { return broadcastIndex(v.dims, dims, k) }
	out := &value{dt: a.dt, dims: dims}
	if a.f == nil && b.f == nil {
		for k := range n {
			x, y := a.i[at(a, k)], b.i[at(b, k)]
			if x == unknownDim || y == unknownDim {
				out.i = append(out.i, unknownDim)
				continue
			}
			switch op {
			case "Add":
				x += y
			case "Sub":
				x -= y
			case "Mul":
				x *= y
			case "Div":
				if y == 0 {
					return nil
				}
				x /= y // ONNX integer Div truncates, as Go does
			case "Mod":
				if y == 0 {
					return nil
				}
				// fmod=0 (the default, which exporters use for integers):
				// the sign of the divisor, as Python's %.
				if x %= y; x != 0 && (x < 0) != (y < 0) {
					x += y
				}
			}
			out.i = append(out.i, x)
		}
		return out
	}
	if !a.complete() || !b.complete() {
		return nil
	}
	af, bf := a.floats(), b.floats()
	for k := range n {
		x, y := af[at(a, k)], bf[at(b, k)]
		switch op {
		case "Add":
			x += y
		case "Sub":
			x -= y
		case "Mul":
			x *= y
		case "Div":
			x /= y
		case "Mod":
			return nil
		}
		out.f = append(out.f, x)
	}
	if !isFloat(out.dt) {
		out.dt = b.dt
	}
	return out
}

// broadcastIndex maps flat index k of a tensor of dims `to` to the flat
// index of the broadcast operand of dims `from`.
func broadcastIndex(from, to []int64, k int64) int64 {
	idx, stride := int64(0), int64(1)
	for i := len(to) - 1; i >= 0; i-- {
		c := k % to[i]
		k /= to[i]
		j := i - (len(to) - len(from))
		if j < 0 {
			continue
		}
		if from[j] != 1 {
			idx += c * stride
		}
		stride *= from[j]
	}
	return idx
}

func transposeValue(v *value, perm []int64) *value {
	if len(perm) != len(v.dims) {
		return nil
	}
	dims := make([]int64, len(perm))
	for i, p := range perm {
		dims[i] = v.dims[p]
	}
	out := &value{dt: v.dt, dims: dims}
	n := Size(dims)
	strides := make([]int64, len(v.dims))
	s := int64(1)
	for i := len(v.dims) - 1; i >= 0; i-- {
		strides[i] = s
		s *= v.dims[i]
	}
	for k := range n {
		rem, src := k, int64(0)
		for i := len(dims) - 1; i >= 0; i-- {
			src += (rem % dims[i]) * strides[perm[i]]
			rem /= dims[i]
		}
		if v.f != nil {
			out.f = append(out.f, v.f[src])
		} else {
			out.i = append(out.i, v.i[src])
		}
	}
	return out
}

func (l *legalizer) concat(n *Node) ([]int64, *value) {
	var out []int64
	vals := true
	for i := range n.Inputs {
		s := l.inShape(n, i)
		if s == nil {
			return nil, nil
		}
		axis := normAxis(n.Int("axis", 0), len(s))
		if out == nil {
			out = slices.Clone(s)
			continue
		}
		if out[axis] >= 0 && s[axis] >= 0 {
			out[axis] += s[axis]
		} else {
			out[axis] = -1
		}
		vals = vals && l.inValue(n, i) != nil
	}
	if out == nil || !vals || len(out) != 1 || l.inValue(n, 0) == nil {
		return out, nil
	}
	// 1-D concatenation of known values: shape arithmetic.
	v := &value{dt: l.inValue(n, 0).dt, dims: out}
	for i := range n.Inputs {
		iv := l.inValue(n, i)
		if isFloat(v.dt) {
			v.f = append(v.f, iv.floats()...)
		} else {
			v.i = append(v.i, iv.ints()...)
		}
	}
	return out, v
}

func (l *legalizer) split(n *Node, x []int64) {
	if x == nil {
		return
	}
	axis := normAxis(n.Int("axis", 0), len(x))
	parts := n.Ints("split")
	if parts == nil {
		if v := l.inValue(n, 1); v.complete() {
			parts = v.ints()
		}
	}
	if parts == nil && x[axis] >= 0 {
		k := int64(len(n.Outputs))
		if no := n.Int("num_outputs", 0); no > 0 {
			k = no
		}
		each := (x[axis] + k - 1) / k
		for i := range k {
			parts = append(parts, min(each, x[axis]-i*each))
		}
	}
	for i, o := range n.Outputs {
		if o == "" || i >= len(parts) {
			continue
		}
		s := slices.Clone(x)
		s[axis] = parts[i]
		l.setOut(o, s, l.dtypes[n.Inputs[0]], nil)
	}
}

// sliceArgs reads Slice's starts, ends, axes and steps (inputs since
// opset 10, attributes before).
func (l *legalizer) sliceArgs(n *Node, rank int) (starts, ends, axes, steps []int64, ok bool) {
	if n.Attr("starts") != nil {
		starts, ends, axes = n.Ints("starts"), n.Ints("ends"), n.Ints("axes")
	} else {
		get := func(i int) ([]int64, bool) {
			if i >= len(n.Inputs) || n.Inputs[i] == "" {
				return nil, true
			}
			v := l.inValue(n, i)
			if !v.complete() {
				return nil, false
			}
			return v.ints(), true
		}
		var ok1, ok2, ok3, ok4 bool
		starts, ok1 = get(1)
		ends, ok2 = get(2)
		axes, ok3 = get(3)
		steps, ok4 = get(4)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, nil, nil, nil, false
		}
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	for i := range axes {
		axes[i] = normAxis(axes[i], rank)
	}
	return starts, ends, axes, steps, len(starts) == len(ends) && len(ends) == len(axes) && len(axes) == len(steps)
}

// sliceRange resolves one axis of a Slice on a dim of size d: the first
// index and the element count (ONNX Slice-13's clamping rules).
func sliceRange(start, end, step, d int64) (first, count int64) {
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start, end = max(0, min(start, d)), max(0, min(end, d))
		if end <= start {
			return start, 0
		}
		return start, (end - start + step - 1) / step
	}
	start, end = max(0, min(start, d-1)), max(-1, min(end, d-1))
	if start <= end {
		return start, 0
	}
	return start, (start - end - step - 1) / -step
}

func (l *legalizer) sliceShape(n *Node) ([]int64, *value) {
	x := l.inShape(n, 0)
	if x == nil {
		return nil, nil
	}
	starts, ends, axes, steps, ok := l.sliceArgs(n, len(x))
	if !ok {
		return nil, nil
	}
	out := slices.Clone(x)
	firsts := make([]int64, len(x))
	stepOf := make([]int64, len(x))
	for i := range stepOf {
		stepOf[i] = 1
	}
	for i, a := range axes {
		if x[a] < 0 || steps[i] == 0 {
			out[a] = -1
			continue
		}
		firsts[a], out[a] = sliceRange(starts[i], ends[i], steps[i], x[a])
		stepOf[a] = steps[i]
	}
	v := l.inValue(n, 0)
	if v == nil || !known(out) || !known(x) {
		return out, nil
	}
	// Walk the output's elements in order, mapping each to its source.
	r := &value{dt: v.dt, dims: out}
	strides := make([]int64, len(x))
	st := int64(1)
	for a := len(x) - 1; a >= 0; a-- {
		strides[a] = st
		st *= x[a]
	}
	for k := range Size(out) {
		rem, src := k, int64(0)
		for a := len(out) - 1; a >= 0; a-- {
			src += (firsts[a] + (rem%out[a])*stepOf[a]) * strides[a]
			rem /= out[a]
		}
		if v.f != nil {
			r.f = append(r.f, v.f[src])
		} else {
			r.i = append(r.i, v.i[src])
		}
	}
	return out, r
}

func (l *legalizer) padShape(n *Node, x []int64) []int64 {
	pads := n.Ints("pads")
	if pads == nil {
		v := l.inValue(n, 1)
		if !v.complete() {
			return nil
		}
		pads = v.ints()
	}
	if x == nil || len(pads) != 2*len(x) {
		return nil
	}
	out := slices.Clone(x)
	for i := range x {
		if out[i] >= 0 {
			out[i] += pads[i] + pads[i+len(x)]
		}
	}
	return out
}

func (l *legalizer) squeeze(n *Node, x []int64) ([]int64, *value) {
	axes, ok := l.axesOf(n, 1)
	if x == nil || !ok {
		return nil, nil
	}
	var out []int64
	if n.Op == "Unsqueeze" {
		rank := len(x) + len(axes)
		ins := map[int64]bool{}
		for _, a := range axes {
			ins[normAxis(a, rank)] = true
		}
		k := 0
		for i := range int64(rank) {
			if ins[i] {
				out = append(out, 1)
			} else {
				out = append(out, x[k])
				k++
			}
		}
	} else {
		drop := map[int64]bool{}
		for _, a := range axes {
			drop[normAxis(a, len(x))] = true
		}
		out = []int64{}
		for i, d := range x {
			if drop[int64(i)] || (len(axes) == 0 && d == 1) {
				continue
			}
			if len(axes) == 0 && d < 0 {
				return nil, nil
			}
			out = append(out, d)
		}
	}
	if v := l.inValue(n, 0); v != nil {
		return out, &value{dt: v.dt, dims: out, i: v.i, f: v.f}
	}
	return out, nil
}

func (l *legalizer) reduceShape(n *Node, x []int64) []int64 {
	if x == nil {
		return nil
	}
	keep := n.Int("keepdims", 1) != 0
	var axes []int64
	if n.Op == "ArgMax" || n.Op == "ArgMin" {
		axes = []int64{n.Int("axis", 0)}
	} else {
		var ok bool
		if axes, ok = l.axesOf(n, 1); !ok {
			return nil
		}
		if len(axes) == 0 {
			if n.Int("noop_with_empty_axes", 0) != 0 {
				return x
			}
			for i := range x {
				axes = append(axes, int64(i))
			}
		}
	}
	red := map[int64]bool{}
	for _, a := range axes {
		red[normAxis(a, len(x))] = true
	}
	out := []int64{}
	for i, d := range x {
		switch {
		case !red[int64(i)]:
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	return out
}

func (l *legalizer) gather(n *Node, x []int64) ([]int64, *value) {
	idx := l.inShape(n, 1)
	if x == nil || idx == nil {
		return nil, nil
	}
	axis := normAxis(n.Int("axis", 0), len(x))
	out := append(append(slices.Clone(x[:axis]), idx...), x[axis+1:]...)
	v, iv := l.inValue(n, 0), l.inValue(n, 1)
	if v == nil || !iv.complete() || len(x) != 1 {
		return out, nil
	}
	r := &value{dt: v.dt, dims: out}
	for _, k := range iv.ints() {
		if k < 0 {
			k += x[0]
		}
		if k < 0 || k >= x[0] {
			return out, nil
		}
		if v.f != nil {
			r.f = append(r.f, v.f[k])
		} else {
			r.i = append(r.i, v.i[k])
		}
	}
	return out, r
}

func constantValue(n *Node) *value {
	for _, a := range n.Attrs {
		switch a.Name {
		case "value":
			if a.T != nil {
				return valueOf(a.T)
			}
		case "value_float":
			return &value{dt: Float32, dims: []int64{}, f: []float64{float64(a.F)}}
		case "value_floats":
			v := &value{dt: Float32, dims: []int64{int64(len(a.Floats))}}
			for _, f := range a.Floats {
				v.f = append(v.f, float64(f))
			}
			return v
		case "value_int":
			return &value{dt: Int64, dims: []int64{}, i: []int64{a.I}}
		case "value_ints":
			return &value{dt: Int64, dims: []int64{int64(len(a.Ints))}, i: a.Ints}
		}
	}
	return nil
}
