package lower

import (
	"testing"

	et "github.com/dl4img/dl4img/engine/internal/enginetest"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
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
	native, fast := et.GoBackend(t), Wrap(et.GoBackend(t))
	for _, c := range cases {
		for name, op := range ops {
			t.Run(c.name+" "+name, func(t *testing.T) {
				binary := func(in []*Node) *Node { return op(in[0], in[1]) }
				want := et.Results(t, native, true, binary, et.RandomTensor(c.a, 1), et.RandomTensor(c.b, 2))
				got := et.Results(t, fast, true, binary, et.RandomTensor(c.a, 1), et.RandomTensor(c.b, 2))
				for i, what := range []string{"z", "da", "db"} {
					if err := et.Close32(got[i], want[i], 1e-5); err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
			})
		}
	}
}
