package onnxlegal

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Options are what the legalizer cannot read from the file.
type Options struct {
	// Inputs overrides the dims of graph inputs, e.g. the image size of a
	// model exported with dynamic height and width; -1 stays unknown.
	Inputs map[string][]int64
}

// Inputs are the graph inputs that are not initializers: what a caller
// feeds.
func (m *Model) Inputs() []*ValueInfo {
	inits := map[string]bool{}
	for _, t := range m.Graph.Inits {
		inits[t.Name] = true
	}
	var out []*ValueInfo
	for _, vi := range m.Graph.Inputs {
		if !inits[vi.Name] {
			out = append(out, vi)
		}
	}
	return out
}

// ConstInts returns the integers of a small initializer or Constant
// node's output.
func (m *Model) ConstInts(name string) ([]int64, bool) {
	for _, t := range m.Graph.Inits {
		if t.Name == name && Size(t.Dims) <= foldLimit {
			v, err := t.Int64s()
			return v, err == nil
		}
	}
	for _, n := range m.Graph.Nodes {
		if n.Op == "Constant" && len(n.Outputs) == 1 && n.Outputs[0] == name {
			if v := constantValue(n); v.complete() && v.f == nil && int64(len(v.i)) == Size(v.dims) {
				return v.i, true
			}
		}
	}
	return nil, false
}

// Rewrite is one node replaced.
type Rewrite struct {
	Node, Op string
	// What was done, without node-specific numbers so that rewrites of
	// the same kind can be counted together.
	What string
}

// Report lists what Legalize changed and what it could not.
type Report struct {
	Rewrites []Rewrite
	// Unsupported are all the nodes neither kept nor rewritten, in graph
	// order; Legalize returns the first.
	Unsupported []*UnsupportedError
	// Shapes are the dims inferred for each tensor (-1: unknown); absent
	// where even the rank is unknown.
	Shapes map[string][]int64
	// Derived maps each initializer a rewrite added to the one it was
	// computed from (ConvTranspose's kernel, flipped and transposed).
	Derived map[string]string
}

// UnsupportedError is a node that neither the import nor a rewrite
// handles. Its message is one line: node "name" (Op): reason.
type UnsupportedError struct {
	Node, Op, Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("node %q (%s): %s", e.Node, e.Op, e.Reason)
}

// rewriter rewrites e.n by emitting nodes with e; it returns what it did,
// or "" to keep the node as it is.
type rewriter func(e *emit) (string, error)

// rewrites maps an op to its rewrite. A registry, filled in the files of
// each family of ops, and never changed after init.
var rewrites = map[string]rewriter{}

type legalizer struct {
	m         *Model
	shapes    map[string][]int64
	dtypes    map[string]int32
	vals      map[string]*value
	inits     map[string]*Tensor
	valueInfo map[string][]int64
	names     map[string]bool
	newInits  []*Tensor
	derived   map[string]string // initializer → the rewritten copy made from it
	constants map[string]bool   // outputs of Constant nodes
	used      map[string]bool   // tensors some node or the graph output reads
	outputs   map[string]bool   // the graph's outputs
	// alias maps a replaced node's output to the tensor that now holds
	// its value, substituted into the inputs of the nodes after it. Off
	// when a sub-graph (If, Loop) could read the names.
	alias   map[string]string
	noAlias bool
	rep     Report
}

// Legalize rewrites the graph into ops and attributes that onnx-gomlx
// v0.5.0 imports with the semantics ONNX gives them. A node it can
// neither keep nor rewrite is an *UnsupportedError (the first of
// Report.Unsupported). On error the model is left unchanged.
func (m *Model) Legalize(opt Options) (Report, error) {
	g := m.Graph
	l := &legalizer{m: m, shapes: map[string][]int64{}, dtypes: map[string]int32{}, vals: map[string]*value{},
		inits: map[string]*Tensor{}, valueInfo: map[string][]int64{}, names: map[string]bool{}, derived: map[string]string{}}
	for _, t := range g.Inits {
		l.inits[t.Name] = t
		l.names[t.Name] = true
		l.setOut(t.Name, t.Dims, t.DType, nil)
	}
	for _, vi := range g.ValueInfo {
		l.valueInfo[vi.Name] = vi.Dims
	}
	for _, vi := range g.Outputs {
		l.valueInfo[vi.Name] = vi.Dims
	}
	for _, vi := range g.Inputs {
		l.names[vi.Name] = true
		if l.inits[vi.Name] != nil {
			continue // an initializer listed as an input too (IR < 4)
		}
		dims := vi.Dims
		if d, ok := opt.Inputs[vi.Name]; ok {
			dims = d
		}
		l.setOut(vi.Name, dims, vi.ElemType, nil)
	}
	l.constants, l.used, l.outputs, l.alias = map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]string{}
	for _, vi := range g.Outputs {
		l.used[vi.Name], l.outputs[vi.Name] = true, true
	}
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			l.noAlias = l.noAlias || a.Type == attrGraph || a.Type == attrGraphs
		}
		for _, in := range n.Inputs {
			l.used[in] = true
		}
		for _, o := range n.Outputs {
			l.names[o] = true
		}
		if n.Op == "Constant" && len(n.Outputs) == 1 {
			l.constants[n.Outputs[0]] = true
		}
	}
	var out []*Node
	for _, n := range g.Nodes {
		n = l.substitute(n)
		nodes, err := l.legalize(n)
		if err != nil {
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				return Report{}, err // a rewrite's own inconsistency
			}
			// Kept as it is, so that the nodes after it are still
			// examined and every unsupported node is reported.
			l.rep.Unsupported = append(l.rep.Unsupported, ue)
			l.infer(n)
			nodes = []*Node{n}
		}
		out = append(out, nodes...)
	}
	l.rep.Shapes = l.shapes
	l.rep.Derived = map[string]string{}
	for from, to := range l.derived {
		l.rep.Derived[to] = from
	}
	if len(l.rep.Unsupported) > 0 {
		return l.rep, l.rep.Unsupported[0]
	}
	if len(l.rep.Rewrites) > 0 {
		g.Nodes = out
		g.Inits = append(g.Inits, l.newInits...)
	}
	return l.rep, nil
}

// substitute returns n reading aliased tensors from their sources (a
// copy: on error the model stays as it was).
func (l *legalizer) substitute(n *Node) *Node {
	var c *Node
	for i, in := range n.Inputs {
		if a, ok := l.alias[in]; ok {
			if c == nil {
				c = &Node{Name: n.Name, Op: n.Op, Domain: n.Domain, Inputs: slices.Clone(n.Inputs), Outputs: n.Outputs, Attrs: n.Attrs, rest: n.rest}
			}
			c.Inputs[i] = a
		}
	}
	if c == nil {
		return n
	}
	return c
}

// legalize returns the nodes that replace n (n itself when it stays).
func (l *legalizer) legalize(n *Node) ([]*Node, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, &UnsupportedError{n.Label(), n.Op, fmt.Sprintf("op of domain %q is not supported", n.Domain)}
	}
	if rw := rewrites[n.Op]; rw != nil {
		e := &emit{l: l, n: n}
		what, err := rw(e)
		if err != nil {
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				err = &UnsupportedError{n.Label(), n.Op, err.Error()}
			}
			return nil, err
		}
		if what != "" {
			want := l.expectedShape(n)
			for _, nn := range e.nodes {
				if !imported[nn.Op] {
					return nil, fmt.Errorf("onnxlegal: the rewrite of node %q (%s) emitted %s, which the import lacks", n.Label(), n.Op, nn.Op)
				}
				l.infer(nn)
			}
			out := n.Outputs[0]
			if a, ok := l.alias[out]; ok {
				out = a
			}
			if got := l.shapes[out]; want != nil && got != nil && !sameKnown(want, got) {
				return nil, fmt.Errorf("onnxlegal: the rewrite of node %q (%s) gives shape %v, want %v", n.Label(), n.Op, got, want)
			}
			l.rep.Rewrites = append(l.rep.Rewrites, Rewrite{Node: n.Label(), Op: n.Op, What: what})
			return e.nodes, nil
		}
	}
	if !imported[n.Op] {
		return nil, &UnsupportedError{n.Label(), n.Op, "op is not supported"}
	}
	if err := checkAttrs(n); err != nil {
		return nil, err
	}
	l.infer(n)
	return []*Node{n}, nil
}

// expectedShape is the output shape ONNX gives the node, for checking the
// rewrite against (nil when unknown).
func (l *legalizer) expectedShape(n *Node) []int64 {
	probe := &legalizer{m: l.m, shapes: map[string][]int64{}, dtypes: l.dtypes, vals: l.vals, inits: l.inits,
		valueInfo: l.valueInfo}
	for _, in := range n.Inputs {
		probe.shapes[in] = l.shapes[in]
	}
	probe.infer(n)
	return probe.shapes[n.Outputs[0]]
}

func sameKnown(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] >= 0 && b[i] >= 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}

// usesOutput reports whether the node's output i exists and is read.
func (e *emit) usesOutput(i int) bool {
	return i < len(e.n.Outputs) && e.n.Outputs[i] != "" && e.l.used[e.n.Outputs[i]]
}

// unsupported is the error of a rewrite that meets what it cannot do.
func (e *emit) unsupported(format string, a ...any) error {
	return &UnsupportedError{e.n.Label(), e.n.Op, fmt.Sprintf(format, a...)}
}

// emit builds the nodes that replace e.n.
type emit struct {
	l     *legalizer
	n     *Node
	nodes []*Node
}

// name makes a tensor name unused in the graph, derived from the node's
// first output.
func (e *emit) name(hint string) string {
	base := e.n.Outputs[0] + "/legal/" + hint
	for k := len(e.nodes); ; k++ {
		s := base + strconv.Itoa(k)
		if !e.l.names[s] {
			e.l.names[s] = true
			return s
		}
	}
}

// opTo appends a node writing to out. The node writing the replaced
// node's output keeps its name (a cut or a message may name it).
func (e *emit) opTo(out, op string, ins []string, attrs ...*Attr) string {
	name := e.n.Name
	if name != "" && out != e.n.Outputs[0] {
		name += "/legal/" + op + strconv.Itoa(len(e.nodes))
	}
	nd := &Node{Name: name, Op: op, Inputs: ins, Outputs: []string{out}, Attrs: attrs}
	e.nodes = append(e.nodes, nd)
	e.l.infer(nd) // later emits may need its shape
	return out
}

// op appends a node writing to a new tensor, and returns its name.
func (e *emit) op(op string, ins []string, attrs ...*Attr) string {
	return e.opTo(e.name(strings.ToLower(op)), op, ins, attrs...)
}

// final appends the node that writes the replaced node's output.
func (e *emit) final(op string, ins []string, attrs ...*Attr) {
	e.opTo(e.n.Outputs[0], op, ins, attrs...)
}

// finish makes y, computed by the emitted nodes or already in the graph,
// the value of the replaced node's output: the node that computed y
// writes that output instead, or the output becomes an alias of y. Only
// a graph output that is an input already gets a copy: y·1 (GoMLX cannot
// differentiate Identity), or an Identity for integers.
func (e *emit) finish(y string) {
	out := e.n.Outputs[0]
	for i := len(e.nodes) - 1; i >= 0; i-- {
		nd := e.nodes[i]
		if nd.Outputs[0] != y {
			continue
		}
		if nd.Name != "" {
			nd.Name = e.n.Name
		}
		nd.Outputs = []string{out}
		for _, later := range e.nodes[i+1:] {
			for k, in := range later.Inputs {
				if in == y {
					later.Inputs[k] = out
				}
			}
		}
		return
	}
	if e.l.outputs[out] || e.l.noAlias {
		// A copy that GoMLX can differentiate, for floating point.
		if isFloat(e.l.dtypes[y]) {
			e.final("Mul", []string{y, e.constant(e.l.dtypes[y], []int64{}, []float64{1}, nil)})
		} else {
			e.final("Identity", []string{y})
		}
		return
	}
	e.l.alias[out] = y
}

// copyNode keeps the node with edited attributes: drop removes them,
// set adds or replaces.
func (e *emit) copyNode(drop []string, set ...*Attr) {
	c := &Node{Name: e.n.Name, Op: e.n.Op, Domain: e.n.Domain, Inputs: e.n.Inputs, Outputs: e.n.Outputs, rest: e.n.rest}
	for _, a := range e.n.Attrs {
		if !slices.Contains(drop, a.Name) && !slices.ContainsFunc(set, func(s *Attr) bool { return s.Name == a.Name }) {
			c.Attrs = append(c.Attrs, a)
		}
	}
	c.Attrs = append(c.Attrs, set...)
	e.nodes = append(e.nodes, c)
}

// dtype of the node's first input (Float32 when unknown).
func (e *emit) dtype() int32 {
	if dt := e.l.dtypes[e.n.Inputs[0]]; dt != 0 {
		return dt
	}
	return Float32
}

// constant appends a Constant node. Constants, unlike initializers, stay
// constants in the GoMLX graph: nothing to train, nothing for fine-tuning
// to count as a layer.
func (e *emit) constant(dt int32, dims []int64, f []float64, i []int64) string {
	t, err := newTensor("", dt, dims, f, i)
	if err != nil {
		panic(err) // the rewrites' own arithmetic: a bug, not bad input
	}
	return e.op("Constant", nil, &Attr{Name: "value", Type: attrTensor, T: t})
}

// floats is a constant of the input's floating-point type.
func (e *emit) floats(dims []int64, v ...float64) string { return e.constant(e.dtype(), dims, v, nil) }

// scalar is a 0-D constant of the input's type.
func (e *emit) scalar(v float64) string { return e.floats([]int64{}, v) }

// ints64 is a 1-D int64 constant.
func (e *emit) ints64(v ...int64) string {
	return e.constant(Int64, []int64{int64(len(v))}, nil, v)
}

func (e *emit) reshape(x string, dims ...int64) string {
	return e.op("Reshape", []string{x, e.ints64(dims...)})
}

func (e *emit) transpose(x string, perm ...int64) string {
	return e.op("Transpose", []string{x}, intsAttr("perm", perm...))
}

// slice emits Slice in its opset-10+ form, the only one the import reads.
func (e *emit) slice(x string, starts, ends, axes, steps []int64) string {
	return e.op("Slice", []string{x, e.ints64(starts...), e.ints64(ends...), e.ints64(axes...), e.ints64(steps...)})
}

// pad pads x with the constant v (pads in ONNX order: all begins, then
// all ends; negative amounts crop). GoMLX v0.28 has no gradient for its
// Pad, so each padded axis is a Concat with zero blocks instead (a
// one-wide Slice of x times 0, expanded to the padding's width: the batch
// size need not be known), and a nonzero v is added as a constant mask
// that is v on the padding and 0 inside. Gradients flow; an infinite x
// turns its zero blocks into NaN, where the padded op would spread it
// anyway.
func (e *emit) pad(x string, pads []int64, v float64) (string, error) {
	r := len(pads) / 2
	dims := slices.Clone(e.l.shapes[x])
	if len(dims) != r {
		return "", e.unsupported("padding an input of unknown rank")
	}
	for a := range r {
		lo, hi := pads[a], pads[a+r]
		if lo < 0 || hi < 0 {
			start, end := max(0, -lo), int64(math.MaxInt64)
			if hi < 0 {
				end = hi
			}
			x = e.slice(x, []int64{start}, []int64{end}, []int64{int64(a)}, []int64{1})
			if dims[a] >= 0 {
				dims[a] += min(0, lo) + min(0, hi)
			}
			lo, hi = max(0, lo), max(0, hi)
		}
		if lo == 0 && hi == 0 {
			continue
		}
		zero := e.op("Mul", []string{e.slice(x, []int64{0}, []int64{1}, []int64{int64(a)}, []int64{1}), e.scalar(0)})
		block := func(width int64) string {
			shape := make([]int64, r)
			for i := range shape {
				shape[i] = 1
			}
			shape[a] = width
			return e.op("Expand", []string{zero, e.ints64(shape...)})
		}
		parts := []string{x}
		if lo > 0 {
			parts = append([]string{block(lo)}, parts...)
		}
		if hi > 0 {
			parts = append(parts, block(hi))
		}
		x = e.op("Concat", parts, intAttr("axis", int64(a)))
	}
	if v == 0 {
		return x, nil
	}
	// The mask: v where any padded axis is outside the input.
	mdims := make([]int64, r)
	for a := range r {
		mdims[a] = 1
		if pads[a] > 0 || pads[a+r] > 0 {
			if dims[a] < 0 {
				return "", e.unsupported("padding with %g needs the size of axis %d, which is unknown here", v, a)
			}
			mdims[a] = dims[a] + max(0, pads[a]) + max(0, pads[a+r])
		}
	}
	mask := make([]float64, Size(mdims))
	idx := make([]int64, r)
	for k := range mask {
		for a := range r {
			if mdims[a] > 1 && (idx[a] < max(0, pads[a]) || idx[a] >= mdims[a]-max(0, pads[a+r])) {
				mask[k] = v
			}
		}
		for a := r - 1; a >= 0; a-- {
			if idx[a]++; idx[a] < mdims[a] {
				break
			}
			idx[a] = 0
		}
	}
	return e.op("Add", []string{x, e.floats(mdims, mask...)}), nil
}

func (e *emit) gather(x string, idx []int64, axis int64) string {
	return e.op("Gather", []string{x, e.ints64(idx...)}, intAttr("axis", axis))
}

// initializer adds a new initializer (a trainable variable in GoMLX) made
// from the one named from; a second request for the same one reuses it.
func (e *emit) initializer(from string, dt int32, dims []int64, f []float64) (string, error) {
	if name, ok := e.l.derived[from]; ok {
		return name, nil
	}
	name := e.name("weights")
	t, err := newTensor(name, dt, dims, f, nil)
	if err != nil {
		return "", err
	}
	e.l.newInits = append(e.l.newInits, t)
	e.l.inits[name] = t
	e.l.setOut(name, dims, dt, nil)
	e.l.derived[from] = name
	return name, nil
}

func intAttr(name string, v int64) *Attr { return &Attr{Name: name, Type: attrInt, I: v} }
func intsAttr(name string, v ...int64) *Attr {
	return &Attr{Name: name, Type: attrInts, Ints: slices.Clone(v)}
}
func stringAttr(name, v string) *Attr { return &Attr{Name: name, Type: attrString, S: v} }

// spatial returns the input's spatial dims (those after batch and
// channels), or an error naming what needs them.
func (e *emit) spatial(why string) ([]int64, error) {
	x := e.l.shapes[e.n.Inputs[0]]
	if len(x) < 3 {
		return nil, e.unsupported("%s needs the input's spatial size, which is unknown here", why)
	}
	if !known(x[2:]) {
		return nil, e.unsupported("%s needs the input's spatial size, which is unknown here (%s)", why, dimsString(x))
	}
	return x[2:], nil
}

func dimsString(d []int64) string {
	s := make([]string, len(d))
	for i, v := range d {
		if v < 0 {
			s[i] = "?"
		} else {
			s[i] = strconv.FormatInt(v, 10)
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}
