package lower

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// emitter emits ops on the inner function. Its helpers panic with an
// opError on failure, which lower turns back into an error, so that the
// lowering code reads as a sequence of ops. They also skip ops that would
// not change anything (identity transposes, same-shape reshapes).
type emitter struct {
	f     compute.Function
	dtype dtypes.DType
	zero  compute.Value // scalar zero of dtype, made on first use
}

type opError struct{ err error }

// lower runs build and returns its value, or the error of the first op
// that failed.
func lower(f compute.Function, dtype dtypes.DType, build func(e *emitter) compute.Value) (v compute.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			oe, ok := r.(opError)
			if !ok {
				panic(r)
			}
			err = oe.err
		}
	}()
	return build(&emitter{f: f, dtype: dtype}), nil
}

func (e *emitter) must(v compute.Value, err error) compute.Value {
	if err != nil {
		panic(opError{err})
	}
	return v
}

func (e *emitter) shape(v compute.Value) shapes.Shape {
	s, err := e.f.Shape(v)
	if err != nil {
		panic(opError{err})
	}
	return s
}

func (e *emitter) dims(v compute.Value) []int { return e.shape(v).Dimensions }

func (e *emitter) transpose(x compute.Value, perm ...int) compute.Value {
	if isIdentity(perm) {
		return x
	}
	return e.must(e.f.Transpose(x, perm...))
}

func (e *emitter) reshape(x compute.Value, dims ...int) compute.Value {
	if slices.Equal(e.dims(x), dims) {
		return x
	}
	return e.must(e.f.Reshape(x, dims...))
}

// slice takes [starts, limits) with strides (nil: 1) and skips the op when
// it would take everything.
func (e *emitter) slice(x compute.Value, starts, limits, strides []int) compute.Value {
	d := e.dims(x)
	whole := true
	for i := range d {
		s := 1
		if strides != nil {
			s = strides[i]
		}
		if starts[i] != 0 || limits[i] != d[i] || (s != 1 && d[i] > 1) {
			whole = false
		}
	}
	if whole {
		return x
	}
	if strides == nil {
		strides = make([]int, len(d))
		for i := range strides {
			strides[i] = 1
		}
	}
	return e.must(e.f.Slice(x, starts, limits, strides))
}

func (e *emitter) zeroScalar() compute.Value {
	if e.zero == nil {
		e.zero = e.scalar(0)
	}
	return e.zero
}

// scalar is a constant of the emitter's dtype (float32 or float64).
func (e *emitter) scalar(v float64) compute.Value {
	var flat any
	switch e.dtype {
	case dtypes.Float32:
		flat = []float32{float32(v)}
	case dtypes.Float64:
		flat = []float64{v}
	default:
		panic(opError{fmt.Errorf("lower: unsupported dtype %s", e.dtype)})
	}
	return e.must(e.f.Constant(flat))
}

// pad zero-pads x; axes beyond len(cfg) are left alone.
func (e *emitter) pad(x compute.Value, cfg ...compute.PadAxis) compute.Value {
	return e.padWith(x, nil, cfg...)
}

// padWith pads x with the scalar fill (nil: zero). The backend's Pad copies
// element by element when the last axis is padded, so that axis is padded
// with a Concatenate of fill blocks instead (one memmove per row).
func (e *emitter) padWith(x, fill compute.Value, cfg ...compute.PadAxis) compute.Value {
	if !slices.ContainsFunc(cfg, func(p compute.PadAxis) bool { return p != compute.PadAxis{} }) {
		return x
	}
	if fill == nil {
		fill = e.zeroScalar()
	}
	d := e.dims(x)
	last := len(d) - 1
	if len(cfg) == len(d) && cfg[last].Interior == 0 && (cfg[last].Start != 0 || cfg[last].End != 0) {
		rest := slices.Clone(cfg)
		rest[last] = compute.PadAxis{}
		x = e.padWith(x, fill, rest...)
		d = e.dims(x)
		block := func(n int) compute.Value {
			bd := slices.Clone(d)
			bd[last] = n
			return e.fill(fill, bd...)
		}
		var parts []compute.Value
		if cfg[last].Start > 0 {
			parts = append(parts, block(cfg[last].Start))
		}
		parts = append(parts, x)
		if cfg[last].End > 0 {
			parts = append(parts, block(cfg[last].End))
		}
		return e.concat(last, parts...)
	}
	return e.must(e.f.Pad(x, fill, cfg...))
}

// zeros is a zero block of the given dimensions, filled at run time (a
// broadcast scalar is a memset; a constant would sit in memory).
func (e *emitter) zeros(dims ...int) compute.Value {
	return e.fill(e.zeroScalar(), dims...)
}

// fill is a block of the scalar v.
func (e *emitter) fill(v compute.Value, dims ...int) compute.Value {
	return e.must(e.f.BroadcastInDim(v, shapes.Make(e.dtype, dims...), nil))
}

func (e *emitter) concat(axis int, parts ...compute.Value) compute.Value {
	if len(parts) == 1 {
		return parts[0]
	}
	return e.must(e.f.Concatenate(axis, parts...))
}

func (e *emitter) dot(lhs compute.Value, lhsContracting, lhsBatch []int, rhs compute.Value, rhsContracting, rhsBatch []int) compute.Value {
	return e.must(e.f.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch, compute.DotGeneralConfig{}))
}

// repeat stacks n copies of x on a new leading axis with one Concatenate
// (memmove), where BroadcastInDim would copy element by element.
func (e *emitter) repeat(x compute.Value, n int) compute.Value {
	d := e.dims(x)
	size := 1
	for _, v := range d {
		size *= v
	}
	row := e.reshape(x, 1, size)
	parts := make([]compute.Value, n)
	for i := range parts {
		parts[i] = row
	}
	return e.reshape(e.concat(0, parts...), append([]int{n}, d...)...)
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if i != p {
			return false
		}
	}
	return true
}

// inverse returns the permutation q with q[p[i]] = i.
func inverse(p []int) []int {
	q := make([]int, len(p))
	for i, v := range p {
		q[v] = i
	}
	return q
}

// at is v[i], or def where v is shorter (optional per-axis arguments).
func at(v []int, i, def int) int {
	if len(v) > i {
		return v[i]
	}
	return def
}
