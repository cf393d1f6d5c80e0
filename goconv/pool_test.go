package goconv

import (
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

// poolCase is one ReduceWindow configuration (per-axis slices, as the op
// takes them).
type poolCase struct {
	name                  string
	x                     []int
	op                    compute.ReduceOpType
	window, strides, wDil []int
	pads                  [][2]int
}

var poolCases = []poolCase{
	{name: "max 3x3 s2 pad 1 nchw (resnet stem)", x: []int{2, 3, 9, 10}, op: compute.ReduceOpMax,
		window: []int{1, 1, 3, 3}, strides: []int{1, 1, 2, 2}, pads: [][2]int{{0, 0}, {0, 0}, {1, 1}, {1, 1}}},
	{name: "max 2x2 nhwc", x: []int{2, 8, 6, 3}, op: compute.ReduceOpMax, window: []int{1, 2, 2, 1}, strides: []int{1, 2, 2, 1}},
	{name: "sum 3x3 s1 same nhwc", x: []int{2, 7, 7, 4}, op: compute.ReduceOpSum,
		window: []int{1, 3, 3, 1}, strides: []int{1, 1, 1, 1}, pads: [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}}},
	{name: "sum 2x2 s2 nchw", x: []int{2, 3, 8, 6}, op: compute.ReduceOpSum, window: []int{1, 1, 2, 2}, strides: []int{1, 1, 2, 2}},
	{name: "min 3x2 s(2,1) dilated", x: []int{1, 2, 11, 9}, op: compute.ReduceOpMin,
		window: []int{1, 1, 3, 2}, strides: []int{1, 1, 2, 1}, wDil: []int{1, 1, 2, 2}},
	{name: "max window on batch axis", x: []int{4, 3, 5}, op: compute.ReduceOpMax, window: []int{2, 1, 3}, strides: []int{1, 1, 1}},
	{name: "global sum", x: []int{2, 3, 7, 7}, op: compute.ReduceOpSum, window: []int{1, 1, 7, 7}, strides: []int{1, 1, 1, 1}},
}

func poolResults(t *testing.T, backend compute.Backend, c poolCase, x *tensors.Tensor) []*tensors.Tensor {
	t.Helper()
	// The Go backend has no SelectAndScatter (max/min pooling gradients);
	// GoMLX has no gradient with dilations, and its gradient of padded sum
	// pooling fails on the Go backend.
	grads := c.op == compute.ReduceOpSum && c.wDil == nil && c.pads == nil
	return results(t, backend, grads, func(in []*Node) *Node {
		return BackendReduceWindow(in[0], c.op, c.window, c.strides, nil, c.wDil, c.pads)
	}, x)
}

// TestReduceWindowMatchesNative compares the flat-shift pooling with the
// backend's own loop, outputs and gradients.
func TestReduceWindowMatchesNative(t *testing.T) {
	native := goBackend(t)
	inner := &spyBackend{Backend: goBackend(t)}
	fast := Wrap(inner)
	for _, c := range poolCases {
		t.Run(c.name, func(t *testing.T) {
			inner.native = 0
			want := poolResults(t, native, c, randomTensor(c.x, 1))
			got := poolResults(t, fast, c, randomTensor(c.x, 1))
			for i, name := range []string{"y", "dx"}[:len(want)] {
				if err := close32(got[i], want[i], 1e-5); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if inner.native > 0 {
				t.Errorf("%d ReduceWindow ops reached the inner backend", inner.native)
			}
		})
	}
}
