package goconv

import (
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

// TestBroadcastBinaryMatchesNative compares the expanded binary ops with
// the backend's broadcasting iterator, outputs and gradients.
func TestBroadcastBinaryMatchesNative(t *testing.T) {
	ops := map[string]func(a, b *Node) *Node{"add": Add, "sub": Sub, "mul": Mul, "div": Div, "max": Max, "min": Min}
	cases := []struct {
		name string
		a, b []int
	}{
		{"per-channel bias nchw", []int{2, 16, 12, 12}, []int{1, 16, 1, 1}},
		{"per-channel nhwc", []int{2, 12, 12, 32}, []int{1, 1, 1, 32}},
		{"outer", []int{64, 1}, []int{1, 128}},
		{"small first", []int{1, 8, 1, 1}, []int{3, 8, 20, 20}},
		{"below threshold", []int{2, 3, 4, 4}, []int{1, 3, 1, 1}},
	}
	run := func(b compute.Backend, op func(a, b *Node) *Node, x, y *tensors.Tensor) []*tensors.Tensor {
		exec, err := NewExec(b, func(x, y *Node) []*Node {
			z := op(x, y)
			proj := Const(x.Graph(), randomTensor(z.Shape().Dimensions, 3))
			g := Gradient(ReduceAllSum(Mul(z, proj)), x, y)
			return []*Node{z, g[0], g[1]}
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(x, y)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	native, fast := goBackend(t), Wrap(goBackend(t))
	for _, c := range cases {
		for name, op := range ops {
			t.Run(c.name+" "+name, func(t *testing.T) {
				want := run(native, op, randomTensor(c.a, 1), randomTensor(c.b, 2))
				got := run(fast, op, randomTensor(c.a, 1), randomTensor(c.b, 2))
				for i, what := range []string{"z", "da", "db"} {
					if err := close32(got[i], want[i], 1e-5); err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
			})
		}
	}
}
