package formula

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/tasks"
)

// readerLayoutRun builds the reader on a store seeded with a fixed seed (so
// two runs start from the same weights) and returns the logits and the
// gradients of a fixed weighted sum of them w.r.t. every trainable
// variable, by name.
func readerLayoutRun(t *testing.T, be compute.Backend, rc ReaderConfig, x *tensors.Tensor, training bool) map[string][]float32 {
	t.Helper()
	st, err := nn.NewSeededStore(3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	outs, err := model.CallOnceN(be, st, func(scope *model.Scope, x *Node) []*Node {
		g := x.Graph()
		st.SetTraining(g, training)
		if got := rc.layout(g); !rc.forceNHWC && got != nn.CBHW {
			t.Fatalf("layout on %s = %s, want CBHW (nothing would be compared)", be.Name(), got)
		}
		y := rc.Logits(scope, x)
		rng := rand.New(rand.NewPCG(7, 8))
		gy := make([]float32, y.Shape().Size())
		for i := range gy {
			gy[i] = rng.Float32()*2 - 1
		}
		loss := ReduceAllSum(Mul(y, Const(g, tensors.FromFlatDataAndDimensions(gy, y.Shape().Dimensions...))))
		names = append(names, "logits")
		var vars []*Node
		for v := range st.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				names = append(names, v.Path())
				vars = append(vars, v.NodeValue(g))
			}
		}
		return append([]*Node{y}, Gradient(loss, vars...)...)
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	res := make(map[string][]float32, len(outs))
	for i, o := range outs {
		res[names[i]] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

// TestReaderLayoutsAgree checks that the reader built in the Go backend's
// channels-major layout (including its 2×1 pool) computes what the NHWC
// one computes: same weights and strips give the same logits and gradients
// of every variable, in training mode (batch statistics) and inference
// mode (moving averages).
func TestReaderLayoutsAgree(t *testing.T) {
	be, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	rc := ReaderConfig{Height: 16, Width: 68, Filters: 3, Hidden: 5, L2: 1e-4}
	if err := rc.Check(); err != nil {
		t.Fatal(err)
	}
	const batch = 2
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, batch*rc.Height*rc.Width)
	for i := range img {
		img[i] = rng.Float32()
	}
	x := tensors.FromFlatDataAndDimensions(img, batch, rc.Height, rc.Width, 1)
	for _, c := range []struct {
		name     string
		training bool
	}{{"train", true}, {"infer", false}} {
		t.Run(c.name, func(t *testing.T) {
			got := readerLayoutRun(t, be, rc, x, c.training)
			ref := rc
			ref.forceNHWC = true
			want := readerLayoutRun(t, be, ref, x, c.training)
			if len(got) != len(want) || len(want) < 3 {
				t.Fatalf("got %d outputs, want %d (>= 3)", len(got), len(want))
			}
			for name, wv := range want {
				gv, ok := got[name]
				switch {
				case !ok:
					t.Errorf("%s: missing in the channels-major run", name)
				case len(gv) != len(wv):
					t.Errorf("%s: %d values, want %d", name, len(gv), len(wv))
				case !(readerRelDiff(gv, wv) <= 1e-5):
					t.Errorf("%s: relative difference %.3g between layouts", name, readerRelDiff(gv, wv))
				}
			}
		})
	}
}

// readerRelDiff is max|got-want| / max(1, max|want|).
func readerRelDiff(got, want []float32) float64 {
	scale, diff := 1.0, 0.0
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.NaN()
		}
		diff = max(diff, d)
	}
	return diff / scale
}
