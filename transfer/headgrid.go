package transfer

import (
	"fmt"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer/cosineschedule"
)

// headGrid trains one head per weight decay at once, on standardized
// features: one dropout mask, then len(decays) dense layers side by side
// (weights [dim, heads·units]), each with its own L2 penalty. Adam updates
// every weight on its own, so the heads learn as separate runs would
// (sharing the mask), for about the cost of one; the validation split then
// picks the weight decay and the step.
type headGrid struct {
	Head
	decays []float64
	// steps is the run's length, over which the learning rate decays from
	// lr to lr/100 (a cosine): the last full-batch steps settle into the
	// minimum instead of circling it at the initial rate.
	steps int
	lr    float64
}

func (g headGrid) out() int { return len(g.decays) * g.Units() }

// vars creates (or returns) the grid's weights, starting at zero: each
// head's objective is convex, and every head starts from the same point.
func (g headGrid) vars(scope *model.Scope) (w, b *model.Variable) {
	s := scope.At("head_grid")
	w = s.VariableWithValue("weights", tensors.FromShape(shapes.Make(tensorsDType, g.Dim, g.out())))
	b = s.VariableWithValue("biases", tensors.FromShape(shapes.Make(tensorsDType, g.out())))
	return w, b
}

// logits is the training model: standardized features [batch, dim] →
// [batch, heads·units]. It also adds the heads' L2 penalties
// (decay/2·|W|², averaged over the heads like the loss) and the learning
// rate schedule to the training graph.
func (g headGrid) logits(scope *model.Scope, x *Node) *Node {
	gr := x.Graph()
	w, b := g.vars(scope)
	cosineschedule.New(scope, gr, tensorsDType).LearningRate(g.lr).MinLearningRate(g.lr / 100).
		PeriodSteps(g.steps).Done()
	wn := w.NodeValue(gr)
	perCol := make([]float32, g.out())
	for k := range perCol {
		perCol[k] = float32(g.decays[k/g.Units()] / 2 / float64(len(g.decays)))
	}
	train.AddRegularizationLoss(ReduceAllSum(Mul(ReduceSum(Square(wn), 0), Const(gr, perCol))))
	x = layers.DropoutStatic(scope, x, g.Dropout)
	return Add(MatMul(x, wn), Reshape(b.NodeValue(gr), 1, g.out()))
}

// loss is the heads' mean cross-entropy: the logits [batch, heads·units]
// are seen as heads·batch examples of one head each.
func (g headGrid) loss(labels, logits []*Node) *Node {
	n, heads := logits[0].Shape().Dim(0), len(g.decays)
	lg := Reshape(logits[0], n*heads, g.Units())
	lb := Reshape(BroadcastToDims(Reshape(labels[0], n, 1), n, heads), n*heads, 1)
	return g.Head.loss([]*Node{lb}, []*Node{lg})
}

// linear reads the grid's current weights as one linear map.
func (g headGrid) linear(st *model.Store) (linear, error) {
	w, b := g.vars(st.RootScope())
	wt, err := w.Value()
	if err != nil {
		return linear{}, fmt.Errorf("head grid weights: %w", err)
	}
	bt, err := b.Value()
	if err != nil {
		return linear{}, fmt.Errorf("head grid biases: %w", err)
	}
	return linear{dim: g.Dim, out: g.out(), w: toFloat64(tensors.MustCopyFlatData[float32](wt)),
		b: toFloat64(tensors.MustCopyFlatData[float32](bt))}, nil
}

// head returns head k of the grid's linear map as a classifier.
func (g headGrid) head(l linear, k int) linear {
	u := g.Units()
	h := linear{dim: l.dim, out: u, w: make([]float64, l.dim*u), b: append([]float64(nil), l.b[k*u:(k+1)*u]...)}
	for d := range l.dim {
		copy(h.w[d*u:(d+1)*u], l.w[d*l.out+k*u:d*l.out+(k+1)*u])
	}
	return h
}

func toFloat64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func toFloat32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
