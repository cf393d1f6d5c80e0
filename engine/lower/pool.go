package lower

import (
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
)

// ReduceWindow implements compute.Function: max, min and sum pooling
// (MaxPool, AveragePool) as "flat shifts", the backend's own loop visits
// every window element through a generic index iterator (ResNet-50's one
// 3x3 max pool took 17% of its forward pass).
//
// A window along axis a is a run of elements stride(a)*dilation apart on the
// flattened tensor, so the reduction over it is w-1 element-wise ops (Max,
// Min or Add: plain loops) of the whole flat vector against copies of itself
// shifted by that step, and a shift is a Pad (memmove). Windows that wrap
// around an axis end only ever land on positions the final strided Slice
// (output-sized) does not take. Any layout works: no transposes.
func (f *function) ReduceWindow(x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	native := func() (compute.Value, error) {
		return f.Function.ReduceWindow(x, op, window, strides, inputDilations, windowDilations, paddings)
	}
	xs, err := f.Function.Shape(x)
	if err != nil {
		return nil, err
	}
	out, err := shapeinference.ReduceWindow(xs, window, strides, inputDilations, windowDilations, paddings)
	if err != nil || (xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64) {
		return native()
	}
	var identity float64
	var combine func(a, b compute.Value) (compute.Value, error)
	switch op {
	case compute.ReduceOpMax:
		identity, combine = math.Inf(-1), f.Function.Max
	case compute.ReduceOpMin:
		identity, combine = math.Inf(1), f.Function.Min
	case compute.ReduceOpSum:
		identity, combine = 0, f.Function.Add
	default:
		return native()
	}
	for _, d := range inputDilations {
		if d != 1 {
			return native()
		}
	}
	for _, p := range paddings {
		if p[0] < 0 || p[1] < 0 {
			return native()
		}
	}
	rank := xs.Rank()
	return lower(f.Function, xs.DType, func(e *emitter) compute.Value {
		fill := e.scalar(identity)
		padCfg := make([]compute.PadAxis, rank)
		for i, p := range paddings {
			padCfg[i] = compute.PadAxis{Start: p[0], End: p[1]}
		}
		x := e.padWith(x, fill, padCfg...)
		dims := e.dims(x)
		total, stride := 1, make([]int, rank)
		for a := rank - 1; a >= 0; a-- {
			stride[a] = total
			total *= dims[a]
		}
		v := e.reshape(x, total)
		starts, limits, steps := make([]int, rank), make([]int, rank), make([]int, rank)
		for a := range rank {
			w, d, s := window[a], at(windowDilations, a, 1), at(strides, a, window[a]) // strides default to the window
			// After the shifts along a, window start p sits at p + (w-1)*d.
			starts[a] = (w - 1) * d
			steps[a] = s
			limits[a] = starts[a] + (out.Dimensions[a]-1)*s + 1
			if w == 1 {
				continue
			}
			shift := stride[a] * d
			grow := (w - 1) * shift
			acc := e.padWith(v, fill, compute.PadAxis{End: grow})
			for j := 1; j < w; j++ {
				acc = e.must(combine(acc, e.padWith(v, fill, compute.PadAxis{Start: j * shift, End: grow - j*shift})))
			}
			v = acc
		}
		// Whole leading blocks again, so the result is the padded tensor
		// with extra rows on axis 0 and one strided Slice picks the windows.
		n := e.dims(v)[0]
		rows := (n + stride[0] - 1) / stride[0]
		v = e.padWith(v, fill, compute.PadAxis{End: rows*stride[0] - n})
		v = e.reshape(v, append([]int{rows}, dims[1:]...)...)
		return e.slice(v, starts, limits, steps)
	})
}
