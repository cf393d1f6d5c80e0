package nn

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

type gruDir struct {
	Kernel          arr `json:"kernel"`
	RecurrentKernel arr `json:"recurrent_kernel"`
	BiasInput       arr `json:"bias_input"`
	BiasRecurrent   arr `json:"bias_recurrent"`
	DKernel         arr `json:"d_kernel"`
}

type gruFixture struct {
	Cases []struct {
		Name, Mode        string
		Hidden            int
		X, H0, Y, Gy, Dx  arr
		Forward, Backward *gruDir
	}
}

func (d *gruDir) tensors(dt dtypes.DType) []*tensors.Tensor {
	return []*tensors.Tensor{d.Kernel.tensor(dt), d.RecurrentKernel.tensor(dt), d.BiasInput.tensor(dt), d.BiasRecurrent.tensor(dt)}
}

func weightsFrom(in []*Node) GRUWeights {
	return GRUWeights{Input: in[0], Recurrent: in[1], BiasInput: in[2], BiasRec: in[3]}
}

func TestGRUMatchesTorch(t *testing.T) {
	var fx gruFixture
	loadFixture(t, "gru.json", &fx)
	if len(fx.Cases) != 5 {
		t.Fatalf("want 5 cases, got %d", len(fx.Cases))
	}
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypes.Float32
			inputs := []*tensors.Tensor{c.X.tensor(dt), c.H0.tensor(dt), c.Gy.tensor(dt)}
			inputs = append(inputs, c.Forward.tensors(dt)...)
			if c.Backward != nil {
				inputs = append(inputs, c.Backward.tensors(dt)...)
			}
			out := run(t, func(in []*Node) []*Node {
				x, h0, gy := in[0], in[1], in[2]
				fw := weightsFrom(in[3:7])
				var y *Node
				switch c.Mode {
				case "forward", "forward_h0":
					y, _ = GRUOp(x, h0, fw, false)
				case "backward":
					y, _ = GRUOp(x, nil, fw, true)
				default:
					f, _ := GRUOp(x, nil, fw, false)
					b, _ := GRUOp(x, nil, weightsFrom(in[7:11]), true)
					if c.Mode == "sum" {
						y = Add(f, b)
					} else {
						y = Concatenate([]*Node{f, b}, -1)
					}
				}
				grads := Gradient(weightedSum(y, gy), x, fw.Input)
				return []*Node{y, grads[0], grads[1]}
			}, inputs...)
			assertClose(t, "y", out[0], c.Y, 1e-5)
			assertClose(t, "dx", out[1], c.Dx, 1e-5)
			assertClose(t, "dkernel", out[2], c.Forward.DKernel, 1e-5)
		})
	}
}

func TestGRUFiniteDifferences(t *testing.T) {
	const b, steps, in, h = 2, 3, 2, 2
	for _, backwards := range []bool{false, true} {
		fdCheck(t, func(n []*Node) *Node {
			y, _ := GRUOp(n[0], nil, GRUWeights{Input: n[1], Recurrent: n[2], BiasInput: n[3], BiasRec: n[4]}, backwards)
			return weightedSum(y, n[5])
		}, randArr(21, b, steps, in), randArr(22, in, 3*h), randArr(23, h, 3*h), randArr(24, 3*h),
			randArr(25, 3*h), randArr(26, b, steps, h))
	}
}
