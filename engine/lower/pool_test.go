package lower

import (
	"testing"

	et "github.com/dl4img/dl4img/engine/internal/enginetest"
	"github.com/gomlx/compute"
)

// TestReduceWindowMatchesNative compares the flat-shift pooling with the
// backend's own loop, outputs and gradients, and the max pools' gradients
// (SelectAndScatterMax) with the reference.
func TestReduceWindowMatchesNative(t *testing.T) {
	native := et.GoBackend(t)
	inner := &spyBackend{Backend: et.GoBackend(t)}
	fast := Wrap(inner)
	for _, c := range et.PoolCases {
		t.Run(c.Name, func(t *testing.T) {
			inner.native = 0
			want := et.PoolResults(t, native, c, c.NativeGradients())
			maxGrad := c.Op == compute.ReduceOpMax && c.WDil == nil
			got := et.PoolResults(t, fast, c, c.NativeGradients() || maxGrad)
			if maxGrad { // SelectAndScatterMax, which the Go backend lacks
				proj := et.RandomTensor(want[0].Shape().Dimensions, 3)
				want = append(want, et.MaxPoolGradient(c.Input(), proj, c.Window, c.Strides, c.Pads))
			}
			for i, name := range []string{"y", "dx"}[:len(want)] {
				if err := et.Close32(got[i], want[i], 1e-5); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if inner.native > 0 {
				t.Errorf("%d ReduceWindow ops reached the inner backend", inner.native)
			}
		})
	}
}
