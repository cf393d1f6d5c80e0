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
	b := x.Graph().Backend()
	fused := b != nil && b.Capabilities().Operations[compute.OpTypeBatchNormForTraining] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormForInference] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormGradient]
	return norm.BatchNorm(scope, x, -1).UseBackendInference(fused).Done()
}
