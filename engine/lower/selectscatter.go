package lower

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
)

// SelectAndScatterMax implements compute.Function: autodiff's gradient of
// a max pool, which the pinned Go backend lacks. Each output's gradient
// goes to the first maximum of its window in row-major order, as XLA's
// SelectAndScatter (and PyTorch's max pool) sends it.
//
// Per window tap t (in row-major order), X_t is the strided view of the
// (-inf padded) input that tap reads for every output: one Slice. The
// window's maximum m is the Max over taps; tap t takes the gradient where
// X_t == m and no earlier tap did; and its share goes back to the input
// positions it read with one interior Pad (the strides' gaps), summed
// over taps. This is the fallback path; the engine runs a oneDNN pooling
// backward instead.
func (f *function) SelectAndScatterMax(x, dy compute.Value, window, strides []int, paddings [][2]int) (compute.Value, error) {
	xs, err := f.Function.Shape(x)
	if err != nil {
		return nil, err
	}
	ys, err := f.Function.Shape(dy)
	if err != nil {
		return nil, err
	}
	if xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64 {
		return f.Function.SelectAndScatterMax(x, dy, window, strides, paddings)
	}
	rank := xs.Rank()
	if len(window) != rank || ys.Rank() != rank {
		return nil, fmt.Errorf("SelectAndScatterMax: window %v for operand %s and source %s", window, xs, ys)
	}
	return lower(f.Function, xs.DType, func(e *emitter) compute.Value {
		padCfg := make([]compute.PadAxis, rank)
		for a := range paddings {
			padCfg[a] = compute.PadAxis{Start: paddings[a][0], End: paddings[a][1]}
		}
		xp := e.padWith(x, e.scalar(math.Inf(-1)), padCfg...)
		pd := e.dims(xp)
		out := ys.Dimensions
		taps := 1
		for _, w := range window {
			taps *= w
		}
		views := make([]compute.Value, taps)
		tapAt := make([][]int, taps)
		var m compute.Value
		for t := range taps {
			tap := make([]int, rank)
			r := t
			for a := rank - 1; a >= 0; a-- {
				tap[a] = r % window[a]
				r /= window[a]
			}
			tapAt[t] = tap
			starts, limits, steps := make([]int, rank), make([]int, rank), make([]int, rank)
			for a := range rank {
				s := at(strides, a, 1)
				starts[a], steps[a] = tap[a], s
				limits[a] = tap[a] + (out[a]-1)*s + 1
			}
			views[t] = e.slice(xp, starts, limits, steps)
			if m == nil {
				m = views[t]
			} else {
				m = e.must(e.f.Max(m, views[t]))
			}
		}
		zero := e.fill(e.zeroScalar(), out...)
		var taken, dx compute.Value
		for t := range taps {
			sel := e.must(e.f.Equal(views[t], m))
			if taken != nil {
				sel = e.must(e.f.LogicalAnd(sel, e.must(e.f.LogicalNot(taken))))
				taken = e.must(e.f.LogicalOr(taken, sel))
			} else {
				taken = sel
			}
			share := e.must(e.f.Where(sel, dy, zero))
			back := make([]compute.PadAxis, rank)
			for a := range rank {
				s := at(strides, a, 1)
				end := pd[a] - (tapAt[t][a] + (out[a]-1)*s + 1)
				back[a] = compute.PadAxis{Start: tapAt[t][a], End: end, Interior: s - 1}
			}
			placed := e.must(e.f.Pad(share, e.zeroScalar(), back...))
			if dx == nil {
				dx = placed
			} else {
				dx = e.must(e.f.Add(dx, placed))
			}
		}
		starts, limits := make([]int, rank), make([]int, rank)
		for a := range rank {
			starts[a] = padCfg[a].Start
			limits[a] = starts[a] + xs.Dimensions[a]
		}
		return e.slice(dx, starts, limits, nil)
	})
}
