package netbench

import (
	"context"
	"math"
	"testing"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/engine/lower"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/train/optimizer"
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

// TestNetsEngineMatchesLowering trains each book net for 20 steps with the
// engine (convolutions, pools, batch norm and matmuls on oneDNN) and
// without it (the Go backend with the lowering alone): every step's loss
// agrees within 1e-3, and the engine ran every convolution and pool
// itself. Plain SGD, not the benchmark's Adam: Adam's first steps move
// every weight by the learning rate whatever its gradient's size, so
// gradients that are zero up to rounding make two correct runs drift
// apart (1e-4 after one step, percents after ten).
func TestNetsEngineMatchesLowering(t *testing.T) {
	for _, net := range Nets() {
		t.Run(net, func(t *testing.T) {
			eng := goBackend(t)
			plain, err := compute.NewWithConfig("go:ops_sequential")
			if err != nil {
				t.Fatal(err)
			}
			sgd := func() optimizer.Interface { return optimizer.StochasticGradientDescent().WithLearningRate(3e-4).Done() }
			// Batch 1 for the FCN: it is slow on the lowering.
			batch := map[string]int{"captcha-cnn": 4, "crnn": 2, "fcn": 1}[net]
			want, err := run(context.Background(), lower.Wrap(plain), net, batch, 19, sgd())
			if err != nil {
				t.Fatal(err)
			}
			got, err := run(context.Background(), eng, net, batch, 19, sgd())
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Losses {
				if rel := math.Abs(got.Losses[i]-want.Losses[i]) / math.Abs(want.Losses[i]); !(rel <= 1e-3) {
					t.Errorf("step %d: loss %g with the engine, %g without (relative difference %.2g)", i+1, got.Losses[i], want.Losses[i], rel)
				}
			}
			s, _ := engine.StatsOf(eng)
			if len(s.Kept) > 0 || len(s.Fallbacks) > 0 || s.Ran("conv forward") == 0 {
				t.Errorf("not everything ran on oneDNN: %s", s)
			}
			t.Logf("losses %.5g (lowering %.5g); %s", got.Losses, want.Losses, s)
		})
	}
}
