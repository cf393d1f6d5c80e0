// Package lower makes GoMLX's pure-Go backend run convolutions as matrix
// multiplications, pooling as flat shifts, and the max pool's gradient
// (SelectAndScatterMax, which the backend lacks) from slices and pads: the
// engine's fallback path, for the ops oneDNN does not take and for builds
// without oneDNN (-tags nodnnl).
//
// Why at the backend boundary: the pinned backend runs ConvGeneral as a
// single-threaded direct loop (0.1-0.2 GFLOP/s), while its matmul reaches
// 20-35 GFLOP/s on two AVX2 cores. Graph code cannot be changed for ONNX
// models (onnx-gomlx emits graph.Convolve for every Conv) nor for autodiff,
// so Wrap intercepts the op itself: its Function.ConvGeneral (conv.go)
// emits a composition of the backend's own fast ops (Concatenate and
// Reshape, which copy with memmove, and DotGeneral) instead. The same goes
// for ReduceWindow (pooling, pool.go) and for binary ops that broadcast
// (broadcast.go), whose loops the backend runs through a generic index
// iterator. Everything else passes through untouched, and XLA backends are
// never wrapped.
package lower

import (
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// Wrap returns b with fast convolutions if b is the pure-Go backend, and b
// itself otherwise (XLA picks and fuses its own convolution algorithms).
func Wrap(b compute.Backend) compute.Backend {
	if b == nil || !IsGo(b) {
		return b
	}
	if _, ok := b.(*backend); ok {
		return b
	}
	return &backend{Backend: b}
}

// IsGo reports whether b is GoMLX's pure-Go backend, wrapped or not (its
// Name() is "Go Backend"; the wrapper keeps it).
func IsGo(b compute.Backend) bool {
	return strings.HasPrefix(strings.ToLower(b.Name()), "go")
}

// backend wraps the builders it makes, and the buffers it hands out:
// GoMLX binds each tensor to the backend its buffer reports
// (Buffer.Backend()) and refuses to feed it to an executable of another
// one, so buffers must report the wrapper, not the inner backend, or
// training (whose updated variables are outputs fed back in) would fail.
type backend struct{ compute.Backend }

func (b *backend) Builder(name string) compute.Builder {
	return &builder{Builder: b.Backend.Builder(name), backend: b}
}

func (b *backend) BufferFromFlatData(deviceNum compute.DeviceNum, flat any, shape shapes.Shape) (compute.Buffer, error) {
	buf, err := b.Backend.BufferFromFlatData(deviceNum, flat, shape)
	return Owned(b, buf), err
}

func (b *backend) NewSharedBuffer(deviceNum compute.DeviceNum, shape shapes.Shape) (compute.Buffer, any, error) {
	buf, flat, err := b.Backend.NewSharedBuffer(deviceNum, shape)
	return Owned(b, buf), flat, err
}

// Owned returns buf, a buffer of the Go backend, reporting owner (a
// wrapper of that backend) as its backend; Unowned gives the inner one
// back. Both this package's wrapper and the engine's hand out such buffers.
func Owned(owner compute.Backend, buf compute.Buffer) compute.Buffer {
	if buf == nil {
		return nil
	}
	return &buffer{Buffer: buf, owner: owner}
}

// Unowned returns the Go backend's own buffer behind buf.
func Unowned(buf compute.Buffer) compute.Buffer {
	if w, ok := buf.(*buffer); ok {
		return w.Buffer
	}
	return buf
}

type buffer struct {
	compute.Buffer
	owner compute.Backend
}

func (b *buffer) Backend() compute.Backend { return b.owner }

func (b *buffer) CopyToDevice(deviceNum compute.DeviceNum) (compute.Buffer, error) {
	c, err := b.Buffer.CopyToDevice(deviceNum)
	return Owned(b.owner, c), err
}

// OwnedExecutable runs e, an executable of the Go backend, on owner's
// buffers.
func OwnedExecutable(owner compute.Backend, e compute.Executable) compute.Executable {
	return &executable{Executable: e, owner: owner}
}

type executable struct {
	compute.Executable
	owner compute.Backend
}

func (e *executable) Execute(inputs []compute.Buffer, donate []bool, device compute.DeviceNum) ([]compute.Buffer, error) {
	in := make([]compute.Buffer, len(inputs))
	for i, b := range inputs {
		in[i] = Unowned(b)
	}
	out, err := e.Executable.Execute(in, donate, device)
	for i, b := range out {
		out[i] = Owned(e.owner, b)
	}
	return out, err
}

type builder struct {
	compute.Builder
	backend *backend
}

func (b *builder) Compile() (compute.Executable, error) {
	e, err := b.Builder.Compile()
	if err != nil || b.backend == nil {
		return e, err
	}
	return OwnedExecutable(b.backend, e), nil
}

// WrapBuilder lowers the convolutions, pools and broadcasts of a builder of
// the pure-Go backend, leaving its buffers and executables as they are:
// for the engine, which wraps those itself and builds its Go segments here.
func WrapBuilder(b compute.Builder) compute.Builder { return &builder{Builder: b} }

func (b *builder) Main() compute.Function { return b.wrapFunction(b.Builder.Main()) }

func (b *builder) NewFunction(name string) (compute.Function, error) {
	f, err := b.Builder.NewFunction(name)
	if err != nil {
		return nil, err
	}
	return b.wrapFunction(f), nil
}

// function overrides ConvGeneral (conv.go) and ReduceWindow (pool.go).
// The methods that hand functions back and forth wrap and unwrap them, so
// closures (While, If, Sort bodies) get fast convolutions too and the inner
// backend only ever sees its own functions.
type function struct {
	compute.Function
	builder *builder
}

func (b *builder) wrapFunction(f compute.Function) compute.Function {
	if f == nil {
		return nil
	}
	if _, ok := f.(*function); ok {
		return f
	}
	return &function{Function: f, builder: b}
}

func unwrap(f compute.Function) compute.Function {
	if w, ok := f.(*function); ok {
		return w.Function
	}
	return f
}

func (f *function) Builder() compute.Builder { return f.builder }

func (f *function) Parent() compute.Function { return f.builder.wrapFunction(f.Function.Parent()) }

func (f *function) Closure() (compute.Function, error) {
	c, err := f.Function.Closure()
	if err != nil {
		return nil, err
	}
	return f.builder.wrapFunction(c), nil
}

func (f *function) Call(g compute.Function, inputs ...compute.Value) ([]compute.Value, error) {
	return f.Function.Call(unwrap(g), inputs...)
}

func (f *function) Sort(comparator compute.Function, axis int, isStable bool, inputs ...compute.Value) ([]compute.Value, error) {
	return f.Function.Sort(unwrap(comparator), axis, isStable, inputs...)
}

func (f *function) While(cond, body compute.Function, initialState ...compute.Value) ([]compute.Value, error) {
	return f.Function.While(unwrap(cond), unwrap(body), initialState...)
}

func (f *function) If(pred compute.Value, trueBranch, falseBranch compute.Function) ([]compute.Value, error) {
	return f.Function.If(pred, unwrap(trueBranch), unwrap(falseBranch))
}
