package nn

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers/norm"
	"github.com/gomlx/gomlx/ml/model"
)

// BatchNorm is GoMLX's norm.BatchNorm over the last (channels) axis of x,
// with the moving averages' momentum (0: GoMLX's default, 0.99). It uses
// the backend's fused batch-norm ops where the backend has them (the
// engine runs them on oneDNN), and GoMLX's differentiable direct
// formulation elsewhere.
func BatchNorm(scope *model.Scope, x *Node, momentum float64) *Node {
	b := x.Graph().Backend()
	fused := b != nil && b.Capabilities().Operations[compute.OpTypeBatchNormForTraining] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormForInference] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormGradient]
	bn := norm.BatchNorm(scope, x, -1).UseBackendInference(fused)
	if momentum != 0 {
		bn = bn.Momentum(momentum)
	}
	return bn.Done()
}
