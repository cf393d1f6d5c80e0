package ocr

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

// layoutRun builds net on a store seeded with seed (so two runs start from
// the same weights and draw the same dropout masks) and returns the logits
// and the gradients of a fixed weighted sum of them w.r.t. every trainable
// variable, by name.
func layoutRun(t *testing.T, backend compute.Backend, net NetConfig, x *tensors.Tensor, training bool) map[string][]float32 {
	t.Helper()
	st, err := nn.NewSeededStore(3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	outs, err := model.CallOnceN(backend, st, func(scope *model.Scope, x *Node) []*Node {
		g := x.Graph()
		st.SetTraining(g, training)
		if want := nn.CBHW; !net.forceNHWC && net.layout(g) != want {
			t.Fatalf("layout on %s = %s, want %s", backend.Name(), net.layout(g), want)
		}
		y := net.Logits(scope, x)
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

// maxRelDiff is max|got-want| / max(1, max|want|).
func maxRelDiff(got, want []float32) float64 {
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

// TestLayoutsAgree checks that the networks built in the Go backend's
// channels-major layout compute what the NHWC ones compute: with the same
// weights and images, in training mode (batch-norm batch statistics,
// dropout) and inference mode (moving averages), the logits and the
// gradients of every trainable variable agree. The image sizes are odd
// after some pools, so the pools' cropping is exercised too.
func TestLayoutsAgree(t *testing.T) {
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		net      NetConfig
		training bool
	}{
		{"cnn/train", NetConfig{Arch: ArchCNN, Height: 20, Width: 42, Classes: 5, Length: 2, Filters: 4}, true},
		{"cnn/infer", NetConfig{Arch: ArchCNN, Height: 20, Width: 42, Classes: 5, Length: 2, Filters: 4}, false},
		{"crnn/train", NetConfig{Arch: ArchCRNN, Height: 20, Width: 44, Classes: 5, Length: 2, Filters: 4, Dense: 8, RNNHidden: 6}, true},
		{"crnn/infer", NetConfig{Arch: ArchCRNN, Height: 20, Width: 44, Classes: 5, Length: 2, Filters: 4, Dense: 8, RNNHidden: 6}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.net.Check(); err != nil {
				t.Fatal(err)
			}
			const batch = 3
			rng := rand.New(rand.NewPCG(1, 2))
			img := make([]float32, batch*c.net.Height*c.net.Width*3)
			for i := range img {
				img[i] = rng.Float32()
			}
			x := tensors.FromFlatDataAndDimensions(img, batch, c.net.Height, c.net.Width, 3)
			got := layoutRun(t, backend, c.net, x, c.training)
			ref := c.net
			ref.forceNHWC = true
			want := layoutRun(t, backend, ref, x, c.training)
			if len(got) != len(want) || len(want) < 3 {
				t.Fatalf("got %d outputs, want %d (>= 3)", len(got), len(want))
			}
			for name, w := range want {
				g, ok := got[name]
				switch {
				case !ok:
					t.Errorf("%s: missing in the channels-major run", name)
				case len(g) != len(w):
					t.Errorf("%s: %d values, want %d", name, len(g), len(w))
				case !(maxRelDiff(g, w) <= 1e-5):
					t.Errorf("%s: relative difference %.3g between layouts", name, maxRelDiff(g, w))
				}
			}
		})
	}
}
