package netbench

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/support/exceptions"
)

// CheckResult is what one backend computes for a net on a fixed batch with
// fixed weights: comparing two of them (Go backend here, XLA/CUDA on a GPU
// machine) checks that the backends agree on the whole model.
type CheckResult struct {
	Net     string `json:"net"`
	Backend string `json:"backend"`
	Batch   int    `json:"batch"`
	// Loss is the scalar training loss in inference mode (no dropout, batch
	// norm from its moving averages): the backends' random bits differ, so
	// random ops are kept out of the comparison.
	Loss float64 `json:"loss"`
	// GradNorm is the L2 norm of the loss gradient over the filled
	// variables (Model.Fill): it checks the backward pass.
	GradNorm float64 `json:"grad_norm"`
	// Outputs samples the model output at evenly spaced flat indices.
	Outputs []float64 `json:"outputs"`
	// OutputNorm is the L2 norm of the whole output.
	OutputNorm float64 `json:"output_norm"`
}

// Model is a net as the check runs it: the model and loss functions the
// trainer would get, the variables to fill with host-drawn values and to
// differentiate (nil: all trainable float32 variables; a backbone imported
// from ONNX keeps its own weights) and a batch.
type Model struct {
	Name  string
	Store *model.Store
	Fn    func(scope *model.Scope, x *Node) *Node
	Loss  func(labels, logits []*Node) *Node
	Fill  func(v *model.Variable) bool
	Batch train.Batch
}

// maxOutputs bounds the sampled outputs kept in a CheckResult.
const maxOutputs = 2048

// Check runs one of Nets() for the numerics comparison at the given batch.
func Check(backend compute.Backend, net string, batch int) (CheckResult, error) {
	if !slices.Contains(Nets(), net) {
		return CheckResult{}, fmt.Errorf("%w %q (want one of %v)", ErrUnknownNet, net, Nets())
	}
	if batch < 1 {
		return CheckResult{}, fmt.Errorf("netbench check %s: batch %d must be >= 1", net, batch)
	}
	m := Model{Name: net, Store: model.NewStore(), Batch: newSynthetic(net, batch).batch()}
	switch net {
	case "captcha-cnn":
		m.Fn, m.Loss = CaptchaCNN, CaptchaLoss
	case "crnn":
		m.Fn, m.Loss = CRNN, CRNNLoss
	case "fcn":
		m.Fn, m.Loss = FCN, FCNLoss
	}
	return CheckModel(backend, m)
}

// CheckModel builds m on backend, replaces its initial weights by values
// drawn on the host from a hash of each variable's path (so every backend
// gets identical weights whatever its random number generator), and
// returns loss, gradient norm and outputs.
func CheckModel(backend compute.Backend, m Model) (res CheckResult, err error) {
	res = CheckResult{Net: m.Name, Backend: backend.Name(), Batch: m.Batch.Inputs[0].Shape().Dimensions[0]}
	fill := m.Fill
	if fill == nil {
		fill = func(v *model.Variable) bool { return v.Trainable }
	}
	graphFn := func(scope *model.Scope, inputs []*Node) []*Node {
		g := inputs[0].Graph()
		scope.Store().SetTraining(g, false)
		nIn := len(m.Batch.Inputs)
		out := m.Fn(scope, inputs[0])
		loss := m.Loss(inputs[nIn:], []*Node{out})
		if !loss.IsScalar() {
			loss = ReduceAllMean(loss)
		}
		var vars []*Node
		for v := range scope.Store().IterVariables() {
			if v.DType() == dtypes.Float32 && fill(v) && v.InUseByGraph(g) {
				vars = append(vars, v.NodeValue(g))
			}
		}
		sq := ScalarZero(g, dtypes.Float32)
		for _, gr := range Gradient(loss, vars...) {
			sq = Add(sq, ReduceAllSum(Square(gr)))
		}
		flat := Reshape(out, -1)
		return []*Node{loss, Sqrt(sq), Sqrt(ReduceAllSum(Square(flat))), flat}
	}
	exec, err := model.NewExec(backend, m.Store, graphFn)
	if err != nil {
		return res, fmt.Errorf("netbench check %s: %w", m.Name, err)
	}
	args := make([]any, 0, len(m.Batch.Inputs)+len(m.Batch.Labels))
	for _, t := range append(slices.Clone(m.Batch.Inputs), m.Batch.Labels...) {
		args = append(args, t)
	}
	var outs []*tensors.Tensor
	if err := exceptions.TryCatch[error](func() {
		// The first call builds the graph and creates the variables; the
		// second runs with the host-drawn weights.
		if _, err := exec.Call(args...); err != nil {
			panic(err)
		}
		if err := fillWeights(m.Store, fill); err != nil {
			panic(err)
		}
		var err error
		if outs, err = exec.Call(args...); err != nil {
			panic(err)
		}
	}); err != nil {
		return res, fmt.Errorf("netbench check %s: %w", m.Name, err)
	}
	scalar := func(t *tensors.Tensor) float64 { return float64(tensors.ToScalar[float32](t)) }
	res.Loss, res.GradNorm, res.OutputNorm = scalar(outs[0]), scalar(outs[1]), scalar(outs[2])
	flat := tensors.MustCopyFlatData[float32](outs[3])
	stride := max(1, len(flat)/maxOutputs)
	for i := 0; i < len(flat) && len(res.Outputs) < maxOutputs; i += stride {
		res.Outputs = append(res.Outputs, float64(flat[i]))
	}
	return res, nil
}

// fillWeights sets each selected float32 variable to uniform values in
// ±sqrt(3/fanIn) (the scale of the usual initializers, so activations stay
// in range) from a generator seeded by the variable's path.
func fillWeights(st *model.Store, fill func(v *model.Variable) bool) error {
	var vars []*model.Variable
	for v := range st.IterVariables() {
		if v.DType() == dtypes.Float32 && fill(v) {
			vars = append(vars, v)
		}
	}
	slices.SortFunc(vars, func(a, b *model.Variable) int { return cmp.Compare(a.Path(), b.Path()) })
	for _, v := range vars {
		dims := v.Shape().Dimensions
		fanIn := 1
		for _, d := range dims[:max(0, len(dims)-1)] {
			fanIn *= d
		}
		scale := float32(math.Sqrt(3 / float64(fanIn)))
		h := fnv.New64a()
		h.Write([]byte(v.Path()))
		seed := h.Sum64()
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = scale * (2*float32(lcg(&seed)%65536)/65536 - 1)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, dims...)); err != nil {
			return fmt.Errorf("set %s: %w", v.Path(), err)
		}
	}
	return nil
}

// RelErr compares got with the reference want: the largest of the relative
// errors of the loss, the gradient norm, the output norm and the sampled
// outputs (as a vector: ‖got−want‖/‖want‖).
func RelErr(got, want CheckResult) (float64, error) {
	if got.Net != want.Net || got.Batch != want.Batch || len(got.Outputs) != len(want.Outputs) {
		return 0, fmt.Errorf("check results differ in net/batch/size: %s b%d n%d vs %s b%d n%d",
			got.Net, got.Batch, len(got.Outputs), want.Net, want.Batch, len(want.Outputs))
	}
	rel := func(a, b float64) float64 { return math.Abs(a-b) / max(math.Abs(b), 1e-12) }
	e := max(rel(got.Loss, want.Loss), rel(got.GradNorm, want.GradNorm), rel(got.OutputNorm, want.OutputNorm))
	var d, n float64
	for i, w := range want.Outputs {
		d += (got.Outputs[i] - w) * (got.Outputs[i] - w)
		n += w * w
	}
	e = max(e, math.Sqrt(d)/max(math.Sqrt(n), 1e-12))
	if math.IsNaN(e) {
		return math.Inf(1), nil
	}
	return e, nil
}
