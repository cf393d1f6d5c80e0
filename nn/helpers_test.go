package nn

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/dl4img/dl4img/engine"
)

// goBackend is the Go backend as jobs get it (tasks.NewBackend): one op at
// a time, with the engine.
var goBackend = sync.OnceValues(func() (compute.Backend, error) {
	b, err := compute.NewWithConfig("go:ops_sequential")
	if err != nil {
		return nil, err
	}
	return engine.Wrap(b)
})

func backend(tb testing.TB) compute.Backend {
	tb.Helper()
	b, err := goBackend()
	if err != nil {
		tb.Fatalf("go backend: %v", err)
	}
	return b
}

// arr is a fixture array: shape + row-major data.
type arr struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

func (a arr) size() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// tensor converts a to a tensor of dtype (float32, float64 or int32).
func (a arr) tensor(dt dtypes.DType) *tensors.Tensor {
	switch dt {
	case dtypes.Float32:
		v := make([]float32, len(a.Data))
		for i, x := range a.Data {
			v[i] = float32(x)
		}
		return tensors.FromFlatDataAndDimensions(v, a.Shape...)
	case dtypes.Int32:
		v := make([]int32, len(a.Data))
		for i, x := range a.Data {
			v[i] = int32(x)
		}
		return tensors.FromFlatDataAndDimensions(v, a.Shape...)
	default:
		return tensors.FromFlatDataAndDimensions(append([]float64(nil), a.Data...), a.Shape...)
	}
}

func loadFixture(tb testing.TB, name string, into any) {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "nn", name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		tb.Fatalf("parse fixture %s: %v", name, err)
	}
}

// run builds fn on the Go backend, feeds inputs and returns each output as
// float64 values with its shape.
func run(tb testing.TB, fn func(in []*Node) []*Node, inputs ...*tensors.Tensor) []arr {
	tb.Helper()
	exec, err := NewExec(backend(tb), fn)
	if err != nil {
		tb.Fatalf("NewExec: %v", err)
	}
	defer exec.Finalize()
	args := make([]any, len(inputs))
	for i, t := range inputs {
		args[i] = t
	}
	outs, err := exec.Call(args...)
	if err != nil {
		tb.Fatalf("exec: %v", err)
	}
	res := make([]arr, len(outs))
	for i, o := range outs {
		res[i] = toArr(tb, o)
	}
	return res
}

func toArr(tb testing.TB, t *tensors.Tensor) arr {
	tb.Helper()
	a := arr{Shape: append([]int(nil), t.Shape().Dimensions...)}
	switch t.DType() {
	case dtypes.Float32:
		for _, v := range tensors.MustCopyFlatData[float32](t) {
			a.Data = append(a.Data, float64(v))
		}
	case dtypes.Float64:
		a.Data = tensors.MustCopyFlatData[float64](t)
	default:
		tb.Fatalf("unsupported output dtype %s", t.DType())
	}
	return a
}

// assertClose checks shapes match and max|got-want| <= tol*max(1, max|want|):
// a relative error with respect to the array's scale.
func assertClose(tb testing.TB, what string, got, want arr, tol float64) {
	tb.Helper()
	if len(got.Data) != len(want.Data) || !sameShape(got.Shape, want.Shape) {
		tb.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	if e := relErr(got.Data, want.Data); e > tol || math.IsNaN(e) {
		tb.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
}

func relErr(got, want []float64) float64 {
	scale, diff := 1.0, 0.0
	for i := range want {
		scale = max(scale, math.Abs(want[i]))
		d := math.Abs(got[i] - want[i])
		if math.IsNaN(got[i]) {
			return math.NaN()
		}
		diff = max(diff, d)
	}
	return diff / scale
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fdCheck compares the graph gradient of scalar f with central finite
// differences (float64) with respect to each input, on tiny inputs.
func fdCheck(tb testing.TB, f func(in []*Node) *Node, inputs ...arr) {
	tb.Helper()
	tensorsIn := make([]*tensors.Tensor, len(inputs))
	for i, a := range inputs {
		tensorsIn[i] = a.tensor(dtypes.Float64)
	}
	grads := run(tb, func(in []*Node) []*Node { return Gradient(f(in), in...) }, tensorsIn...)
	exec, err := NewExec(backend(tb), func(in []*Node) *Node { return f(in) })
	if err != nil {
		tb.Fatalf("NewExec: %v", err)
	}
	defer exec.Finalize()
	eval := func(ins []arr) float64 {
		args := make([]any, len(ins))
		for i, a := range ins {
			args[i] = a.tensor(dtypes.Float64)
		}
		out, err := exec.Call(args...)
		if err != nil {
			tb.Fatalf("exec: %v", err)
		}
		return tensors.MustCopyFlatData[float64](out[0])[0]
	}
	const h = 1e-5
	for i := range inputs {
		num := make([]float64, len(inputs[i].Data))
		for j := range num {
			ins := make([]arr, len(inputs))
			copy(ins, inputs)
			plus := arr{Shape: inputs[i].Shape, Data: append([]float64(nil), inputs[i].Data...)}
			minus := arr{Shape: inputs[i].Shape, Data: append([]float64(nil), inputs[i].Data...)}
			plus.Data[j] += h
			minus.Data[j] -= h
			ins[i] = plus
			fp := eval(ins)
			ins[i] = minus
			fm := eval(ins)
			num[j] = (fp - fm) / (2 * h)
		}
		if e := relErr(grads[i].Data, num); e > 1e-6 || math.IsNaN(e) {
			tb.Errorf("finite differences, input %d: relative error %.3g", i, e)
		}
	}
}

// randArr returns a deterministic pseudo-random array (no global RNG state).
func randArr(seed uint64, shape ...int) arr {
	a := arr{Shape: shape}
	n := a.size()
	a.Data = make([]float64, n)
	s := seed*6364136223846793005 + 1442695040888963407
	for i := range a.Data {
		s = s*6364136223846793005 + 1442695040888963407
		a.Data[i] = float64(int64(s>>11)%2000001)/1e6 - 1 // [-1, 1]
	}
	return a
}

// weightedSum is the scalar sum(y * gy) whose gradient w.r.t. inputs is the
// vector-Jacobian product with cotangent gy (what the fixtures store).
func weightedSum(y, gy *Node) *Node { return ReduceAllSum(Mul(y, gy)) }

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
