package netbench

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"

	"github.com/dl4img/dl4img/nn"
)

func TestCheckDeterministic(t *testing.T) {
	a, err := Check(goBackend(t), "crnn", 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Check(goBackend(t), "crnn", 2)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := RelErr(a, b); err != nil || e != 0 {
		t.Errorf("two runs differ: rel err %g, %v", e, err)
	}
	if !(a.Loss > 0) || !(a.GradNorm > 0) || !(a.OutputNorm > 0) || len(a.Outputs) != 2*CRNNSteps*CRNNClasses {
		t.Errorf("implausible result: loss %g grad %g out %g, %d outputs", a.Loss, a.GradNorm, a.OutputNorm, len(a.Outputs))
	}
	// Another batch gives another result: the comparison can fail.
	c, err := Check(goBackend(t), "crnn", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RelErr(c, a); err == nil {
		t.Error("batch 3 vs batch 2 compared without error")
	}
	c.Batch, c.Outputs = a.Batch, c.Outputs[:len(a.Outputs)]
	if e, _ := RelErr(c, a); !(e > 1e-3) {
		t.Errorf("different inputs: rel err %g, want > 1e-3", e)
	}
}

// The comparison the GPU check makes between backends, made here between
// the two convolution implementations: the same weights give the same loss,
// gradient norm and outputs.
func TestCheckModelConvImpls(t *testing.T) {
	tiny := func(scope *model.Scope, x *Node) *Node {
		x = activation.Relu(nn.Conv2D(scope.In("c1"), x, nn.Conv2DConfig{Filters: 24, Kernel: 3, Padding: nn.PadSame}))
		x = nn.MaxPool2D(x, 2)
		x = activation.Relu(nn.ConvTranspose2D(scope.In("up"), x, nn.ConvTranspose2DConfig{Filters: 4, Kernel: 4, Stride: 2, Padding: 1, L2: 1e-4}))
		return layers.Dense(scope.In("out"), Reshape(x, x.Shape().Dimensions[0], -1), true, 5)
	}
	run := func(impl string) CheckResult {
		st := model.NewStore()
		st.SetParam(nn.ParamConvImpl, impl)
		x := make([]float32, 2*8*8*16)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		r, err := CheckModel(goBackend(t), Model{
			Name: "tiny", Store: st, Fn: tiny,
			Loss: func(labels, logits []*Node) *Node { return loss.SparseCategoricalCrossEntropyLogits(labels, logits) },
			Batch: train.Batch{
				Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x, 2, 8, 8, 16)},
				Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions([]int32{1, 4}, 2, 1)},
			},
		})
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		return r
	}
	native, im2col := run("native"), run("im2col")
	e, err := RelErr(im2col, native)
	if err != nil || e > 1e-5 {
		t.Errorf("im2col vs native: rel err %g (%v), want <= 1e-5", e, err)
	}
	t.Logf("im2col vs native: rel err %g, loss %g", e, native.Loss)
	if len(native.Outputs) != 10 || native.GradNorm == 0 {
		t.Errorf("result %+v", native)
	}
}
