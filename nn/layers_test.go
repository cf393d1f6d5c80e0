package nn

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
)

func seededStore(t *testing.T, seed int64) *model.Store {
	t.Helper()
	s, err := NewSeededStore(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLayersShapesAndRegularization builds every trainable layer in one graph
// and checks output shapes and that the explicit L2 of the transposed conv
// reaches the train regularization loss as lambda * sum(w^2).
func TestLayersShapesAndRegularization(t *testing.T) {
	store := seededStore(t, 3)
	const lambda = 0.25
	outs, err := model.CallOnceN(backend(t), store, func(scope *model.Scope, x *Node) []*Node {
		c := Conv2D(scope.In("conv"), x, Conv2DConfig{Filters: 8, Kernel: 3, Stride: 2, Padding: PadSame})
		up := ConvTranspose2D(scope.In("up"), c, ConvTranspose2DConfig{Filters: 4, Kernel: 4, Padding: 1, L2: lambda})
		seq := Reshape(up, 2, 10*12, 4)
		bi := BiGRU(scope.In("bigru"), seq, 5, MergeConcat)
		sum := BiGRU(scope.In("bigru_sum"), seq, 5, MergeSum)
		bn := BatchNorm(scope.In("bn"), c, 0)
		w := store.GetVariable("/up/weights").NodeValue(x.Graph())
		return []*Node{c, up, bi, sum, bn, train.GetRegularizationLoss(x.Graph()), MulScalar(ReduceAllSum(Square(w)), lambda)}
	}, tensors.FromShape(shapesF32(2, 10, 12, 3)))
	if err != nil {
		t.Fatal(err)
	}
	wantDims := [][]int{{2, 5, 6, 8}, {2, 10, 12, 4}, {2, 120, 10}, {2, 120, 5}, {2, 5, 6, 8}, {}, {}}
	for i, o := range outs[:5] {
		if !sameShape(o.Shape().Dimensions, wantDims[i]) {
			t.Errorf("output %d: shape %s, want %v", i, o.Shape(), wantDims[i])
		}
	}
	reg, want := outs[5].Value().(float32), outs[6].Value().(float32)
	if want == 0 || math.Abs(float64(reg-want)) > 1e-6*math.Abs(float64(want)) {
		t.Errorf("regularization loss %g, want %g", reg, want)
	}
	for _, name := range []string{"/bigru/forward/kernel", "/bigru/backward/recurrent_kernel", "/conv/biases"} {
		if store.GetVariable(name) == nil {
			t.Errorf("missing variable %s", name)
		}
	}
}

// TestSeededInitAndDropoutDeterministic checks that the same seed gives the
// same initial weights and dropout masks, and a different seed does not.
func TestSeededInitAndDropoutDeterministic(t *testing.T) {
	draw := func(seed int64) []float32 {
		store := seededStore(t, seed)
		out, err := model.CallOnceN(backend(t), store, func(scope *model.Scope, x *Node) []*Node {
			store.SetTraining(x.Graph(), true)
			y := Conv2D(scope.In("c"), x, Conv2DConfig{Filters: 4, Kernel: 3, Padding: PadSame})
			return []*Node{layers.DropoutStatic(scope, y, 0.5)}
		}, tensors.FromFlatDataAndDimensions(randF32(2*6*6*2), 2, 6, 6, 2))
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](out[0])
	}
	a, b, c := draw(7), draw(7), draw(8)
	zeros := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs at %d: %g vs %g", i, a[i], b[i])
		}
		if a[i] == 0 {
			zeros++
		}
	}
	if zeros == 0 || zeros == len(a) {
		t.Errorf("dropout zeroed %d of %d values", zeros, len(a))
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("different seeds gave identical outputs")
	}
}

func randF32(n int) []float32 {
	a := randArr(99, n)
	v := make([]float32, n)
	for i, x := range a.Data {
		v[i] = float32(x)
	}
	return v
}
