// Package goconv makes GoMLX's pure-Go backend run convolutions as matrix
// multiplications, for every graph: the nets in nn, ONNX models imported by
// onnx-gomlx, and the gradient convolutions that GoMLX's autodiff emits for
// either.
//
// Why at the backend boundary: the pinned backend runs ConvGeneral as a
// single-threaded direct loop (0.1-0.2 GFLOP/s), while its matmul reaches
// 20-35 GFLOP/s on two AVX2 cores. Graph code cannot be changed for ONNX
// models (onnx-gomlx emits graph.Convolve for every Conv) nor for autodiff,
// so Wrap intercepts the op itself: its Function.ConvGeneral emits a
// composition of the backend's own fast ops (Pad, Concatenate and Reshape,
// which copy with memmove, and DotGeneral) instead. Everything else passes
// through untouched, and XLA backends are never wrapped.
package goconv

import (
	"strings"

	"github.com/gomlx/compute"
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

type backend struct{ compute.Backend }

func (b *backend) Builder(name string) compute.Builder {
	return &builder{Builder: b.Backend.Builder(name)}
}

type builder struct{ compute.Builder }

func (b *builder) Main() compute.Function { return wrapFunction(b.Builder.Main()) }

func (b *builder) NewFunction(name string) (compute.Function, error) {
	f, err := b.Builder.NewFunction(name)
	if err != nil {
		return nil, err
	}
	return wrapFunction(f), nil
}

// function overrides ConvGeneral (conv.go) and ReduceWindow (pool.go).
// The methods that hand functions back and forth wrap and unwrap them, so
// closures (While, If, Sort bodies) get fast convolutions too and the inner
// backend only ever sees its own functions.
type function struct{ compute.Function }

func wrapFunction(f compute.Function) compute.Function {
	if f == nil {
		return nil
	}
	if _, ok := f.(*function); ok {
		return f
	}
	return &function{Function: f}
}

func unwrap(f compute.Function) compute.Function {
	if w, ok := f.(*function); ok {
		return w.Function
	}
	return f
}

func (f *function) Builder() compute.Builder { return &builder{Builder: f.Function.Builder()} }

func (f *function) Parent() compute.Function { return wrapFunction(f.Function.Parent()) }

func (f *function) Closure() (compute.Function, error) {
	c, err := f.Function.Closure()
	if err != nil {
		return nil, err
	}
	return wrapFunction(c), nil
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
