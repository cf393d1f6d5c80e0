package nn

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/layers/norm"
	"github.com/gomlx/gomlx/ml/model"
)

// BatchNorm is GoMLX's norm.BatchNorm over the last (channels) axis of x,
// with the moving averages' momentum (0: GoMLX's default, 0.99). In
// training it uses the backend's fused batch-norm ops where the backend
// has them (the engine runs them on oneDNN); in inference, and elsewhere,
// GoMLX's direct formulation, which stays differentiable (GoMLX defines no
// gradient for the fused inference op, and checks such as backend-check
// differentiate inference graphs).
func BatchNorm(scope *model.Scope, x *Node, momentum float64) *Node {
	g := x.Graph()
	b := g.Backend()
	fused := b != nil && scope.IsTraining(g) && b.Capabilities().Operations[compute.OpTypeBatchNormForTraining] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormForInference] &&
		b.Capabilities().Operations[compute.OpTypeBatchNormGradient]
	bn := norm.BatchNorm(scope, x, -1).UseBackendInference(fused)
	if momentum != 0 {
		bn = bn.Momentum(momentum)
	}
	return bn.Done()
}
