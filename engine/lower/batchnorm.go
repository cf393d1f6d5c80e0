package lower

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// The batch-normalization ops (XLA's BatchNormTraining, BatchNormInference
// and BatchNormGrad), which the pinned Go backend lacks, built from its
// reductions and element-wise ops. Declaring them (Capabilities) lets
// GoMLX's norm.BatchNorm emit them, so the engine can run each as one
// oneDNN primitive; this is the fallback path. featureAxis is the axis of
// the per-feature scale, offset, mean and variance; the statistics are over
// every other axis, the variance biased.

// bnAxes returns the axes BatchNorm reduces over, the number of elements
// per feature, and a broadcast of a per-feature vector to x's shape.
func (f *function) bnAxes(e *emitter, x compute.Value, featureAxis int) ([]int, float64, func(v compute.Value) compute.Value) {
	xs := e.shape(x)
	var axes []int
	n := 1
	for a, d := range xs.Dimensions {
		if a != featureAxis {
			axes = append(axes, a)
			n *= d
		}
	}
	bcast := func(v compute.Value) compute.Value {
		return e.must(e.f.BroadcastInDim(v, xs, []int{featureAxis}))
	}
	return axes, float64(n), bcast
}

func bnDType(f compute.Function, x compute.Value, featureAxis int) (shapes.Shape, error) {
	xs, err := f.Shape(x)
	if err != nil {
		return xs, err
	}
	if xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64 {
		return xs, fmt.Errorf("batch normalization of %s: want float32 or float64", xs)
	}
	if featureAxis < 0 || featureAxis >= xs.Rank() {
		return xs, fmt.Errorf("batch normalization of %s: feature axis %d", xs, featureAxis)
	}
	return xs, nil
}

// BatchNormForTraining normalizes x with its batch statistics.
func (f *function) BatchNormForTraining(x, scale, offset compute.Value, epsilon float32, featureAxis int) (
	compute.Value, compute.Value, compute.Value, error) {
	xs, err := bnDType(f.Function, x, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	var mean, variance compute.Value
	out, err := lower(f.Function, xs.DType, func(e *emitter) compute.Value {
		axes, n, bcast := f.bnAxes(e, x, featureAxis)
		inv := e.scalar(1 / n)
		mean = e.must(e.f.Mul(e.must(e.f.ReduceSum(x, axes...)), inv))
		xc := e.must(e.f.Sub(x, bcast(mean)))
		variance = e.must(e.f.Mul(e.must(e.f.ReduceSum(e.must(e.f.Mul(xc, xc)), axes...)), inv))
		return f.bnApply(e, xc, scale, offset, variance, epsilon, bcast)
	})
	return out, mean, variance, err
}

// BatchNormForInference normalizes x with the given statistics.
func (f *function) BatchNormForInference(x, scale, offset, mean, variance compute.Value, epsilon float32,
	featureAxis int) (compute.Value, error) {
	xs, err := bnDType(f.Function, x, featureAxis)
	if err != nil {
		return nil, err
	}
	return lower(f.Function, xs.DType, func(e *emitter) compute.Value {
		_, _, bcast := f.bnAxes(e, x, featureAxis)
		return f.bnApply(e, e.must(e.f.Sub(x, bcast(mean))), scale, offset, variance, epsilon, bcast)
	})
}

// bnApply is xc * scale / sqrt(variance + epsilon) + offset.
func (f *function) bnApply(e *emitter, xc, scale, offset, variance compute.Value, epsilon float32,
	bcast func(compute.Value) compute.Value) compute.Value {
	inv := e.must(e.f.Rsqrt(e.must(e.f.Add(variance, e.scalar(float64(epsilon))))))
	return e.must(e.f.Add(e.must(e.f.Mul(xc, bcast(e.must(e.f.Mul(inv, scale))))), bcast(offset)))
}

// BatchNormGradient is the gradient of BatchNormForTraining with respect
// to x, scale and offset, given the statistics it computed.
func (f *function) BatchNormGradient(x, scale, mean, variance, dy compute.Value, epsilon float32,
	featureAxis int) (compute.Value, compute.Value, compute.Value, error) {
	xs, err := bnDType(f.Function, x, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	var dScale, dOffset compute.Value
	dx, err := lower(f.Function, xs.DType, func(e *emitter) compute.Value {
		axes, n, bcast := f.bnAxes(e, x, featureAxis)
		xc := e.must(e.f.Sub(x, bcast(mean)))
		inv := e.must(e.f.Rsqrt(e.must(e.f.Add(variance, e.scalar(float64(epsilon))))))
		dOffset = e.must(e.f.ReduceSum(dy, axes...))
		sumDyXc := e.must(e.f.ReduceSum(e.must(e.f.Mul(dy, xc)), axes...))
		dScale = e.must(e.f.Mul(sumDyXc, inv))
		// dx = scale*inv/n * (n*dy - sum(dy) - xc*inv^2*sum(dy*xc))
		k := e.must(e.f.Mul(e.must(e.f.Mul(scale, inv)), e.scalar(1/n)))
		t := e.must(e.f.Sub(e.must(e.f.Mul(dy, e.scalar(n))), bcast(dOffset)))
		t = e.must(e.f.Sub(t, e.must(e.f.Mul(xc, bcast(e.must(e.f.Mul(e.must(e.f.Mul(inv, inv)), sumDyXc)))))))
		return e.must(e.f.Mul(t, bcast(k)))
	})
	return dx, dScale, dOffset, err
}

// capabilities adds the ops this package builds to the Go backend's.
func capabilities(c compute.Capabilities) compute.Capabilities {
	c = c.Clone()
	for _, op := range []compute.OpType{compute.OpTypeSelectAndScatterMax, compute.OpTypeBatchNormForTraining,
		compute.OpTypeBatchNormForInference, compute.OpTypeBatchNormGradient} {
		c.Operations[op] = true
	}
	return c
}

// Capabilities reports the Go backend's ops and the ones this package adds.
func (b *backend) Capabilities() compute.Capabilities { return capabilities(b.Backend.Capabilities()) }

// Capabilities is what a backend wrapped with this package's builders can
// do: the engine reports it.
func Capabilities(b compute.Backend) compute.Capabilities { return capabilities(b.Capabilities()) }
