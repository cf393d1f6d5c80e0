package nn

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers/norm"
	"github.com/gomlx/gomlx/ml/model"
)

// BatchNorm is GoMLX's norm.BatchNorm over the last (channels) axis, using the
// backend's fused batch-norm ops only where the backend has them (the pure-Go
// backend does not, so it gets the differentiable direct formulation).
func BatchNorm(scope *model.Scope, x *Node) *Node {
	return BatchNormIn(scope, x, NHWC, 0)
}

// BatchNormIn is BatchNorm over the channels axis of x in layout (NHWC: the
// last axis, any rank; CBHW: axis 0), with the moving averages' momentum
// (0: GoMLX's default, 0.99). The variables are the same in both layouts.
func BatchNormIn(scope *model.Scope, x *Node, layout Layout, momentum float64) *Node {
	b := x.Graph().Backend()
	fused := b != nil && b.Capabilities().Operations[compute.OpTypeBatchNormForTraining] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormForInference] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormGradient]
	axis := -1
	if layout == CBHW {
		axis = channelsAxis(CBHW)
	}
	bn := norm.BatchNorm(scope, x, axis).UseBackendInference(fused)
	if momentum != 0 {
		bn = bn.Momentum(momentum)
	}
	return bn.Done()
}
