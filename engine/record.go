//go:build !nodnnl

package engine

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/lower"
)

//go:generate go run ./internal/gen record_gen.go

// How a function is recorded.
//
// Every op the graph code asks for is built at once on a "shadow" function
// of the pure-Go backend (with the lowering of package lower), which gives
// the op's shapes and wording of errors exactly as today, and is recorded
// as a node: its name, its value inputs, its other arguments and a closure
// that builds the same op on any other function. At Compile the planner
// (plan.go) cuts the recorded graph into Go segments, each built by
// replaying its nodes on a fresh builder, and the ops that run on oneDNN
// between them. A function the recorder cannot replay (closures, named
// functions, ops whose values hide in other arguments) compiles its shadow
// instead: today's path, counted and logged once.

// builder records the main function and keeps its shadow.
type builder struct {
	backend  *backend
	name     string
	shadow   compute.Builder
	main     *function
	fallback string // why the function must run whole on the shadow ("": it need not)
}

func (b *backend) Builder(name string) compute.Builder {
	bl := &builder{backend: b, name: name, shadow: lower.WrapBuilder(b.Backend.Builder(name))}
	bl.main = &function{b: bl, shadow: bl.shadow.Main(), main: true}
	return bl
}

func (b *builder) Name() string           { return b.name }
func (b *builder) Main() compute.Function { return b.main }

func (b *builder) setFallback(why string) {
	if b.fallback == "" {
		b.fallback = why
	}
}

func (b *builder) NewFunction(name string) (compute.Function, error) {
	b.setFallback("named function " + name)
	f, err := b.shadow.NewFunction(name)
	if err != nil {
		return nil, err
	}
	return &function{b: b, shadow: f}, nil
}

func (b *builder) OpShape(op compute.Value) (shapes.Shape, error) {
	v, err := b.main.value(op)
	if err != nil {
		return shapes.Shape{}, err
	}
	return v.shape, nil
}

func (b *builder) DistributedSPMD(numDevices int) error {
	b.setFallback("distributed execution")
	return b.shadow.DistributedSPMD(numDevices)
}

func (b *builder) DistributedAutoSharding(meshes ...compute.Mesh) error {
	b.setFallback("distributed execution")
	return b.shadow.DistributedAutoSharding(meshes...)
}

func (b *builder) DeviceAssignment(devices ...compute.DeviceNum) error {
	return b.shadow.DeviceAssignment(devices...)
}

// node is one recorded op.
type node struct {
	op     string
	inputs []*value
	args   []any // the op's other arguments, in order
	replay replayFn
	outs   []*value
	index  int // position in function.nodes (a topological order)
}

// outShapes are the shapes of n's outputs.
func (n *node) outShapes() []shapes.Shape {
	s := make([]shapes.Shape, len(n.outs))
	for i, o := range n.outs {
		s[i] = o.shape
	}
	return s
}

type replayFn func(g compute.Function, in []compute.Value) ([]compute.Value, error)

// value is one output of a node: the compute.Value the graph code holds.
type value struct {
	node   *node
	out    int
	shadow compute.Value
	shape  shapes.Shape
}

// function records ops (main) or only forwards them to its shadow
// (closures and named functions, which make the builder fall back).
type function struct {
	b       *builder
	shadow  compute.Function
	main    bool
	nodes   []*node
	params  []*value
	outputs []*value
}

// skipIdentities makes every reader of an Identity op's value read the
// value under it. Identity ops are aliases (custom gradients leave them,
// nn.Relu's and the transposed convolution's), but in a Go segment the
// backend copies a value it is not donated: ~0.1 GB a step of fcn.
func (f *function) skipIdentities() {
	under := func(v *value) *value {
		for v.node.op == "Identity" {
			v = v.node.inputs[0]
		}
		return v
	}
	for _, n := range f.nodes {
		for i, v := range n.inputs {
			n.inputs[i] = under(v)
		}
	}
	for i, v := range f.outputs {
		f.outputs[i] = under(v)
	}
}

func (f *function) Name() string             { return f.shadow.Name() }
func (f *function) Builder() compute.Builder { return f.b }
func (f *function) Shape(v compute.Value) (shapes.Shape, error) {
	w, err := f.value(v)
	if err != nil {
		return shapes.Shape{}, err
	}
	return w.shape, nil
}

func (f *function) Parent() compute.Function {
	if f.main {
		return nil
	}
	return f.b.main
}

func (f *function) Closure() (compute.Function, error) {
	f.b.setFallback("closure (While, If, Sort or Call)")
	c, err := f.shadow.Closure()
	if err != nil {
		return nil, err
	}
	return &function{b: f.b, shadow: c}, nil
}

var errForeignValue = errors.New("engine: value does not belong to this builder")

func (f *function) value(v compute.Value) (*value, error) {
	w, ok := v.(*value)
	if !ok || w.node == nil {
		return nil, fmt.Errorf("%w (%T)", errForeignValue, v)
	}
	return w, nil
}

// one and list gather an op's value inputs for values.
func one(v compute.Value) []compute.Value     { return []compute.Value{v} }
func list(vs []compute.Value) []compute.Value { return vs }

// values concatenates an op's value inputs, as values (checked by record).
func (f *function) values(groups ...[]compute.Value) []compute.Value {
	var all []compute.Value
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// record builds an op on the shadow and records it as a node.
func (f *function) record(op string, ins []compute.Value, args []any, replay replayFn) ([]compute.Value, error) {
	in := make([]*value, len(ins))
	shadowIns := make([]compute.Value, len(ins))
	for i, v := range ins {
		w, err := f.value(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		in[i], shadowIns[i] = w, w.shadow
	}
	outs, err := replay(f.shadow, shadowIns)
	if err != nil {
		return nil, err
	}
	n := &node{op: op, inputs: in, args: args, replay: replay, index: len(f.nodes)}
	res := make([]compute.Value, len(outs))
	for i, o := range outs {
		s, err := f.shadow.Shape(o)
		if err != nil {
			return nil, err
		}
		w := &value{node: n, out: i, shadow: o, shape: s}
		n.outs = append(n.outs, w)
		res[i] = w
	}
	if f.main {
		f.nodes = append(f.nodes, n)
	}
	return res, nil
}

// opaque builds an op that cannot be replayed: the function falls back.
func (f *function) opaque(op string, ins []compute.Value, args []any, replay replayFn) ([]compute.Value, error) {
	f.b.setFallback("op " + op)
	return f.record(op, ins, args, replay)
}

func (f *function) Parameter(name string, shape shapes.Shape, sharding *compute.ShardingSpec) (compute.Value, error) {
	outs, err := f.record("Parameter", nil, []any{name, shape, sharding}, func(g compute.Function, _ []compute.Value) ([]compute.Value, error) {
		v, err := g.Parameter(name, shape, sharding)
		return []compute.Value{v}, err
	})
	if err != nil {
		return nil, err
	}
	if f.main {
		f.params = append(f.params, outs[0].(*value))
	}
	return outs[0], nil
}

func (f *function) Constant(flat any, dims ...int) (compute.Value, error) {
	outs, err := f.record("Constant", nil, []any{flat, dims}, func(g compute.Function, _ []compute.Value) ([]compute.Value, error) {
		v, err := g.Constant(flat, dims...)
		return []compute.Value{v}, err
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

func (f *function) Return(outputs []compute.Value, shardings []*compute.ShardingSpec) error {
	shadows := make([]compute.Value, len(outputs))
	ws := make([]*value, len(outputs))
	for i, o := range outputs {
		w, err := f.value(o)
		if err != nil {
			return fmt.Errorf("Return: %w", err)
		}
		ws[i], shadows[i] = w, w.shadow
	}
	if err := f.shadow.Return(shadows, shardings); err != nil {
		return err
	}
	if f.main {
		f.outputs = ws
	}
	return nil
}

// shadowFn unwraps a function argument of a closure op.
func shadowFn(g compute.Function) compute.Function {
	if w, ok := g.(*function); ok {
		return w.shadow
	}
	return g
}

func (f *function) Call(g compute.Function, inputs ...compute.Value) ([]compute.Value, error) {
	return f.opaque("Call", inputs, nil, func(h compute.Function, in []compute.Value) ([]compute.Value, error) {
		return h.Call(shadowFn(g), in...)
	})
}

func (f *function) Sort(comparator compute.Function, axis int, isStable bool, inputs ...compute.Value) ([]compute.Value, error) {
	return f.opaque("Sort", inputs, nil, func(h compute.Function, in []compute.Value) ([]compute.Value, error) {
		return h.Sort(shadowFn(comparator), axis, isStable, in...)
	})
}

func (f *function) While(cond, body compute.Function, initialState ...compute.Value) ([]compute.Value, error) {
	return f.opaque("While", initialState, nil, func(h compute.Function, in []compute.Value) ([]compute.Value, error) {
		return h.While(shadowFn(cond), shadowFn(body), in...)
	})
}

func (f *function) If(pred compute.Value, trueBranch, falseBranch compute.Function) ([]compute.Value, error) {
	return f.opaque("If", []compute.Value{pred}, nil, func(h compute.Function, in []compute.Value) ([]compute.Value, error) {
		return h.If(in[0], shadowFn(trueBranch), shadowFn(falseBranch))
	})
}
