package lower

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
)

// The backend's binary ops broadcast a non-scalar operand through a generic
// index iterator, ~3 ns per element: adding a conv's per-channel bias (every
// ONNX Conv has one, with batch norm folded in) cost 11% of ResNet-50's
// forward pass. Here the small operand is expanded first, with fast ops:
// trailing broadcast axes by an outer product with ones (a K=1 matmul, exact)
// and the others by a Concatenate of copies (memmove), and the op then runs
// on equal shapes, a plain loop.

func (f *function) Add(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Add, lhs, rhs)
}

func (f *function) Sub(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Sub, lhs, rhs)
}

func (f *function) Mul(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Mul, lhs, rhs)
}

func (f *function) Div(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Div, lhs, rhs)
}

func (f *function) Max(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Max, lhs, rhs)
}

func (f *function) Min(lhs, rhs compute.Value) (compute.Value, error) {
	return f.broadcastBinary(f.Function.Min, lhs, rhs)
}

// minBroadcast is the output size below which the iterator is left alone.
const minBroadcast = 1 << 12

func (f *function) broadcastBinary(op func(lhs, rhs compute.Value) (compute.Value, error), lhs, rhs compute.Value) (compute.Value, error) {
	ls, err := f.Function.Shape(lhs)
	if err != nil {
		return nil, err
	}
	rs, err := f.Function.Shape(rhs)
	if err != nil {
		return nil, err
	}
	if ls.Rank() != rs.Rank() || ls.Equal(rs) || ls.Size() == 1 || rs.Size() == 1 || ls.DType != rs.DType ||
		(ls.DType != dtypes.Float32 && ls.DType != dtypes.Float64) {
		return op(lhs, rhs)
	}
	out := make([]int, ls.Rank())
	size := 1
	for i := range out {
		a, b := ls.Dimensions[i], rs.Dimensions[i]
		switch {
		case a < 0 || b < 0 || (a != b && a != 1 && b != 1):
			return op(lhs, rhs) // dynamic, or an error the backend words
		case a == 1:
			out[i] = b
		default:
			out[i] = a
		}
		size *= out[i]
	}
	if size < minBroadcast {
		return op(lhs, rhs)
	}
	return lower(f.Function, ls.DType, func(e *emitter) compute.Value {
		return e.must(op(e.expand(lhs, out), e.expand(rhs, out)))
	})
}

// expand broadcasts v (same rank, dims 1 or equal to out's) to out.
func (e *emitter) expand(v compute.Value, out []int) compute.Value {
	d := append([]int(nil), e.dims(v)...)
	rank := len(d)
	// Trailing broadcast axes: outer product with ones.
	first, trail := rank, 1
	for first > 0 && d[first-1] == 1 {
		first--
		trail *= out[first]
	}
	if trail > 1 {
		m := 1
		for _, x := range d[:first] {
			m *= x
		}
		ones := e.fill(e.scalar(1), 1, trail)
		v = e.dot(e.reshape(v, m, 1), []int{1}, nil, ones, []int{0}, nil)
		copy(d[first:], out[first:])
	}
	// The rest: repeat whole inner blocks.
	for a := first - 1; a >= 0; a-- {
		if d[a] == out[a] {
			continue
		}
		outer, inner := 1, 1
		for _, x := range d[:a] {
			outer *= x
		}
		for _, x := range d[a+1:] {
			inner *= x
		}
		v = e.reshape(v, outer, 1, inner)
		parts := make([]compute.Value, out[a])
		for i := range parts {
			parts[i] = v
		}
		v = e.concat(1, parts...)
		d[a] = out[a]
	}
	return e.reshape(v, d...)
}
